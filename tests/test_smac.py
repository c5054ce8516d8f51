"""The smac family (envs/smac/): SMAX (JaxMARL, CPU JAX) through our Step interface on one
map shape (3m; each SMAX shape compiles for seconds), the sc2 backend's conversion against
a test double of smacv2's env API, and the one-line errors for missing StarCraft II and for
maps SMAX cannot represent. The BatchedEnv contract SMAX shares with every batched env is
checked in tests/test_batched_env.py."""

import subprocess
import sys
import types

import numpy as np
import pytest

import envs
from envs.smac import actions as layout, sc2, tasks
from envs.errors import ConfigError, EnvUnavailable, TaskUnsupported

N_ENVS = 4


def smax_env(seed=0):
    pytest.importorskip("jaxmarl")
    return envs.make("smac", "3m", n_envs=N_ENVS, seed=seed, backend="smax")


def masked_random(avail: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """One uniformly random available action per agent and copy (the `random` baseline)."""
    return [np.array([rng.choice(np.flatnonzero(row)) for row in a]) for a in avail]


def play(env, n_steps: int, seed: int = 0, first=None):
    rng = np.random.default_rng(seed)
    step = first if first is not None else env.reset()
    steps = [step]
    for _ in range(n_steps):
        step = env.step(masked_random(step.avail_actions, rng))
        steps.append(step)
    return steps


@pytest.fixture(scope="module")
def played():
    env = smax_env()
    steps = play(env, 70)  # > 3m's limit of 60: every copy ends at least once
    yield env, steps
    env.close()


# -- SMAX ------------------------------------------------------------------------------------
def test_smax_spec_is_labelled_and_uses_smacs_action_layout(played):
    env, _ = played
    spec = env.spec
    assert (spec.family, spec.task, spec.n_agents) == ("smac", "3m[smax]", 3)
    assert spec.episode_limit == 60 and spec.has_avail_actions and spec.success_metric == "win_rate"
    assert [s.n for s in spec.action_spaces] == [9, 9, 9]  # SMAC's 6 + n_enemies, no-op included
    assert spec.obs_spaces[0].shape == (75,) and spec.state_space.shape == (72,)


def test_smax_random_episode_respects_masks_shapes_and_ends_with_a_flag(played):
    env, steps = played
    spec = env.spec
    rng = np.random.default_rng(0)  # play() drew these same actions; re-draw them to check the masks
    for prev, step in zip(steps, steps[1:]):
        actions = masked_random(prev.avail_actions, rng)
        for i in range(spec.n_agents):
            assert prev.avail_actions[i][np.arange(N_ENVS), actions[i]].all()
            assert step.obs[i].shape == (N_ENVS, *spec.obs_spaces[i].shape) and step.obs[i].dtype == np.float32
            assert step.avail_actions[i].shape == (N_ENVS, spec.action_spaces[i].n)
            # no-op exactly for the dead; the living may always stop
            dead = ~step.info["final_alive"][:, i]
            final_avail = step.info["final_avail_actions"][i]
            assert (final_avail[:, 0] == dead).all() and (final_avail[:, 1] == ~dead).all()
            assert not final_avail[dead, 1:].any()
        assert step.state.shape == (N_ENVS, *spec.state_space.shape)
        assert step.alive.shape == (N_ENVS, 3) and step.reward.shape == (N_ENVS,)
        assert not (step.terminated & step.truncated).any()
    episodes = [e for s in steps for e in s.info["episodes"]]
    assert {e["env_index"] for e in episodes} == set(range(N_ENVS))
    for e in episodes:
        assert isinstance(e["win"], bool) and 1 <= e["length"] <= 60
    ended = np.array([s.done for s in steps[1:]])
    assert ended.sum() == len(episodes)
    # a terminated episode was decided (someone's side is wiped out); a timeout is not a win
    for s in steps[1:]:
        for e in s.info["episodes"]:
            k = e["env_index"]
            if s.truncated[k]:
                assert e["length"] == 60 and not e["win"]
            else:
                alive = s.info["final_alive"][k]
                assert e["win"] == bool(alive.any()) or not alive.any()


def test_smax_auto_reset_rows_show_a_fresh_episode(played):
    _, steps = played
    for s in steps[1:]:
        for k in np.flatnonzero(s.done):
            assert s.alive[k].all()  # the new episode starts with everyone alive
            assert not np.array_equal(s.obs[0][k], s.info["final_obs"][0][k])


def trajectory(steps):
    return [np.concatenate([*s.obs, s.state, s.reward[:, None], s.done[:, None]], axis=1) for s in steps]


def test_smax_same_seed_same_trajectory_other_seed_differs(played):
    _, steps = played
    env = smax_env(seed=0)
    again = play(env, 70)
    assert all(np.array_equal(a, b) for a, b in zip(trajectory(steps), trajectory(again)))
    other = play(env, 5, first=env.reset(seed=123))
    assert not all(np.array_equal(a, b) for a, b in zip(trajectory(steps[:6]), trajectory(other)))


def test_smax_get_state_set_state_replays_exactly():
    env = smax_env(seed=7)
    start = play(env, 15, seed=1)[-1]
    snapshot = env.get_state()
    first = play(env, 30, seed=2, first=start)
    env.set_state(snapshot)
    second = play(env, 30, seed=2, first=start)
    assert all(np.array_equal(a, b) for a, b in zip(trajectory(first), trajectory(second)))
    assert [s.info["episodes"] for s in first] == [s.info["episodes"] for s in second]
    with pytest.raises(ValueError, match="env states for"):
        env.set_state(snapshot[:1])


def test_smax_cannot_represent_mmm2_or_corridor(monkeypatch):
    """TaskUnsupported (a sweep lists the job as not runnable here; a single run exits 2),
    one line naming no task, so a sweep states it once for both maps."""
    for installed, fix in ((False, "StarCraft II 4.10 and smacv2 are not installed here (README: SMAC)"), (True, "use env.backend=sc2")):
        monkeypatch.setattr(tasks, "sc2_installed", lambda: installed)
        lines = set()
        for task in ("MMM2", "corridor"):
            with pytest.raises(TaskUnsupported, match="the task needs StarCraft II: SMAX has no medivacs or terrain") as info:
                envs.make("smac", task, backend="smax")
            lines.add(str(info.value))
        (line,) = lines
        assert "\n" not in line and line.endswith(fix) and "MMM2" not in line


def test_missing_jaxmarl_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "jaxmarl.environments.smax", None)
    with pytest.raises(EnvUnavailable, match=r"pip install 'hasac-bench\[smax\]'") as info:
        envs.make("smac", "8m", backend="smax")
    assert "\n" not in str(info.value)


def test_bad_backend_and_task_are_config_errors():
    with pytest.raises(ConfigError, match="env.backend must be one of"):
        envs.make("smac", "3m", backend="sc3")
    with pytest.raises(ConfigError, match="valid tasks: 3m"):
        envs.make("smac", "4m", backend="smax")
    # v1 maps and SMACv2 scenarios are two families over one module
    with pytest.raises(ConfigError, match="unknown smac task 'protoss_5_vs_5'"):
        envs.make("smac", "protoss_5_vs_5", backend="smax")
    with pytest.raises(ConfigError, match="valid tasks: smacv2_5_units"):
        envs.make("smacv2", "3m", backend="smax")
    with pytest.raises(TaskUnsupported, match="SMAX scenario: it runs on env.backend=smax only"):
        envs.make("smacv2", "smacv2_5_units", backend="sc2")


def test_action_and_mask_conversion_to_smax():
    # SMAC: 0 no-op, 1 stop, 2 N, 3 S, 4 E, 5 W, 6+k attack k; SMAX: 0 N, 1 E, 2 S, 3 W, 4 stop, 5+k
    assert layout.smac_actions_to_smax(np.arange(9)).tolist() == [4, 4, 0, 2, 1, 3, 5, 6, 7]
    smax_avail = np.array([[1, 0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 1, 0, 0]], np.uint8)  # alive, dead
    out = layout.smax_avail_to_smac(smax_avail, np.array([True, False]))
    assert out.astype(int).tolist() == [[0, 1, 1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 0, 0, 0, 0]]


# -- HARL's observation extras (docs/fidelity.md E10) -------------------------------------------
def test_smax_harl_obs_appends_last_actions_and_agent_id_to_the_same_game():
    """env.harl_obs=true: the same SMAX game (same seed, same actions), each observation
    followed by the visible living allies' last actions, the agent's own and its one-hot id;
    an episode start (and a dead agent) shows zeros there but the id."""
    pytest.importorskip("jaxmarl")
    plain = envs.make("smac", "3m", n_envs=N_ENVS, seed=4, backend="smax")
    harl = envs.make("smac", "3m", n_envs=N_ENVS, seed=4, backend="smax", harl_obs=True)
    d, n, a = plain.spec.obs_spaces[0].shape[0], 3, 9  # 3m: 6 + 3 SMAC actions
    assert harl.spec.obs_spaces[0].shape == (d + (n - 1) * a + a + n,)
    first = harl.reset()
    plain.reset()
    for i in range(n):
        extras = first.obs[i][:, d:]
        assert np.array_equal(extras[:, -n:], np.tile(np.eye(n)[i], (N_ENVS, 1)))
        assert not extras[:, :-n].any()
    rng = np.random.default_rng(0)
    step, deaths, resets = first, 0, 0
    for _ in range(80):
        actions = masked_random(step.avail_actions, rng)
        step, other = harl.step(actions), plain.step(actions)
        for i in range(n):
            assert np.array_equal(step.obs[i][:, :d], other.obs[i])  # SMAX's own part unchanged
        assert np.array_equal(step.state, other.state) and np.array_equal(step.reward, other.reward)
        units = harl._states[0].state
        pos, alive = np.asarray(units.unit_positions)[:, :n], np.asarray(units.unit_alive)[:, :n]
        sight = np.asarray(harl._env._env.unit_type_sight_ranges)[np.asarray(units.unit_types)[:, :n]]
        for e in range(N_ENVS):
            if step.done[e]:  # the row shows the next episode's start
                resets += 1
                assert not np.concatenate([step.obs[i][e, d:-n] for i in range(n)]).any()
                continue
            for i in range(n):
                extras = step.obs[i][e, d:]
                assert np.array_equal(extras[-n:], np.eye(n)[i])
                if not alive[e, i]:
                    deaths += 1
                    assert not extras[:-n].any()
                    continue
                blocks = extras[:-n].reshape(n, a)  # allies in id order, then its own
                others = [j for j in range(n) if j != i]
                assert np.array_equal(blocks[-1], np.eye(a)[actions[i][e]])
                for block, j in zip(blocks[:-1], others):
                    visible = alive[e, j] and np.linalg.norm(pos[e, i] - pos[e, j]) < sight[e, i]
                    assert np.array_equal(block, np.eye(a)[actions[j][e]] if visible else np.zeros(a))
    assert deaths and resets  # both branches were exercised


def test_smax_harl_state_appends_last_actions_masks_and_time_step():
    """env.harl_state=true (E11 on SMAX): the same world state, then the living allies' last
    actions, every agent's available actions and t / episode limit; zeros and t = 0 at an
    episode start."""
    pytest.importorskip("jaxmarl")
    plain = envs.make("smac", "3m", n_envs=N_ENVS, seed=9, backend="smax")
    harl = envs.make("smac", "3m", n_envs=N_ENVS, seed=9, backend="smax", harl_state=True)
    d, n, a, limit = plain.spec.state_space.shape[0], 3, 9, 60
    assert harl.spec.state_space.shape == (d + 2 * n * a + 1,)
    step = harl.reset()
    plain.reset()
    assert not step.state[:, d:d + n * a].any() and not step.state[:, -1].any()
    assert np.array_equal(step.state[:, d + n * a:-1], np.concatenate(step.avail_actions, axis=1))
    rng = np.random.default_rng(1)
    t, deaths, resets = np.zeros(N_ENVS, int), 0, 0
    for _ in range(80):
        actions = masked_random(step.avail_actions, rng)
        step, other = harl.step(actions), plain.step(actions)
        assert np.array_equal(step.state[:, :d], other.state) and np.array_equal(step.obs[0], other.obs[0])
        t = np.where(step.done, 0, t + 1)
        resets += step.done.sum()
        assert np.allclose(step.state[:, -1], t / limit)
        assert np.array_equal(step.state[:, d + n * a:-1], np.concatenate(step.avail_actions, axis=1))
        last = step.state[:, d:d + n * a].reshape(N_ENVS, n, a)
        for e in range(N_ENVS):
            for i in range(n):
                if step.done[e]:
                    expected = np.zeros(a)
                elif step.alive[e, i]:
                    expected = np.eye(a)[actions[i][e]]
                else:
                    deaths += 1
                    expected = np.zeros(a)
                assert np.array_equal(last[e, i], expected)
    assert deaths and resets


# -- HARL's feature-pruned state (docs/fidelity.md O11, P6) --------------------------------------
def fp_state_by_hand(units, smax, last, avail, n: int, kinds: list[int]) -> np.ndarray:
    """HARL's get_state_agent for one SMAX game, written unit by unit as HARL writes it
    (StarCraft2_Env.py l.1613 ff.): ally, enemy, move and own blocks, then the agent id."""
    alive, pos, types = (np.asarray(x) for x in (units.unit_alive, units.unit_positions, units.unit_types))
    health = np.asarray(units.unit_health) / np.asarray(smax.unit_type_health)[types]
    cooldown = np.asarray(units.unit_weapon_cooldowns) / np.asarray(smax.unit_type_weapon_cooldowns)[types]
    size = np.array([smax.map_width, smax.map_height], float)
    one_hot = lambda u: [float(types[u] == t) for t in kinds]  # noqa: E731
    rows = []
    for i in range(n):
        allies, enemies, move, own = [], [], [0.0] * 4, [0.0] * (7 + len(kinds) + len(last[i]))
        for j in [j for j in range(n) if j != i]:
            allies.append([0.0] * (8 + len(kinds) + len(last[j])))
        for e in range(n, len(alive)):
            enemies.append([0.0] * (8 + len(kinds)))
        if alive[i]:
            sight = float(np.asarray(smax.unit_type_sight_ranges)[types[i]])
            move = [float(m) for m in avail[i][2:6]]
            for row, e in zip(enemies, range(n, len(alive))):
                if alive[e]:
                    dx, dy = pos[e] - pos[i]
                    dist = np.hypot(dx, dy)
                    cx, cy = (pos[e] - size / 2) / size
                    row[:] = [float(avail[i][6 + e - n]), dist / sight, dx / sight, dy / sight, float(dist < sight), health[e],
                              *one_hot(e), cx, cy]
            for row, j in zip(allies, [j for j in range(n) if j != i]):
                if alive[j]:
                    dx, dy = pos[j] - pos[i]
                    dist = np.hypot(dx, dy)
                    cx, cy = (pos[j] - size / 2) / size
                    row[:] = [float(dist < sight), dist / sight, dx / sight, dy / sight, cooldown[j], health[j], cx, cy,
                              *one_hot(j), *last[j]]
            cx, cy = (pos[i] - size / 2) / size
            own = [1.0, 0.0, 0.0, 0.0, health[i], cx, cy, *one_hot(i), *last[i]]
        rows.append(np.concatenate([np.ravel(allies), np.ravel(enemies), move, own, np.eye(n)[i]]))
    return np.concatenate(rows)


@pytest.mark.parametrize("task,n,types", [("3m", 3, 0), ("2s3z", 5, 2)])
def test_smax_fp_state_is_harls_per_agent_state_computed_by_hand(task, n, types):
    """env.fp_state=true: one state per agent in HARL's FP layout (3m: 81 values each, as
    HARL's 3m FP state), the same game as without it, every row equal to a unit-by-unit
    computation, a dead agent's zero but for its id, last actions reset with an episode."""
    pytest.importorskip("jaxmarl")
    plain = envs.make("smac", task, n_envs=N_ENVS, seed=5, backend="smax")
    fp = envs.make("smac", task, n_envs=N_ENVS, seed=5, backend="smax", fp_state=True)
    a = fp.spec.action_spaces[0].n
    k = a - 6
    width = (n - 1) * (8 + types + a) + k * (8 + types) + 4 + (7 + types + a) + n
    assert fp.spec.agent_states and fp.spec.state_space.shape == (n * width,)
    if task == "3m":
        assert width == 81
    smax = fp._env._env
    step = fp.reset()
    plain.reset()
    units = fp._states[0].state
    kinds = sorted(set(np.asarray(units.unit_types)[0].tolist())) if types else []
    last = np.zeros((N_ENVS, n, a))
    rng = np.random.default_rng(2)
    deaths = resets = 0
    for t in range(60):
        for e in range(N_ENVS):
            sub = type(units)(**{f: getattr(units, f)[e] for f in units.__dataclass_fields__})
            expected = fp_state_by_hand(sub, smax, last[e], [av[e] for av in step.avail_actions], n, kinds)
            assert np.allclose(step.state[e], expected, atol=1e-5), (t, e)
            for i in range(n):
                row = step.state[e, i * width:(i + 1) * width]
                if not step.alive[e, i]:
                    deaths += 1
                    assert not row[:-n].any() and row[-n + i] == 1
        actions = masked_random(step.avail_actions, rng)
        step, other = fp.step(actions), plain.step(actions)
        assert np.array_equal(step.obs[0], other.obs[0]) and np.array_equal(step.reward, other.reward)
        units = fp._states[0].state
        last = np.stack([np.eye(a)[actions[i]] for i in range(n)], axis=1)
        last[step.done] = 0.0
        resets += step.done.sum()
    assert deaths and resets


def test_harl_obs_switches_refuse_the_backend_they_do_not_affect():
    pytest.importorskip("jaxmarl")
    with pytest.raises(ConfigError, match=r"env.obs_extras=none does not apply here: it only affects env.backend=sc2"):
        envs.make("smac", "3m", backend="smax", obs_extras="none")
    with pytest.raises(ConfigError, match=r"env.state_type=smacv2 does not apply here: it only affects env.backend=sc2"):
        envs.make("smac", "3m", backend="smax", state_type="smacv2")
    with pytest.raises(ConfigError, match=r"env.obs_extras must be one of official, none; got 'ids'"):
        envs.make("smac", "3m", backend="smax", obs_extras="ids")
    with pytest.raises(ConfigError, match=r"env.harl_obs=true does not apply here"):
        envs.make("smac", "3m", backend="sc2", harl_obs=True)
    with pytest.raises(ConfigError, match=r"env.harl_obs=true does not apply here"):
        envs.make("smacv2", "smacv2_5_units", backend="smax", harl_obs=True)
    with pytest.raises(ConfigError, match=r"env.harl_state=true does not apply here.*env.state_type"):
        envs.make("smac", "3m", backend="sc2", harl_state=True)
    with pytest.raises(ConfigError, match=r"env.harl_state must be true or false, got 'yes'"):
        envs.make("smac", "3m", backend="smax", harl_state="yes")
    with pytest.raises(ConfigError, match=r"env.fp_state=true does not apply here.*env.state_type"):
        envs.make("smac", "3m", backend="sc2", fp_state=True)
    with pytest.raises(ConfigError, match=r"env.harl_state and env.fp_state are two different states"):
        envs.make("smac", "3m", backend="smax", harl_state=True, fp_state=True)


# -- sc2 backend against a test double ---------------------------------------------------------
def unit(health, health_max, x, y, unit_type, weapon_cooldown=0.0, shield=0.0):
    return types.SimpleNamespace(health=health, health_max=health_max, weapon_cooldown=weapon_cooldown, energy=0.0,
                                 shield=shield, pos=types.SimpleNamespace(x=x, y=y), unit_type=unit_type)


# The keyword parameters of smacv2's StarCraft2Env.__init__ (oxwhirl/smacv2,
# smacv2/env/starcraft2/starcraft2.py [9dabb98]; it takes no **kwargs, so any other name is a
# TypeError on construction, before StarCraft II starts). The test double refuses the same.
SMACV2_PARAMETERS = {
    "map_name", "step_mul", "move_amount", "difficulty", "game_version", "seed", "continuing_episode",
    "obs_all_health", "obs_own_health", "obs_last_action", "obs_pathing_grid", "obs_terrain_height",
    "obs_instead_of_state", "obs_timestep_number", "obs_own_pos", "obs_starcraft", "conic_fov", "num_fov_actions",
    "state_last_action", "state_timestep_number", "reward_sparse", "reward_only_positive", "reward_death_value",
    "reward_win", "reward_defeat", "reward_negative_scale", "reward_scale", "reward_scale_rate", "use_unit_ranges",
    "min_attack_range", "kill_unit_step_mul", "fully_observable", "capability_config", "replay_dir", "replay_prefix",
    "window_size_x", "window_size_y", "heuristic_ai", "heuristic_rest", "debug", "prob_obs_enemy", "action_mask",
}


class FakeStarCraft2Env:
    """TEST DOUBLE of smacv2's StarCraft2Env API (get_env_info/reset/step/get_obs/get_state/
    get_avail_actions/close, and the unit internals HARL's FP and EP states read), not StarCraft II:
    2 agents, 1 enemy, scripted outcome."""

    # the internals harl_state reads, smacv2's names (a 32×32 map, playable 24×20; allies of
    # two custom types from 100, an enemy Stalker (type 74) with a shield)
    n_agents, n_enemies, n_actions, n_actions_no_attack = 2, 1, 7, 6
    shield_bits_ally, shield_bits_enemy, unit_type_bits = 0, 1, 2
    map_type, medivac_id, _min_unit_type = "marines", 0, 100
    map_x, map_y, max_distance_x, max_distance_y = 32, 32, 24, 20

    def __init__(self, map_name="3m", difficulty="7", launch_error=None, outcome="win", **kwargs):
        unknown = set(kwargs) - SMACV2_PARAMETERS
        assert not unknown, f"smacv2's StarCraft2Env takes no {sorted(unknown)}"
        self.map_name, self.kwargs = map_name, kwargs
        self.episode_limit, self._seed, self.t = 3, None, 0
        self.launch_error, self.outcome = launch_error, outcome
        self.timeouts = 0  # smacv2 counts time-outs; `episode_limit` info only with continuing_episode
        self.dead = np.zeros(2, bool)
        self.agents = {0: unit(30, 45, 22, 12, 101, weapon_cooldown=5), 1: unit(45, 45, 16, 16, 100)}
        self.enemies = {0: unit(20, 80, 10, 26, 74, shield=40)}
        self.last_action = np.zeros((2, 7))

    @property
    def _episode_steps(self):
        return self.t

    def get_unit_by_id(self, i):
        return self.agents[i]

    def get_avail_agent_actions(self, i):
        return self.get_avail_actions()[i]

    def unit_max_cooldown(self, u):
        return 15

    def unit_max_shield(self, u):
        assert u.unit_type == 74
        return 80

    def get_unit_type_id(self, u, ally):
        assert not ally and u.unit_type == 74
        return 1

    def get_surrounding_pathing(self, u):
        return [1, 0, 1, 0, 1, 0, 1, 0]

    def get_surrounding_height(self, u):
        return [0.5] * 9

    def unit_sight_range(self, i):
        return 9

    def get_env_info(self):
        return {"n_agents": 2, "n_actions": 7, "obs_shape": 5, "state_shape": 6, "episode_limit": self.episode_limit}

    def reset(self):
        if self.launch_error:
            raise self.launch_error
        self.t, self.dead[:] = 0, False
        return self.get_obs(), self.get_state()

    def step(self, actions):
        assert all(isinstance(a, int) for a in actions)
        self.t += 1
        self.dead[1] = self.t >= 2
        self.agents[1].health = 0 if self.dead[1] else 45
        self.last_action = np.eye(7)[actions]
        if self.outcome == "win" and self.t == 2:
            return 1.5, True, {"battle_won": True}
        if self.outcome == "loss" and self.t == self.episode_limit:  # the battle's end comes first
            return 0.5, True, {"battle_won": False}
        if self.t >= self.episode_limit:
            self.timeouts += 1
            return 0.5, True, {"battle_won": False}
        return 0.5, False, {"battle_won": False}

    def get_obs(self):
        return [np.full(5, self.t + i, np.float64) for i in range(2)]

    def get_state(self):
        return np.arange(6) + self.t

    def get_avail_actions(self):
        return [[1, 0, 0, 0, 0, 0, 0] if d else [0, 1, 1, 1, 1, 1, 1] for d in self.dead]

    def close(self):
        pass


class FakeCapabilityWrapper(FakeStarCraft2Env):
    """TEST DOUBLE of smacv2's StarCraftCapabilityEnvWrapper: records its kwargs, keeps `.env`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.env = self


def fake_smacv2(**env_kwargs):
    return types.SimpleNamespace(
        StarCraft2Env=lambda **kw: FakeStarCraft2Env(**kw, **env_kwargs),
        StarCraftCapabilityEnvWrapper=lambda **kw: FakeCapabilityWrapper(**kw, **env_kwargs),
    )


def test_sc2_conversion_of_a_won_episode():
    env = sc2.Sc2Env("3m", tasks.MAPS["3m"], None, "7", smacv2=fake_smacv2(), obs_extras="none", state_type="smacv2")
    spec = env.spec
    assert (spec.task, spec.n_agents, spec.state_space.shape, spec.episode_limit) == ("3m", 2, (6,), 3)
    assert [s.n for s in spec.action_spaces] == [7, 7] and spec.obs_spaces[0].shape == (5,)
    assert env._env.kwargs == {"obs_last_action": False}
    view = env.reset(seed=3)
    assert env._env._seed == 3 and view.alive.tolist() == [True, True]
    assert view.avail_actions[0].dtype == bool and view.obs[0].dtype == np.float32
    view, reward, terminated, truncated, info = env.step([np.array(1), np.array([2])])
    assert (reward, terminated, truncated, info) == (0.5, False, False, {})
    view, reward, terminated, truncated, info = env.step([np.array(1), np.array(0)])
    assert (reward, terminated, truncated, info) == (1.5, True, False, {"win": True})
    assert view.alive.tolist() == [True, False]  # death mask from the no-op rule
    assert view.state.tolist() == list(range(2, 8))


def test_sc2_official_observation_is_harls_last_actions_and_agent_id():
    """HARL's SMAC env (E10): smacv2 asked for its last-action features, a one-hot agent id
    after them, also for a dead agent; SMACv2 scenarios keep smacv2's observation."""
    env = sc2.Sc2Env("3m", tasks.MAPS["3m"], None, "7", smacv2=fake_smacv2())
    assert env._env.kwargs == {"obs_last_action": True} and env.spec.obs_spaces[0].shape == (7,)
    env.reset(None)
    view = env.step([np.array(1), np.array(1)])[0]
    view = env.step([np.array(1), np.array(0)])[0]
    assert view.alive.tolist() == [True, False]
    assert view.obs[0].tolist() == [2.0] * 5 + [1.0, 0.0] and view.obs[1].tolist() == [3.0] * 5 + [0.0, 1.0]
    v2 = sc2.Sc2Env("zerg_10_vs_11", tasks.MAPS["zerg_10_vs_11"], 50, "7", smacv2=fake_smacv2(), family="smacv2")
    assert v2.spec.obs_spaces[0].shape == (5,) and v2.reset(None).obs[0].shape == (5,)


def test_sc2_official_state_is_harls_fp_state_per_agent():
    """HARL's default FP state (O11, P6), one per agent, from the game's units, checked
    against a hand computation on the test double's units (get_state_agent's layout)."""
    env = sc2.Sc2Env("3m", tasks.MAPS["3m"], None, "7", smacv2=fake_smacv2(outcome="timeout"))
    # per agent: 1 other ally × 17 (8 + 2 types + 7 actions), 1 enemy × 11 (8 + shield + 2
    # types), 4 moves, own 16 (7 + 2 types + 7 actions), 2 ids
    d = 17 + 11 + 4 + 16 + 2
    assert env.spec.agent_states and env.spec.critic_rows == 2 and env.spec.state_space.shape == (2 * d,)
    from algos.common.registry import check_compatible

    check_compatible("hasac", env.spec)
    with pytest.raises(ConfigError, match="qmix does not take one state per agent"):
        check_compatible("qmix", env.spec)  # QMIX's official state is SMAC's own (harness/tuned/qmix.yaml)
    env.reset(None)
    view = env.step([np.array(1), np.array(2)])[0]  # t = 1: both alive, last actions 1 and 2
    act = lambda a: list(np.eye(7)[a])  # noqa: E731
    # agent 0 at (22, 12), agent 1 at (16, 16), the Stalker at (10, 26); sight 9; map centre
    # (16, 16), playable 24 × 20
    agent0 = [
        1, np.sqrt(52) / 9, -6 / 9, 4 / 9, 0 / 15, 45 / 45, 0 / 24, 0 / 20, 1, 0, *act(2),  # ally 1, visible
        1, np.sqrt(340) / 9, -12 / 9, 14 / 9, 0, 20 / 80, 40 / 80, 0, 1, -6 / 24, 10 / 20,  # Stalker, out of sight
        1, 1, 1, 1,  # moves
        1, 0, 0, 0, 30 / 45, 6 / 24, -4 / 20, 0, 1, *act(1),  # own
        1, 0]
    agent1 = [
        1, np.sqrt(52) / 9, 6 / 9, -4 / 9, 5 / 15, 30 / 45, 6 / 24, -4 / 20, 0, 1, *act(1),
        1, np.sqrt(136) / 9, -6 / 9, 10 / 9, 0, 20 / 80, 40 / 80, 0, 1, -6 / 24, 10 / 20,
        1, 1, 1, 1,
        1, 0, 0, 0, 45 / 45, 0, 0, 1, 0, *act(2),
        0, 1]
    assert view.state.dtype == np.float32
    np.testing.assert_allclose(view.state, np.array(agent0 + agent1, np.float32), rtol=1e-6)
    view = env.step([np.array(3), np.array(0)])[0]  # t = 2: agent 1 has died
    states = view.state.reshape(2, d)
    assert states[1].tolist() == [0] * (d - 2) + [0, 1]  # the dead: its id only
    after = [0] * 17 + agent0[17:28] + [1, 1, 1, 1] + [1, 0, 0, 0, 30 / 45, 6 / 24, -4 / 20, 0, 1, *act(3)] + [1, 0]
    np.testing.assert_allclose(states[0], np.array(after, np.float32), rtol=1e-6)  # the dead ally's row is zero


@pytest.mark.parametrize("algo", ["hasac", "happo"])
def test_sc2_fp_state_trains_one_critic_row_per_agent_through_the_loop(algo):
    """The sc2 backend's default FP state drives HASAC's and HAPPO's per-agent critic rows
    through the harness loop (two test-double games, deaths and episode ends included)."""
    import torch

    from algos.common.registry import algorithm_class
    from envs.base import VecEnv
    from tests.algo_helpers import run_loop, small_config

    make = lambda: sc2.Sc2Env("3m", tasks.MAPS["3m"], None, "7", smacv2=fake_smacv2(outcome="timeout"))  # noqa: E731
    env = VecEnv(make, 2, seed=0)
    assert env.spec.critic_rows == 2
    config = algorithm_class("happo").Config(episode_length=8, hidden_sizes=[16]) if algo == "happo" else small_config(algo)
    model = algorithm_class(algo)(env.spec, config, env.n_envs, torch.device("cpu"), 0)
    step, total, metrics = run_loop(model, env, 96)
    assert step.state.shape == (2, env.spec.state_space.shape[0]) and total >= 96
    assert metrics and all(np.isfinite(v) for v in metrics.values())


def test_sc2_ep_state_is_harls_ep_global_state():
    """HARL's EP state (E11) from the game's units, checked against a hand computation on
    the test double's units; smacv2's get_state with state_type=smacv2."""
    env = sc2.Sc2Env("3m", tasks.MAPS["3m"], None, "7", smacv2=fake_smacv2(outcome="timeout"), state_type="ep")
    assert not env.spec.agent_states
    assert env.spec.state_space.shape == (2 * 13 + 1 * 6 + 2 * 24 + 1 + 5,)
    env.reset(None)
    env.step([np.array(1), np.array(2)])
    view = env.step([np.array(1), np.array(0)])[0]  # t = 2: agent 1 has died
    pathing, heights = [1, 0, 1, 0, 1, 0, 1, 0], [0.5] * 9
    expected = np.concatenate([
        # ally 0: health 30/45, cooldown 5/15, x (22 − 16)/24, y (12 − 16)/20, type 101 − 100, last action 1
        [30 / 45, 5 / 15, 6 / 24, -4 / 20, 0, 1, 0, 1, 0, 0, 0, 0, 0], [0] * 13,  # ally 1 dead: zeros
        [20 / 80, -6 / 24, 10 / 20, 40 / 80, 0, 1],  # the Stalker: health, x, y, shield, type 1
        [0, 1, 1, 1, 1, 1, 1], pathing, heights,  # agent 0's moves
        [1, 0, 0, 0, 0, 0, 0], pathing, heights,  # agent 1 (dead): the no-op only
        [2 / 3], [32, 32, 24, 20, 9],  # time step over the limit; map information
    ]).astype(np.float32)
    assert view.state.dtype == np.float32 and np.array_equal(view.state, expected)
    plain = sc2.Sc2Env("3m", tasks.MAPS["3m"], None, "7", smacv2=fake_smacv2(), state_type="smacv2")
    assert plain.spec.state_space.shape == (6,) and plain.reset(None).state.tolist() == list(range(6))


def test_sc2_timeout_is_truncation_not_termination():
    env = sc2.Sc2Env("3m", tasks.MAPS["3m"], None, "7", smacv2=fake_smacv2(outcome="timeout"))
    env.reset(None)
    results = [env.step([np.array(1), np.array(1)]) for _ in range(3)]
    assert [(r[2], r[3]) for r in results] == [(False, False), (False, False), (False, True)]
    assert results[-1][4] == {"win": False}
    # smacv2 reports no `episode_limit` (continuing_episode is off): the time-out is read from
    # its `timeouts` counter, as HARL's smacv2_env.py; a defeat on the last step terminates
    lost = sc2.Sc2Env("3m", tasks.MAPS["3m"], None, "7", smacv2=fake_smacv2(outcome="loss"))
    lost.reset(None)
    results = [lost.step([np.array(1), np.array(1)]) for _ in range(3)]
    assert [(r[2], r[3]) for r in results] == [(False, False), (False, False), (True, False)]


def test_sc2_smacv2_scenarios_use_the_capability_wrapper_with_our_map_config():
    env = sc2.Sc2Env("zerg_10_vs_11", tasks.MAPS["zerg_10_vs_11"], 50, "7", smacv2=fake_smacv2(), family="smacv2")
    assert (env.spec.family, env.spec.task) == ("smacv2", "zerg_10_vs_11")
    kwargs = env._env.kwargs
    assert env._env.map_name == "10gen_zerg" and env._env.episode_limit == 50
    cap = kwargs["capability_config"]
    assert (cap["n_units"], cap["n_enemies"]) == (10, 11)
    # HARL's zerg_10_vs_11.yaml: zergling, baneling, hydralisk at 0.45, 0.1, 0.45, no team of banelings only
    assert cap["team_gen"] == {"dist_type": "weighted_teams", "unit_types": ["zergling", "baneling", "hydralisk"],
                               "weights": [0.45, 0.1, 0.45], "exception_unit_types": ["baneling"], "observe": True}
    assert cap["start_positions"] == {"dist_type": "surrounded_and_reflect", "p": 0.5, "map_x": 32, "map_y": 32}
    assert (kwargs["obs_own_pos"], kwargs["use_unit_ranges"], kwargs["obs_last_action"]) == (True, True, False)
    # HARL's protoss files set no exception (a team of colossi may be drawn), its terran files the medivac
    protoss = sc2.Sc2Env("protoss_5_vs_5", tasks.MAPS["protoss_5_vs_5"], None, "7", smacv2=fake_smacv2(),
                         family="smacv2")._env.kwargs["capability_config"]["team_gen"]
    assert protoss["unit_types"] == ["stalker", "zealot", "colossus"] and "exception_unit_types" not in protoss
    terran = sc2.Sc2Env("terran_5_vs_5", tasks.MAPS["terran_5_vs_5"], None, "7", smacv2=fake_smacv2(),
                        family="smacv2")._env.kwargs["capability_config"]["team_gen"]
    assert terran["exception_unit_types"] == ["medivac"] and terran["weights"] == [0.45, 0.45, 0.1]


def test_sc2_launch_failure_is_one_line_naming_what_to_install():
    error = FileNotFoundError(2, "No such file or directory", "/root/StarCraftII/Versions")
    env = sc2.Sc2Env("3m", tasks.MAPS["3m"], None, "7", smacv2=fake_smacv2(launch_error=error))
    with pytest.raises(EnvUnavailable, match="StarCraft II 4.10.*SC2PATH.*SMAC maps") as info:
        env.reset(0)
    assert "\n" not in str(info.value)


def test_sc2_without_starcraft_is_env_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("SC2PATH", str(tmp_path))  # no Versions/ inside
    monkeypatch.setitem(sys.modules, "smacv2.env", fake_smacv2())
    with pytest.raises(EnvUnavailable, match="found no StarCraft II: install StarCraft II 4.10"):
        envs.make("smac", "3m", backend="sc2")
    assert tasks.Config().backend == tasks.resolve_backend(tasks.Config(backend="auto")) == "smax"
    (tmp_path / "Versions").mkdir()
    assert tasks.Config().backend == tasks.resolve_backend(tasks.Config(backend="auto")) == "sc2"


def test_missing_sc2_through_the_harness_exits_2_with_one_line(tmp_path):
    env = {"SC2PATH": str(tmp_path), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "harness.run", "env=smac", "task=3m", "env.backend=sc2", "algo=mappo",
         "budget=100", "eval_every=100", f"results_dir={tmp_path / 'results'}", "progress=false"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "StarCraft II 4.10" in lines[0] and "SC2PATH" in lines[0]
    assert not (tmp_path / "results").exists()


# -- learning (slow; not part of the default run) -------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("algo, budget", [("hasac", 100_000), ("mappo", 200_000)])
def test_learning_on_smax_3m_beats_random(tmp_path, algo, budget):
    """HASAC and MAPPO reach a win rate clearly above the masked-random policy's (about 0
    on SMAX 3m against the heuristic enemy) within a CPU budget. Measured 2026-12-01 at 1bee7c3
    (harness defaults, seed 0, 32 eval episodes), win rate every 20k steps:
    MAPPO 0, .47, .47, .47, .47, .47, .59, .72, .78, .78, .69 (200k, 13 min);
    HASAC 0, .38, .41, .34, .47, .41 (100k, 60 min on 2 loaded cores)."""
    import json

    out = subprocess.run(
        [sys.executable, "-m", "harness.run", "env=smac", "task=3m", "env.backend=smax", f"algo={algo}",
         f"budget={budget}", "eval_every=20000", "eval_episodes=32", f"results_dir={tmp_path}", "progress=false"],
        capture_output=True, text=True, timeout=6 * 3600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    env = smax_env(seed=1000)
    steps = play(env, 600)
    random_wins = [e["win"] for s in steps for e in s.info["episodes"]]
    assert summary["win_rate"] >= np.mean(random_wins) + 0.3, (summary, np.mean(random_wins))
