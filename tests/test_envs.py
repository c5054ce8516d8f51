"""The CTDE env interface across families: spaces vs arrays, auto-reset, time limits vs
termination, seeding, vectorisation, registry errors, and the MPE/MaMuJoCo adapters'
own conventions. Simulators missing here are skipped, never failed."""

import re
import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np
import pytest
from gymnasium import spaces

import envs
from envs.base import AgentView
from envs.errors import ConfigError, EnvUnavailable

SIMULATOR = {"mpe": "mpe2", "mamujoco": "gymnasium_robotics", "football": "gfootball"}  # family -> import to skip on


def skip_without_simulator(family: str) -> None:
    """Skip the calling test when the family's simulator is not installed."""
    if family in SIMULATOR:
        pytest.importorskip(SIMULATOR[family])


@dataclass(frozen=True)
class Case:
    family: str
    task: str
    fields: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return "-".join([self.family, self.task, *(f"{k}={v}" for k, v in self.fields.items())])

    def make(self, n_envs: int = 3, seed: int | None = 0, **extra) -> envs.VecEnv:
        skip_without_simulator(self.family)
        return envs.make(self.family, self.task, n_envs=n_envs, seed=seed, **self.fields, **extra)


# Short episodes so every case ends (and auto-resets) within a few dozen steps.
CASES = [
    Case("matrix", "climbing"),
    Case("matrix", "penalty"),
    Case("matrix", "custom", {"payoff": [[[1, 0], [0, 1]], [[0, 2], [2, 0]]]}),
    Case("mpe", "simple_spread", {"max_cycles": 6}),
    Case("mpe", "simple_spread", {"max_cycles": 6, "continuous_actions": False}),
    Case("mpe", "simple_speaker_listener", {"max_cycles": 6}),
    Case("mpe", "simple_speaker_listener", {"max_cycles": 6, "continuous_actions": False}),
    Case("mpe", "simple_reference", {"max_cycles": 6, "continuous_actions": False}),
    Case("mamujoco", "HalfCheetah-2x3", {"episode_limit": 12}),
    Case("mamujoco", "HalfCheetah-2x3", {"episode_limit": 12, "obs_mode": "local"}),
    Case("mamujoco", "Hopper-3x1", {"episode_limit": 40}),
    Case("mamujoco", "Hopper-3x1", {"episode_limit": 40, "obs_mode": "local"}),
    Case("mamujoco", "Ant-8x1", {"episode_limit": 12, "obs_mode": "local"}),
    Case("football", "academy_3_vs_1_with_keeper", {"episode_limit": 12}),
]


def random_actions(spec: envs.EnvSpec, n_envs: int, rng: np.random.Generator) -> list[np.ndarray]:
    """N × [E, A] (Box, uniform inside the bounds) or N × [E] (Discrete)."""
    out = []
    for space in spec.action_spaces:
        if isinstance(space, spaces.Box):
            out.append(rng.uniform(space.low, space.high, (n_envs, *space.shape)).astype(np.float32))
        else:
            out.append(rng.integers(space.n, size=n_envs))
    return out


def rollout(env: envs.VecEnv, n_steps: int, action_seed: int = 0) -> list[envs.Step]:
    rng = np.random.default_rng(action_seed)
    steps = [env.reset()]
    for _ in range(n_steps):
        steps.append(env.step(random_actions(env.spec, env.n_envs, rng)))
    return steps


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.id)
def played(request):
    """(spec, steps) of 3 copies for 30 steps of random play."""
    env = request.param.make(n_envs=3)
    try:
        yield env.spec, rollout(env, 30)
    finally:
        env.close()


def check_arrays(spec: envs.EnvSpec, step: envs.Step, n_envs: int) -> None:
    assert len(step.obs) == spec.n_agents
    for obs, space in zip(step.obs, spec.obs_spaces):
        assert obs.shape == (n_envs, *space.shape) and obs.dtype == np.float32
        assert np.all((obs >= space.low) & (obs <= space.high)), "observation outside its space"
    assert step.state.shape == (n_envs, *spec.state_space.shape) and step.state.dtype == np.float32
    assert step.reward.shape == (n_envs,) and step.reward.dtype == np.float32
    assert step.terminated.shape == step.truncated.shape == (n_envs,)
    assert step.terminated.dtype == step.truncated.dtype == bool
    assert not np.any(step.terminated & step.truncated), "a row is both terminated and truncated"
    assert step.alive.shape == (n_envs, spec.n_agents) and step.alive.dtype == bool
    if spec.has_avail_actions:
        assert [a.shape for a in step.avail_actions] == [(n_envs, s.n) for s in spec.action_spaces]
        assert all(a.any(axis=1).all() for a in step.avail_actions)
    else:
        assert step.avail_actions is None


def test_step_arrays_match_the_spec(played):
    spec, steps = played
    assert spec.n_agents == len(spec.obs_spaces) == len(spec.action_spaces)
    assert all(isinstance(s, (spaces.Box, spaces.Discrete)) for s in spec.action_spaces)
    assert all(s.dtype == np.float32 for s in spec.action_spaces if isinstance(s, spaces.Box))
    for step in steps:
        check_arrays(spec, step, n_envs=3)
        check_arrays(spec, envs.Step(step.info["final_obs"], step.info["final_state"], step.reward,
                                     step.terminated, step.truncated, step.info["final_avail_actions"],
                                     step.info["final_alive"]), n_envs=3)


def test_auto_reset_keeps_the_last_view_and_counts_episodes(played):
    spec, steps = played
    lengths = np.zeros(3, int)  # our own count of steps since each row's last reset
    n_done = 0
    for step in steps[1:]:
        lengths += 1
        done = step.done
        obs, final = np.concatenate(step.obs, axis=1), np.concatenate(step.info["final_obs"], axis=1)
        assert np.array_equal(final[~done], obs[~done])
        assert np.array_equal(step.info["final_state"][~done], step.state[~done])
        if not spec.single_state:  # matrix games restart in their only state
            # (one agent's view may repeat: the speaker sees only the goal colour)
            assert all(not np.array_equal(final[k], obs[k]) for k in np.flatnonzero(done))
        episodes = step.info["episodes"]
        assert sorted(e["env_index"] for e in episodes) == np.flatnonzero(done).tolist()
        for e in episodes:
            assert e["length"] == lengths[e["env_index"]]
            assert e["length"] <= spec.episode_limit
        lengths[done] = 0
        n_done += int(done.sum())
    assert n_done > 0, "no episode ended: the test saw no auto-reset"


@pytest.mark.parametrize(
    "case",
    [
        Case("mpe", "simple_spread", {"max_cycles": 7}),
        Case("mamujoco", "HalfCheetah-2x3", {"episode_limit": 20}),
        Case("mamujoco", "HalfCheetah-2x3", {"episode_limit": 20, "obs_mode": "local"}),
    ],
    ids=lambda c: c.id,
)
def test_time_limit_truncates_exactly_at_the_limit_without_terminating(case):
    env = case.make(n_envs=2)
    limit = env.spec.episode_limit
    steps = rollout(env, 2 * limit)
    env.close()
    ends = [t for t, s in enumerate(steps) if s.done.any()]
    assert ends == [limit, 2 * limit]
    for t in ends:
        assert steps[t].truncated.all() and not steps[t].terminated.any()
        assert [e["length"] for e in steps[t].info["episodes"]] == [limit, limit]


def test_unhealthy_hopper_terminates_rather_than_truncates():
    env = Case("mamujoco", "Hopper-3x1", {"episode_limit": 1000}).make(n_envs=2)
    steps = rollout(env, 150)
    env.close()
    assert not any(s.truncated.any() for s in steps)
    episodes = [e for s in steps for e in s.info["episodes"]]
    assert episodes and all(e["length"] < 150 for e in episodes)
    assert sum(int(s.terminated.sum()) for s in steps) == len(episodes)


SEEDED = [
    Case("mpe", "simple_spread", {"max_cycles": 5}),
    Case("mpe", "simple_speaker_listener", {"max_cycles": 5, "continuous_actions": False}),
    Case("mamujoco", "HalfCheetah-2x3", {"episode_limit": 5}),
    Case("mamujoco", "Hopper-3x1", {"episode_limit": 5, "obs_mode": "local"}),
    Case("football", "academy_pass_and_shoot_with_keeper", {"episode_limit": 5}),
]


def trajectory(steps: list[envs.Step]) -> list[np.ndarray]:
    return [a for s in steps for a in (*s.obs, s.state, s.reward, s.done, *s.info["final_obs"])]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("case", SEEDED, ids=lambda c: c.id)
def test_same_seed_same_trajectory_and_another_seed_differs(case):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("other", 1)):
        env = case.make(n_envs=2, seed=seed)
        runs[name] = trajectory(rollout(env, 12))  # 12 steps > 2 episodes: covers auto-resets
        env.close()
    assert same(runs["a"], runs["b"])
    assert not same(runs["a"], runs["other"])


@pytest.mark.parametrize(
    "case",
    [Case("mpe", "simple_spread", {"max_cycles": 5}), Case("mamujoco", "Hopper-3x1", {"episode_limit": 8})],
    ids=lambda c: c.id,
)
def test_sync_and_subproc_give_identical_trajectories(case):
    runs = {}
    for mode in ("sync", "subproc"):
        env = case.make(n_envs=3, seed=4, vectorization=mode, n_workers=2)  # uneven chunks: 1 + 2
        runs[mode] = trajectory(rollout(env, 12))
        env.close()
    assert same(runs["sync"], runs["subproc"])


# -- MPE ------------------------------------------------------------------------------------

MPE2_FIELDS = {  # every MPE fidelity switch on mpe2's side, where it applies
    "simple_spread": {"reward": "mpe2", "physics": "mpe2"},
    "simple_speaker_listener": {"physics": "mpe2", "pad_spaces": "none"},
    "simple_reference": {"physics": "mpe2"},
}


@pytest.mark.parametrize("continuous", [True, False])
@pytest.mark.parametrize("task", ["simple_spread", "simple_speaker_listener", "simple_reference"])
def test_mpe_on_mpe2_switches_matches_mpe2_parallel_api_with_summed_reward(task, continuous):
    """With mpe2's reward, physics and spaces, our one-AEC-cycle stepping equals mpe2's
    parallel_env; team reward = sum over agents."""
    pytest.importorskip("mpe2")
    from envs.mpe import Config, MpeEnv, import_task

    ours = MpeEnv(task, Config(continuous_actions=continuous, **MPE2_FIELDS[task]))
    theirs = import_task(task).parallel_env(max_cycles=25, continuous_actions=continuous)
    agents = theirs.possible_agents
    view, (obs, _) = ours.reset(seed=3), theirs.reset(seed=3)
    rng = np.random.default_rng(0)
    for t in range(1, 26):
        assert all(np.array_equal(view.obs[i], obs[a]) for i, a in enumerate(agents))
        assert np.array_equal(view.state, theirs.state())
        actions = [a[0] for a in random_actions(ours.spec, 1, rng)]
        view, reward, terminated, truncated, _ = ours.step(actions)
        obs, rewards, _, truncs, _ = theirs.step(dict(zip(agents, actions)))
        assert reward == pytest.approx(sum(rewards.values()))
        assert (truncated, terminated) == (t == 25, False) and truncs[agents[0]] == (t == 25)
    assert ours.spec.episode_limit == 25


@pytest.mark.parametrize("continuous", [True, False])
def test_mpe_official_simple_spread_reward_counts_each_agents_collision_with_itself(continuous):
    """PettingZoo 1.22 (HARL's MPE): −1 local reward per agent and step for its collision
    with itself, × local_ratio 0.5: with 3 agents the team reward is 1.5 lower every step
    (−37.5 per 25-step episode) under any policy; here the zero action, which moves nobody."""
    returns = {}
    for reward in ("official", "mpe2"):
        env = Case("mpe", "simple_spread", {"reward": reward, "continuous_actions": continuous}).make(n_envs=1)
        env.reset()
        zero = [np.zeros((1, 5), np.float32) if continuous else np.zeros(1, np.int64)] * 3
        returns[reward] = [float(env.step(zero).reward[0]) for _ in range(25)]
        env.close()
    assert np.allclose(np.subtract(returns["official"], returns["mpe2"]), -1.5, atol=1e-6)
    assert sum(returns["official"]) - sum(returns["mpe2"]) == pytest.approx(-37.5, abs=1e-4)


def test_mpe_official_physics_integrates_then_moves_and_keeps_pettingzoo_1_22_signs():
    """One step of agent 0 from p = (0, 0), v = (0.2, 0) with continuous action a[1] = 1
    (others far away, no contact; damping 0.25, force 5 = sensitivity, mass 1, dt 0.1).
    PettingZoo 1.22: u_x = a[1] − a[2] = +1, v' = 0.2·0.75 + 5·0.1 = 0.65, p' = v'·0.1 = 0.065.
    mpe2: p' = 0.2·0.1 = 0.02 first, then u_x = a[2] − a[1] = −1, v' = 0.15 − 0.5 = −0.35."""
    expected = {"official": (0.65, 0.065), "mpe2": (-0.35, 0.02)}
    for physics, (velocity, position) in expected.items():
        skip_without_simulator("mpe")
        from envs.mpe import Config, MpeEnv
        env = MpeEnv("simple_spread", Config(physics=physics))
        env.reset(seed=0)
        for agent, pos in zip(env._env.world.agents, ([0.0, 0.0], [5.0, 5.0], [-5.0, 5.0])):
            agent.state.p_pos, agent.state.p_vel = np.array(pos), np.zeros(2)
        env._env.world.agents[0].state.p_vel = np.array([0.2, 0.0])
        action = np.array([0.0, 1.0, 0.0, 0.0, 0.0], np.float32)
        view, *_ = env.step([action, np.zeros(5, np.float32), np.zeros(5, np.float32)])
        agent = env._env.world.agents[0]
        assert agent.state.p_vel[0] == pytest.approx(velocity) and agent.state.p_pos[0] == pytest.approx(position)
        assert view.obs[0][0] == pytest.approx(velocity)  # the observation starts with the agent's velocity


@pytest.mark.parametrize("continuous", [True, False])
def test_mpe_official_speaker_listener_pads_spaces_as_supersuit(continuous):
    """HARL pads with supersuit 3.7: both agents observe 11 numbers (the speaker's 3, then
    zeros) and act in the listener's space; the speaker's extra Box entries are dropped and
    its Discrete actions 3 and 4 are action 0. The state stays the unpadded 3 + 11."""
    padded = Case("mpe", "simple_speaker_listener", {"continuous_actions": continuous}).make(n_envs=1, seed=4)
    raw = Case("mpe", "simple_speaker_listener", {"continuous_actions": continuous, "pad_spaces": "none"}).make(n_envs=1, seed=4)
    assert [s.shape for s in padded.spec.obs_spaces] == [(11,), (11,)] and padded.spec.state_space.shape == (14,)
    assert padded.spec.action_spaces == ((spaces.Box(0, 1, (5,), np.float32),) * 2 if continuous else (spaces.Discrete(5),) * 2)
    start, start_raw = padded.reset(), raw.reset()
    assert np.array_equal(start.obs[0][:, :3], start_raw.obs[0]) and not start.obs[0][:, 3:].any()
    assert np.array_equal(start.state, start_raw.state)
    listener = np.full((1, 5), 0.5, np.float32) if continuous else np.array([2])
    extra, plain = (np.array([[0.2, 0.9, 0.1, 1.0, 1.0]], np.float32), np.array([[0.2, 0.9, 0.1]], np.float32)) if continuous \
        else (np.array([4]), np.array([0]))
    after, after_raw = padded.step([extra, listener]), raw.step([plain, listener])
    assert np.array_equal(after.obs[1], after_raw.obs[1]) and after.reward[0] == after_raw.reward[0]
    padded.close()
    raw.close()


def test_mpe_switches_refuse_unknown_values_and_tasks_they_do_not_affect():
    skip_without_simulator("mpe")
    one_line_config_error("env.reward=mpe2 does not apply here.*simple_spread", "mpe", "simple_reference", reward="mpe2")
    one_line_config_error("env.pad_spaces=none does not apply.*simple_speaker_listener", "mpe", "simple_spread", pad_spaces="none")
    one_line_config_error("env.physics must be one of official, mpe2; got 'euler'", "mpe", "simple_spread", physics="euler")


def test_mpe_speaker_listener_is_heterogeneous_without_padding():
    env = Case("mpe", "simple_speaker_listener", {"pad_spaces": "none"}).make(n_envs=1)
    assert [s.shape[0] for s in env.spec.obs_spaces] == [3, 11]
    assert [s.shape for s in env.spec.action_spaces] == [(3,), (5,)]
    assert all(s.low.min() == 0 and s.high.max() == 1 for s in env.spec.action_spaces)
    env.close()


# -- MaMuJoCo -------------------------------------------------------------------------------

def test_mamujoco_global_obs_is_the_state_plus_a_one_hot_id():
    env = Case("mamujoco", "Ant-2x4", {"obs_norm": "raw"}).make(n_envs=2)
    step = env.reset()
    state_dim = env.spec.state_space.shape[0]
    assert state_dim == 105  # Gymnasium v5 Ant (contact forces included); the paper's v2 differs
    for i, obs in enumerate(step.obs):
        assert np.array_equal(obs[:, :state_dim], step.state)
        assert np.array_equal(obs[:, state_dim:], np.tile(np.eye(2)[i], (2, 1)))
    env.close()


def test_z_score_by_hand():
    skip_without_simulator("mamujoco")
    from envs.mamujoco import z_score
    # mean 3, std sqrt((4 + 1 + 0 + 9) / 4) = sqrt(3.5)
    assert np.allclose(z_score(np.array([1.0, 2.0, 3.0, 6.0])), np.array([-2, -1, 0, 3]) / np.sqrt(3.5))


@pytest.mark.parametrize("obs_mode", ["global", "local"])
def test_mamujoco_official_obs_and_state_are_z_scored_per_sample(obs_mode):
    """HARL (mujoco_multi.py l.209-210, l.243): each agent's vector [state | one-hot id] and the
    state are standardised over their own entries, (x − mean x) / std x."""
    official = Case("mamujoco", "HalfCheetah-2x3", {"obs_mode": obs_mode}).make(n_envs=2, seed=5)
    raw = Case("mamujoco", "HalfCheetah-2x3", {"obs_mode": obs_mode, "obs_norm": "raw"}).make(n_envs=2, seed=5)
    rng = np.random.default_rng(0)
    steps, raw_steps = [official.reset()], [raw.reset()]
    for _ in range(3):
        actions = random_actions(official.spec, 2, rng)
        steps.append(official.step(actions))
        raw_steps.append(raw.step(actions))
    for step, raw_step in zip(steps, raw_steps):
        for obs, raw_obs in zip(step.obs, raw_step.obs):
            mean, std = raw_obs.mean(axis=1, keepdims=True), raw_obs.std(axis=1, keepdims=True)
            assert np.allclose(obs, (raw_obs - mean) / std, atol=1e-5)
            assert np.allclose(obs.mean(axis=1), 0, atol=1e-5) and np.allclose(obs.std(axis=1), 1, atol=1e-5)
        state_mean, state_std = raw_step.state.mean(axis=1, keepdims=True), raw_step.state.std(axis=1, keepdims=True)
        assert np.allclose(step.state, (raw_step.state - state_mean) / state_std, atol=1e-5)
    official.close()
    raw.close()


@pytest.mark.parametrize("task", ["HumanoidStandup-17x1", "Humanoid-9|8"])
def test_mamujoco_official_humanoid_actions_are_scaled_a_second_time(task):
    """HARL's NormalizedActions maps a ↦ low + (a + 1)(high − low)/2 on the ±0.4 box the
    policies already act in: a = 0.4 reaches the robot as 0.16, a = −0.25 as −0.1."""
    pytest.importorskip("gymnasium_robotics")
    from envs.mamujoco import Config, MaMuJoCoEnv
    for rescale, expected in (("official", (0.16, -0.1)), ("single", (0.4, -0.25))):
        env = MaMuJoCoEnv(task, Config(action_rescale=rescale))
        env.reset(seed=0)
        assert all(np.allclose(s.high, 0.4) and np.allclose(s.low, -0.4) for s in env.spec.action_spaces)
        env.step([np.where((i + np.arange(s.shape[0])) % 2, -0.25, 0.4).astype(np.float32)
                  for i, s in enumerate(env.spec.action_spaces)])
        ctrl = env._env.single_agent_env.unwrapped.data.ctrl
        assert set(np.round(ctrl, 6)) == set(np.round(expected, 6))
        env.close()


def test_mamujoco_second_scaling_applies_exactly_to_the_tasks_with_bounds_other_than_one():
    pytest.importorskip("gymnasium_robotics")
    from envs.mamujoco import RESCALED, TASKS, Config, MaMuJoCoEnv, resolve_name
    for task in TASKS:
        env = MaMuJoCoEnv(task, Config(action_rescale="official" if resolve_name(task) in RESCALED else "single"))
        unit = all(np.allclose(s.low, -1) and np.allclose(s.high, 1) for s in env.spec.action_spaces)
        assert unit == (resolve_name(task) not in RESCALED), task
        env.close()
    one_line_config_error("env.action_rescale=single does not apply here.*Humanoid", "mamujoco", "HalfCheetah-2x3",
                          action_rescale="single")
    one_line_config_error("env.obs_norm must be one of official, raw", "mamujoco", "HalfCheetah-2x3", obs_norm="minmax")


def test_mamujoco_local_obs_are_the_libraries_agent_obsk_views():
    env = Case("mamujoco", "Hopper-3x1", {"obs_mode": "local"}).make(n_envs=1)
    assert [s.shape[0] for s in env.spec.obs_spaces] == [8, 9, 8]
    assert env.spec.state_space.shape == (11,)
    env.close()


@pytest.mark.parametrize("task", ["HalfCheetah-3x2", "Ant-8x1", "Walker2d-6x1", "Walker2d-3x2",
                                  "Humanoid-17x1", "HumanoidStandup-17x1"])
def test_mamujoco_splits_missing_from_the_library_drive_harls_joint_groups(task):
    pytest.importorskip("gymnasium_robotics")
    from envs.mamujoco import HARL_SPLITS, RESCALED, Config, MaMuJoCoEnv, resolve_name

    # the routing alone: no second scaling of the ±0.4 Humanoid actions
    env = MaMuJoCoEnv(task, Config(action_rescale="single" if resolve_name(task) in RESCALED else "official"))
    env.reset(seed=0)
    groups = HARL_SPLITS[tuple(task.split("-"))]
    assert [s.shape for s in env.spec.action_spaces] == [(len(g),) for g in groups]
    values = np.round(np.linspace(-0.3, 0.3, sum(map(len, groups))), 4).astype(np.float32)
    actions = np.split(values, np.cumsum([len(g) for g in groups])[:-1])
    env.step(actions)
    sim = env._env.single_agent_env.unwrapped
    joint_of_value = {  # ctrl value -> name of the joint its actuator drives ("hip_1" ~ "hip1")
        round(float(sim.data.ctrl[k]), 4): sim.model.joint(sim.model.actuator_trnid[k][0]).name.replace("_", "")
        for k in range(sim.model.nu)
    }
    for action, joints in zip(actions, groups):
        assert [joint_of_value[round(float(v), 4)] for v in action] == [j.replace("_", "") for j in joints]
    env.close()


@pytest.mark.parametrize("task", ["HalfCheetah-2x3", "Ant-4x2", "Walker2d-6x1", "manyagent_swimmer-10x2", "Humanoid-9|8"])
def test_mamujoco_precomputed_action_map_equals_the_librarys(task):
    # the step maps agents' actions to the robot with routes computed once; the library's
    # map_local_actions_to_global_action (after per-agent clipping) is the reference
    pytest.importorskip("gymnasium_robotics")
    from envs.mamujoco import Config, MaMuJoCoEnv

    for clip in ("clip", "official"):  # the official step passes actions on unclipped
        env = MaMuJoCoEnv(task, Config(action_clip=clip))
        rng = np.random.default_rng(0)
        for _ in range(20):
            actions = [rng.uniform(-1.5, 1.5, s.shape).astype(np.float32) for s in env.spec.action_spaces]  # some out
            joint = {a: np.clip(x, s.low, s.high) if clip == "clip" else x
                     for a, x, s in zip(env._agents, actions, env.spec.action_spaces)}
            expected = env._env.map_local_actions_to_global_action(joint)
            got = env._to_global(actions)
            assert got.dtype == expected.dtype and np.array_equal(got, expected)
        env.close()


def test_mamujoco_accepts_library_splits_and_the_original_scenario_names():
    swimmer = Case("mamujoco", "manyagent_swimmer-10x2").make(n_envs=1)
    humanoid = Case("mamujoco", "Humanoid-9|8").make(n_envs=1)
    assert swimmer.spec.n_agents == 10 and swimmer.spec.state_space.shape == (44,)
    assert [s.shape for s in humanoid.spec.action_spaces] == [(9,), (8,)]
    swimmer.close()
    humanoid.close()


@pytest.mark.parametrize("family, task, fields", [("mpe", "simple_spread", {}),
                                                  ("mamujoco", "Hopper-3x1", {"action_clip": "clip"})])
def test_out_of_bounds_box_actions_are_clipped(family, task, fields):
    """A far-out-of-bounds action behaves exactly like its clipped value (MPE: PettingZoo's
    clip wrapper, official; MaMuJoCo: action_clip=clip)."""
    outcomes = []
    for scale in (1.0, 50.0):
        env = Case(family, task, fields).make(n_envs=1, seed=0)
        env.reset()
        spec = env.spec
        action = [np.where(np.arange(s.shape[0]) % 2, s.high, s.low)[None] for s in spec.action_spaces]
        mid = [(s.low + s.high)[None] / 2 for s in spec.action_spaces]
        nxt = env.step([m + scale * (a - m) for a, m in zip(action, mid)])
        outcomes.append((nxt.state, nxt.reward))  # reward too: MuJoCo clamps ctrl, not its cost
        env.close()
    assert np.array_equal(outcomes[0][0], outcomes[1][0])
    assert np.array_equal(outcomes[0][1], outcomes[1][1])


def test_mamujoco_official_actions_reach_the_robot_unclipped():
    """HARL passes actions on as they are: MuJoCo clamps the control (same next state as the
    clipped action), the control cost sees the raw action. Hopper v5: cost 1e-3·Σa², so a
    far-out action costs 1e-3·(Σa_far² − Σa_clipped²) more."""
    rewards, states = {}, {}
    for scale in (1.0, 50.0):
        env = Case("mamujoco", "Hopper-3x1").make(n_envs=1, seed=0)
        env.reset()
        action = [np.where(np.arange(s.shape[0]) % 2, s.high, s.low)[None] * scale for s in env.spec.action_spaces]
        nxt = env.step(action)
        rewards[scale], states[scale] = float(nxt.reward[0]), nxt.state
        env.close()
    assert np.array_equal(states[1.0], states[50.0])
    extra_cost = 1e-3 * 3 * (50.0**2 - 1.0)  # three ±1 entries, each 50 times further out
    assert rewards[1.0] - rewards[50.0] == pytest.approx(extra_cost, rel=1e-4)


# -- registry errors ------------------------------------------------------------------------

def one_line_config_error(fragment: str, family: str, task: str, **fields) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        envs.make(family, task, **fields)
    assert "\n" not in str(info.value)


def test_unknown_family_lists_the_families():
    one_line_config_error("valid families: matrix, mpe, mamujoco", "smacc", "3m")


@pytest.mark.parametrize("family, listed", [("matrix", "climbing, penalty, custom"),
                                            ("mpe", "simple_spread, simple_speaker_listener"),
                                            ("mamujoco", "HalfCheetah-2x3")])
def test_unknown_task_lists_the_valid_tasks(family, listed):
    skip_without_simulator(family)
    one_line_config_error(f"valid tasks: .*{listed}", family, "Nope-3x3")


@pytest.mark.parametrize("task", ["Ant-3x3", "Ant", "HalfCheetah-6", "Foo-2x3"])
def test_mamujoco_unsupported_split_is_a_config_error(task):
    pytest.importorskip("gymnasium_robotics")
    one_line_config_error("unknown mamujoco task", "mamujoco", task)


@pytest.mark.parametrize(
    "family, task, fields, fragment",
    [
        ("mpe", "simple_spread", {"colour": "red"}, "unknown field.*colour.*valid fields"),
        ("mpe", "simple_spread", {"max_cycles": 0}, "max_cycles"),
        ("mamujoco", "HalfCheetah-2x3", {"obs_mode": "partial"}, "obs_mode must be one of global, local"),
        ("mamujoco", "HalfCheetah-2x3", {"episode_limit": 0}, "episode_limit"),
        ("matrix", "custom", {"payoff": [[1, 0], [0]]}, "rectangular"),
        ("matrix", "custom", {"payoff": [1, 0]}, "one axis per agent"),
    ],
)
def test_bad_env_fields_are_one_line_config_errors(family, task, fields, fragment):
    skip_without_simulator(family)
    one_line_config_error(fragment, family, task, **fields)


@pytest.mark.parametrize("family, task, hidden, extra", [("mpe", "simple_spread", "mpe2", "hasac-bench[mpe]"),
                                                         ("mamujoco", "HalfCheetah-2x3", "gymnasium_robotics",
                                                          "hasac-bench[mamujoco]")])
def test_missing_simulator_is_env_unavailable_with_one_line(monkeypatch, family, task, hidden, extra):
    for name in {hidden, *(n for n in sys.modules if n.startswith(hidden + "."))}:
        monkeypatch.setitem(sys.modules, name, None)  # `import <hidden>` now raises ImportError
    with pytest.raises(EnvUnavailable, match=rf"env={family} needs .*pip install '{re.escape(extra)}'") as info:
        envs.make(family, task)
    assert "\n" not in str(info.value)


def test_env_modules_import_without_any_simulator():
    code = ("import sys\n"
            "for m in ('mpe2', 'gymnasium_robotics', 'mujoco', 'pettingzoo'): sys.modules[m] = None\n"
            "import envs, envs.mpe, envs.mamujoco\n"
            "print(envs.mpe.TASKS[0], envs.mamujoco.TASKS[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["simple_spread", "HalfCheetah-2x3"]


@pytest.mark.parametrize("n_copies", [1, 3])
@pytest.mark.parametrize("alive", [None, [True, False]])
@pytest.mark.parametrize("masked", [False, True])
def test_stacked_views_equal_np_stack_and_are_copies(n_copies, alive, masked):
    from envs.base import _stack_views

    rng = np.random.default_rng(0)
    avail = [np.array([1, 0, 1]), np.array([0, 1, 1])] if masked else None
    views = [AgentView(obs=[rng.normal(size=3), rng.normal(size=4).astype(np.float32)], state=rng.normal(size=7),
                       avail_actions=avail, alive=alive) for _ in range(n_copies)]
    obs, state, avail_out, alive_out = _stack_views(views, 2)
    for i in range(2):  # the reference: np.stack of each field, then the interface's dtypes
        assert obs[i].dtype == np.float32 and np.array_equal(obs[i], np.stack([v.obs[i] for v in views]).astype(np.float32))
    assert state.dtype == np.float32 and np.array_equal(state, np.stack([v.state for v in views]).astype(np.float32))
    if masked:
        assert all(a.dtype == bool and np.array_equal(a, np.stack([v.avail_actions[i] for v in views]).astype(bool))
                   for i, a in enumerate(avail_out))
    else:
        assert avail_out is None
    expected_alive = np.ones((n_copies, 2), bool) if alive is None else np.tile(np.array(alive, bool), (n_copies, 1))
    assert alive_out.dtype == bool and np.array_equal(alive_out, expected_alive)
    assert not np.shares_memory(obs[1], views[0].obs[1])  # a copy: the env may reuse its buffers
