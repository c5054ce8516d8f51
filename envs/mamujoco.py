"""Multi-Agent MuJoCo (gymnasium-robotics `mamujoco_v1`): one robot, its actuators split
between agents; every agent gets the same (shared) reward.

Task names are `<Scenario>-<conf>` as in the paper, e.g. `HalfCheetah-2x3`, `Ant-8x1`,
`Humanoid-17x1`, `ManySegmentSwimmer-10x2` (alias `manyagent_swimmer-10x2`). Any pair that
gymnasium-robotics knows is accepted (e.g. `Ant-2x4d`, `Humanoid-9|8`, `Reacher-2x1`).
The paper's splits that gymnasium-robotics 1.4 lacks (HalfCheetah 3x2, Ant 8x1,
Walker2d 6x1/3x2, Humanoid/HumanoidStandup 17x1) are built here from the joint groups of
HARL's multiagent_mujoco (harl/envs/mamujoco/multiagent_mujoco/obsk.py), in its agent order.

Observation modes (`env.obs_mode`):
- 'global' (default; the official HASAC/HARL view): every agent observes the full
  single-agent observation plus a one-hot agent id.
- 'local': gymnasium-robotics' `agent_obsk` neighbourhood view (agent_obsk=k joints away).
The state is always the full single-agent observation (`env.state()`).

Fidelity switches (envs/fidelity.py, docs/fidelity.md), official by default, as HARL's
wrapper (harl/envs/mamujoco/multiagent_mujoco/mujoco_multi.py):
- `obs_norm`: HARL z-scores each agent's observation vector per sample, (x − mean x)/std x
  over its own entries (l.209-210), and the state likewise (l.243); 'raw' does not.
- `action_rescale`: HARL wraps the robot in NormalizedActions (l.22-27, l.109), which maps
  a ↦ low + (a + 1)(high − low)/2 although the policies already act on [low, high]: on
  Humanoid/HumanoidStandup (±0.4) an action a reaches the robot as 0.4·a. 'single' maps
  nothing (identical wherever the bounds are ±1).
- `action_clip`: HARL passes the action on unclipped (mujoco_multi.py l.159-167): MuJoCo
  clamps the control to its range, and the control cost is computed on the action as given
  (gym v2 and Gymnasium v5 alike). 'clip' clips each action into its box first, so an
  out-of-range action (a Gaussian policy's) costs what its clipped value costs.

Differences from the paper: gymnasium-robotics wraps Gymnasium's MuJoCo **v5** envs, the
paper used gym v2 (mujoco-py): observation sizes (v5 Ant has contact forces, state 105)
and reward terms differ, so returns are not directly comparable.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zlib
from dataclasses import dataclass
from functools import partial
from typing import Callable, ClassVar, Sequence

import numpy as np
from gymnasium import spaces

from envs.base import AgentView, EnvSpec, FamilyConfig, SingleEnv
from envs.errors import ConfigError, EnvUnavailable
from envs.fidelity import Switch, check_switches

# The paper's tasks (plus Humanoid's library-native 9|8 split); others are accepted too.
TASKS = (
    "HalfCheetah-2x3", "HalfCheetah-3x2", "HalfCheetah-6x1",
    "Ant-2x4", "Ant-4x2", "Ant-8x1",
    "Walker2d-2x3", "Walker2d-6x1",
    "Hopper-3x1",
    "Humanoid-17x1", "Humanoid-9|8",
    "HumanoidStandup-17x1",
    "ManySegmentSwimmer-10x2",
)
# The original multiagent_mujoco's scenario names -> gymnasium-robotics'.
ALIASES = {"manyagent_swimmer": "ManySegmentSwimmer", "manyagent_ant": "ManySegmentAnt"}
OBS_MODES = ("global", "local")
# Scenarios whose actuators are not bounded by ±1 (Gymnasium v5: ±0.4), where HARL's second
# action scaling (NormalizedActions) changes the action; a test checks this list.
RESCALED = ("Humanoid", "HumanoidStandup")


@dataclass
class Config(FamilyConfig):
    obs_mode: str = "global"
    """'global': full single-agent obs + one-hot id (official HASAC); 'local': agent_obsk view."""
    agent_obsk: int = 1
    """Local mode only: observe joints up to this many graph hops away."""
    episode_limit: int = 1000
    """Time limit: the episode is truncated (not terminated) after this many steps."""
    # envs.make(..., n_envs=8), random actions, 2 cores shared with other jobs (load ~1):
    # HalfCheetah-2x3 sync 5.4-5.5k vs subproc 4.0-4.2k env-steps/s; Ant-2x4 sync 1.6k vs
    # subproc 1.6k. The pipe round-trip per step eats what the second core gives: in-process.
    vectorization: str = "sync"
    """'sync': copies step in this process; 'subproc': copies step in worker processes."""
    obs_norm: str = "official"
    """'official': every observation vector and the state z-scored per sample (HARL);
    'raw': the simulator's values."""
    action_rescale: str = "official"
    """'official': the action is mapped once more, a ↦ low + (a + 1)(high − low)/2, before
    the robot (HARL's NormalizedActions; 0.4·a on Humanoid*); 'single': it is not."""
    action_clip: str = "official"
    """'official': actions reach the robot unclipped (MuJoCo clamps the control; the control
    cost sees the action as given, as in HARL); 'clip': clipped into the box first."""

    fidelity: ClassVar[dict[str, Switch]] = {
        "obs_norm": Switch(("raw",)),
        "action_rescale": Switch(("single",), "Humanoid and HumanoidStandup (actuator bounds ±0.4)",
                                 lambda task, c: resolve_name(task) in RESCALED),
        "action_clip": Switch(("clip",)),
    }

    def variant_tokens(self) -> tuple[str, ...]:
        if self.obs_mode != "local":
            return ()
        return ("local",) if self.agent_obsk == 1 else ("local", f"k{self.agent_obsk}")


def _import_mamujoco():
    """gymnasium-robotics' MaMuJoCo module, or EnvUnavailable naming the extra."""
    try:
        from gymnasium_robotics import mamujoco_v1
    except ImportError as exc:
        raise EnvUnavailable(
            f"env=mamujoco needs gymnasium-robotics and mujoco: pip install 'hasac-bench[mamujoco]' ({exc})"
        ) from None
    return mamujoco_v1


def _one_each(*joints: str) -> tuple[tuple[str, ...], ...]:
    return tuple((j,) for j in joints)


# Splits the paper used that gymnasium-robotics lacks: agent -> the joints (actuators) it
# drives, by gymnasium-robotics' node labels (= MuJoCo joint names), in HARL's agent order.
HARL_SPLITS: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
    ("HalfCheetah", "3x2"): (("bfoot", "bshin"), ("bthigh", "ffoot"), ("fshin", "fthigh")),
    ("Ant", "8x1"): _one_each("hip1", "ankle1", "hip2", "ankle2", "hip3", "ankle3", "hip4", "ankle4"),
    ("Walker2d", "6x1"): _one_each(
        "foot_joint", "leg_joint", "thigh_joint", "foot_left_joint", "leg_left_joint", "thigh_left_joint"
    ),
    ("Walker2d", "3x2"): (
        ("foot_joint", "leg_joint"), ("thigh_joint", "foot_left_joint"), ("leg_left_joint", "thigh_left_joint")
    ),
}
HARL_SPLITS[("Humanoid", "17x1")] = HARL_SPLITS[("HumanoidStandup", "17x1")] = _one_each(
    "left_shoulder1", "left_shoulder2", "abdomen_x", "abdomen_y", "abdomen_z", "right_shoulder1",
    "right_shoulder2", "right_elbow", "left_elbow", "left_hip_x", "left_hip_y", "left_hip_z",
    "right_hip_x", "right_hip_y", "right_hip_z", "right_knee", "left_knee",
)


def resolve_name(task: str) -> str:
    """The gymnasium-robotics scenario of a `<Scenario>-<conf>` task name."""
    name = task.partition("-")[0]
    return ALIASES.get(name, name)


def resolve_task(task: str) -> tuple[str, str, dict | None]:
    """`<Scenario>-<conf>` -> (scenario, conf, factorization); factorization is None when
    gymnasium-robotics knows the split itself. ConfigError when neither knows it."""
    get_parts_and_edges = _import_mamujoco().get_parts_and_edges
    scenario, conf = resolve_name(task), task.partition("-")[2]
    if (scenario, conf) in HARL_SPLITS:
        (nodes,), edges, globals_ = get_parts_and_edges(scenario, None)  # one part: every actuator
        by_label = {node.label: node for node in nodes}
        partition = [tuple(by_label[j] for j in joints) for joints in HARL_SPLITS[scenario, conf]]
        return scenario, conf, {"partition": partition, "edges": edges, "globals": globals_}
    try:
        get_parts_and_edges(scenario, conf)
    except Exception:  # the library raises bare Exception/AssertionError for unknown names
        raise ConfigError(
            f"unknown mamujoco task {task!r}; valid tasks: {', '.join(TASKS)} "
            "(or any <Scenario>-<conf> gymnasium-robotics supports)"
        ) from None
    return scenario, conf, None


class MaMuJoCoEnv(SingleEnv):
    """One MaMuJoCo copy; agents in gymnasium-robotics' `possible_agents` order."""

    def __init__(self, task: str, config: Config):
        scenario, conf, factorization = resolve_task(task)
        self._env = build_env(scenario, conf, factorization, config)
        self._agents = list(self._env.possible_agents)
        self._local = config.obs_mode == "local"
        self._norm = config.obs_norm == "official"
        self._rescale = config.action_rescale == "official"
        self._limit = int(config.episode_limit)
        self._t = 0
        n_agents = len(self._agents)
        self._ids = np.eye(n_agents, dtype=np.float32)
        state_space = _float32_box(self._env.single_agent_env.observation_space)
        if self._local:
            obs_spaces = tuple(_float32_box(self._env.observation_space(a)) for a in self._agents)
        else:  # [state | one-hot id]
            low = np.concatenate([state_space.low, np.zeros(n_agents, np.float32)])
            high = np.concatenate([state_space.high, np.ones(n_agents, np.float32)])
            obs_spaces = (spaces.Box(low, high, dtype=np.float32),) * n_agents
        if self._norm:  # z-scores are unbounded
            obs_spaces = tuple(_unbounded(s) for s in obs_spaces)
        self._action_spaces = tuple(self._env.action_space(a) for a in self._agents)
        self._clip = config.action_clip == "clip"
        self._to_global = _action_map(self._env, self._action_spaces, self._clip)
        self.spec = EnvSpec(
            family="mamujoco",
            task=task,
            n_agents=n_agents,
            obs_spaces=obs_spaces,
            state_space=state_space,
            action_spaces=self._action_spaces,
            episode_limit=self._limit,
        )

    def reset(self, seed: int | None) -> AgentView:
        self._t = 0
        # seed=None continues the copy's np_random; gymnasium rejects numpy ints.
        obs, _ = self._env.reset(seed=None if seed is None else int(seed))
        return self._view(obs)

    def step(self, actions: Sequence[np.ndarray]):
        if self._rescale:  # HARL's NormalizedActions, before the clip (MuJoCo clamps to ctrlrange there)
            actions = [normalized_action(a, space) for a, space in zip(actions, self._action_spaces)]
        if self._local:
            joint = {
                agent: _clipped(np.asarray(a, np.float32).reshape(space.shape), space, self._clip)
                for agent, a, space in zip(self._agents, actions, self._action_spaces)
            }
            obs, rewards, terms, truncs, _ = self._env.step(joint)
            agent = self._agents[0]  # the reward is shared: every agent gets the same
            reward, terminated, lib_truncated = rewards[agent], terms[agent], truncs[agent]
        else:
            # What MultiAgentMujocoEnv.step does, minus building the unused local observations
            # (~20% of a HalfCheetah/Ant step here).
            obs = None
            _, reward, terminated, lib_truncated, _ = self._env.single_agent_env.step(self._to_global(actions))
        self._t += 1
        # Termination (unhealthy robot) wins over the time limit: it must not bootstrap.
        truncated = (bool(lib_truncated) or self._t >= self._limit) and not terminated
        return self._view(obs), float(reward), bool(terminated), truncated, {}

    def get_state(self) -> dict:
        """Everything the next steps read: the whole MjData, the np_random stream, the
        wrappers' counters (TimeLimit's elapsed steps, ...) and our step count.
        Whole MjData, not mj_getState(mjSTATE_INTEGRATION): gymnasium's Ant/Humanoid read
        body positions left over from the previous mj_step before stepping, which the
        integration state (+ mj_forward) does not reproduce bit for bit. The pickle is
        mostly empty arena, so it is compressed (~700 kB -> ~30 kB for HalfCheetah/Ant)."""
        mj_env = self._env.single_agent_env.unwrapped
        return {
            "t": self._t,
            "mjdata": zlib.compress(pickle.dumps(mj_env.data, protocol=pickle.HIGHEST_PROTOCOL), 1),
            "np_random": mj_env.np_random.bit_generator.state,
            "np_random_seed": mj_env._np_random_seed,
            "wrappers": [_counters(w) for w in _wrappers(self._env.single_agent_env)],
        }

    def set_state(self, state: dict) -> None:
        import mujoco

        mj_env = self._env.single_agent_env.unwrapped
        self._t = state["t"]
        # Copy into the existing MjData: the renderer and wrappers hold references to it.
        mujoco.mj_copyData(mj_env.data, mj_env.model, pickle.loads(zlib.decompress(state["mjdata"])))
        mj_env.np_random.bit_generator.state = state["np_random"]
        mj_env._np_random_seed = state["np_random_seed"]
        for wrapper, counters in zip(_wrappers(self._env.single_agent_env), state["wrappers"], strict=True):
            vars(wrapper).update(counters)

    def close(self) -> None:
        self._env.close()

    def _view(self, obs: dict | None) -> AgentView:
        state = self._env.state()
        if self._local:
            agent_obs = [obs[a] for a in self._agents]
        else:
            agent_obs = [np.concatenate([state, one_hot]) for one_hot in self._ids]
        if self._norm:
            state, agent_obs = z_score(state), [z_score(o) for o in agent_obs]
        return AgentView(obs=[o.astype(np.float32) for o in agent_obs], state=state.astype(np.float32))


def z_score(x: np.ndarray) -> np.ndarray:
    """(x − mean x) / std x over the vector's own entries (HARL mujoco_multi.py l.210, l.243)."""
    x = np.asarray(x, np.float64)
    return (x - x.mean()) / x.std()


def normalized_action(action: np.ndarray, space: spaces.Box) -> np.ndarray:
    """HARL's NormalizedActions (mujoco_multi.py l.22-27): a ↦ low + (a + 1)(high − low)/2."""
    return space.low + (np.asarray(action, np.float32).reshape(space.shape) + 1.0) * (space.high - space.low) / 2.0


def _unbounded(space: spaces.Box) -> spaces.Box:
    return spaces.Box(-np.inf, np.inf, space.shape, np.float32)


def _clipped(action: np.ndarray, space: spaces.Box, clip: bool) -> np.ndarray:
    return np.clip(action, space.low, space.high) if clip else action


def _action_map(env, action_spaces, clip: bool = True) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """The library's map_local_actions_to_global_action (after clipping each agent's action
    into its Box when `clip`) with the body-part loop done once here: per agent, which entries
    of its action go to which robot actuators. (build_env always passes an integer agent_obsk,
    so the library's partitions always exist.)"""
    n = env.single_agent_env.action_space.shape[0]
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    routes = []
    for partition, space in zip(env.agent_action_partitions, action_spaces):
        to_robot, from_agent = [], []
        for act_index, part in enumerate(partition):
            ids = np.atleast_1d(part.act_ids).tolist()
            to_robot += ids
            from_agent += [act_index] * len(ids)
        low[to_robot], high[to_robot] = space.low[from_agent], space.high[from_agent]
        routes.append((np.array(to_robot), np.array(from_agent)))
    covered = sorted(np.concatenate([robot for robot, _ in routes]).tolist())
    if covered != list(range(n)):  # the library's own check, which it repeats every step
        raise ValueError(f"agent action partition assigns actuators {covered}, not each of 0..{n - 1} once")

    def to_global(actions: Sequence[np.ndarray]) -> np.ndarray:
        action = np.empty(n)
        for (robot, agent), a in zip(routes, actions):
            action[robot] = np.asarray(a, np.float32).reshape(-1)[agent]
        return np.clip(action, low, high, out=action) if clip else action

    return to_global


def _wrappers(env) -> list:
    """The gymnasium wrapper chain above the MuJoCo env, outermost first."""
    chain = []
    while hasattr(env, "env"):
        chain.append(env)
        env = env.env
    return chain


def _counters(wrapper) -> dict:
    """A wrapper's scalar members: its counters and flags (TimeLimit._elapsed_steps,
    OrderEnforcing._has_reset, ...); everything else a wrapper holds is configuration."""
    return {k: v for k, v in vars(wrapper).items() if isinstance(v, (bool, int, float)) and k != "env"}


def build_env(scenario: str, conf: str, factorization: dict | None, config: Config):
    """The gymnasium-robotics env, with our time limit on the single-agent env."""
    mamujoco_v1 = _import_mamujoco()
    kwargs = {"max_episode_steps": int(config.episode_limit)}
    if scenario.startswith("ManySegment"):
        kwargs = {"gym_env": _many_segment_env(scenario, conf, kwargs["max_episode_steps"])}
    return mamujoco_v1.parallel_env(
        scenario, conf, agent_obsk=int(config.agent_obsk), agent_factorization=factorization, **kwargs
    )


def _many_segment_env(scenario: str, conf: str, max_episode_steps: int):
    """ManySegment{Swimmer,Ant}'s generated model, written to a private temp dir: the
    library writes it into its own package dir under a fixed name, which races when
    subprocess workers build copies at once (and fails on a read-only install)."""
    import gymnasium
    from gymnasium_robotics.envs.multiagent_mujoco import many_segment_ant, many_segment_swimmer

    gen_asset, base = {
        "ManySegmentSwimmer": (many_segment_swimmer.gen_asset, "Swimmer-v5"),
        "ManySegmentAnt": (many_segment_ant.gen_asset, "Ant-v5"),
    }[scenario]
    n_agents, per_agent = (int(x) for x in conf.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{scenario}_{n_agents * per_agent}.xml")
        gen_asset(n_segs=n_agents * per_agent, asset_path=path)
        return gymnasium.make(base, xml_file=path, max_episode_steps=max_episode_steps)


def _float32_box(space: spaces.Box) -> spaces.Box:
    return spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)


def env_factory(task: str, config: Config):
    """Validate the config, the simulator and the task now; build copies later."""
    if config.obs_mode not in OBS_MODES:
        raise ConfigError(f"env.obs_mode must be one of {', '.join(OBS_MODES)}; got {config.obs_mode!r}")
    if int(config.agent_obsk) < 0:
        raise ConfigError(f"env.agent_obsk must be >= 0, got {config.agent_obsk}")
    if int(config.episode_limit) < 1:
        raise ConfigError(f"env.episode_limit must be >= 1, got {config.episode_limit}")
    resolve_task(task)
    check_switches(config, "env", task)
    return partial(MaMuJoCoEnv, task, config)
