"""Multi-Agent Particle Environments on mpe2 (the maintained PettingZoo MPE), behaving by
default as PettingZoo 1.22.2's MPE under HARL's wrapper, which the official code ran.

Tasks as in the HASAC paper: `simple_spread` (3 agents cover 3 landmarks),
`simple_speaker_listener` (heterogeneous: the speaker sees the goal colour and only talks,
the listener sees everything else and only moves) and `simple_reference` (2 agents, each
both talks and moves). `env.continuous_actions` picks Box(0, 1, (k,)) or Discrete(k).

Conventions of the official HARL MPE wrapper (harl/envs/pettingzoo_mpe/pettingzoo_mpe_env.py):
- team reward = the SUM of all agents' rewards (l.56);
- the state is `env.state()`, the concatenated (unpadded) observations (l.55);
- episodes end by truncation at `max_cycles` (25): truncated=True, terminated=False.

Where mpe2 differs from PettingZoo 1.22.2, the official behaviour is restored by default and
mpe2's is a fidelity switch (envs/fidelity.py, docs/fidelity.md):
- `reward`: PettingZoo 1.22's simple_spread counts every agent's collision with itself
  (`is_collision(a, agent)` over all agents, a included): −1 local reward per agent and
  step, times local_ratio 0.5. mpe2 skips a == agent. 'official' adds the term back.
- `physics`: PettingZoo 1.22 integrates semi-implicitly (damp and accelerate the velocity,
  then move by the new velocity); mpe2 moves by the old velocity first. PettingZoo 1.22 moves
  a continuous action's x by a[1] − a[2] and y by a[3] − a[4]; mpe2 by a[2] − a[1], a[4] − a[3].
- `pad_spaces`: HARL pads observations (zeros at the end) and action spaces to the largest
  agent's with supersuit 3.7 (l.30-31): in simple_speaker_listener both agents observe 11
  numbers and act in Box(0, 1, (5,)) / Discrete(5); the speaker's extra Box entries are
  dropped and its Discrete actions 3, 4 mean action 0 (supersuit's dehomogenize_actions).

Deviation from a textbook `parallel_env()` adapter: we drive mpe2's unwrapped AEC env one
full cycle per step. PettingZoo's parallel wrapper calls `last()` (one extra observation)
per agent and its clip wrapper checks the space on every action; on simple_spread that
wrapper stack ran at ~1.5-2.0k steps/s against ~2.7-3.9k unwrapped (single env, 2 busy
cores). We clip continuous actions to the Box ourselves, which is what the clip wrapper did.
"""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass
from functools import partial
from typing import ClassVar, Sequence

import numpy as np
from gymnasium import spaces

from envs.base import AgentView, EnvSpec, FamilyConfig, SingleEnv
from envs.errors import ConfigError, EnvUnavailable
from envs.fidelity import Switch, check_switches

# task name -> mpe2 module (the suffix is mpe2's environment version)
MODULES = {
    "simple_spread": "simple_spread_v3",
    "simple_speaker_listener": "simple_speaker_listener_v4",
    "simple_reference": "simple_reference_v3",
}
TASKS = tuple(MODULES)
# SimpleEnv members for rendering only: pygame objects cannot be pickled, and a restored
# copy keeps its own (a snapshot never changes how a copy renders).
RENDERING = frozenset({"screen", "game_font", "viewer", "clock", "renderOn"})


@dataclass
class Config(FamilyConfig):
    continuous_actions: bool = True
    """Box(0, 1, (k,)) actions when true, Discrete(k) when false."""
    max_cycles: int = 25
    """Episode limit: the episode is truncated after this many steps (HARL: 25)."""
    reward: str = "official"
    """simple_spread reward: 'official' = PettingZoo 1.22's, which counts each agent's
    collision with itself (−0.5 per agent and step in the team reward); 'mpe2' = mpe2's."""
    physics: str = "official"
    """World step: 'official' = PettingZoo 1.22's semi-implicit integration and continuous
    movement sign; 'mpe2' = mpe2's explicit order and mirrored sign."""
    pad_spaces: str = "official"
    """'official' = supersuit's padding of observations and action spaces to the largest
    agent's (HARL; only simple_speaker_listener has unequal spaces); 'none' = as mpe2 gives."""

    fidelity: ClassVar[dict[str, Switch]] = {
        "reward": Switch(("mpe2",), "simple_spread (the only task with the self-collision term)",
                         lambda task, c: task == "simple_spread"),
        "physics": Switch(("mpe2",)),
        "pad_spaces": Switch(("none",), "simple_speaker_listener (the only task with unequal spaces)",
                             lambda task, c: task == "simple_speaker_listener"),
    }

    def variant_tokens(self) -> tuple[str, ...]:
        return () if self.continuous_actions else ("discrete",)


def import_task(task: str):
    """The mpe2 module of a task, or EnvUnavailable naming the extra to install."""
    try:
        return importlib.import_module(f"mpe2.{MODULES[task]}")
    except ImportError as exc:
        raise EnvUnavailable(
            f"env=mpe needs the mpe2 simulator: pip install 'hasac-bench[mpe]' ({exc})"
        ) from None


class MpeEnv(SingleEnv):
    """One mpe2 copy; agents in mpe2's `possible_agents` order."""

    def __init__(self, task: str, config: Config):
        self._env = import_task(task).raw_env(
            max_cycles=config.max_cycles, continuous_actions=config.continuous_actions
        )
        env = self._env
        self._agents = list(env.possible_agents)
        self._raw_action_spaces = tuple(env.action_space(a) for a in self._agents)
        raw_obs_spaces = tuple(env.observation_space(a) for a in self._agents)
        pad = config.pad_spaces == "official"
        self._obs_width = max(s.shape[0] for s in raw_obs_spaces) if pad else None
        obs_spaces = tuple(_padded_box(s, self._obs_width) for s in raw_obs_spaces) if pad else raw_obs_spaces
        self._action_spaces = _padded_actions(self._raw_action_spaces) if pad else self._raw_action_spaces
        # Official (PettingZoo 1.22): −local_ratio per colliding agent and step, its own collision
        self._self_collision = 0.0
        if task == "simple_spread" and config.reward == "official":
            self._self_collision = -env.local_ratio * sum(a.collide for a in env.world.agents)
        self._official_physics = config.physics == "official"
        if self._official_physics:
            env.world.integrate_state = partial(integrate_semi_implicit, env.world)  # picklable, unlike a bound method
        self._movable = [agent.movable for agent in env.world.agents]
        self.spec = EnvSpec(
            family="mpe",
            task=task,
            n_agents=len(self._agents),
            obs_spaces=obs_spaces,
            state_space=env.state_space,
            action_spaces=self._action_spaces,
            episode_limit=config.max_cycles,
        )

    def reset(self, seed: int | None) -> AgentView:
        # seed=None keeps the copy's own np_random stream; gymnasium rejects numpy ints.
        self._env.reset(seed=None if seed is None else int(seed))
        return self._view()

    def step(self, actions: Sequence[np.ndarray]):
        env = self._env
        # One AEC cycle: mpe2 applies the joint action after the last agent's step.
        for action, space, raw, movable in zip(actions, self._action_spaces, self._raw_action_spaces, self._movable):
            action = _to_mpe_action(action, space, raw)
            if self._official_physics and movable and isinstance(raw, spaces.Box):
                action = action[[0, 2, 1, 4, 3, *range(5, len(action))]]  # PettingZoo 1.22's movement sign
            env.step(action)
        reward = float(sum(env.rewards[a] for a in self._agents)) + self._self_collision
        terminated = any(env.terminations[a] for a in self._agents)
        truncated = any(env.truncations[a] for a in self._agents) and not terminated
        return self._view(), reward, terminated, truncated, {}

    def get_state(self) -> bytes:
        """The raw env's whole `__dict__` (world, np_random, AEC bookkeeping) minus
        rendering, pickled: mpe2 mutates many members, so we save all rather than guess.
        Bytes are immutable, so restoring the same snapshot twice never aliases it."""
        members = {
            k: v for k, v in vars(self._env).items()
            if k not in RENDERING and not type(v).__module__.startswith("pygame")
        }
        return pickle.dumps(members, protocol=pickle.HIGHEST_PROTOCOL)

    def set_state(self, state: bytes) -> None:
        vars(self._env).update(pickle.loads(state))

    def close(self) -> None:
        self._env.close()

    def _view(self) -> AgentView:
        # mpe2's state() is the concatenation of observe(a) over possible_agents, each computed
        # again; reusing the observations halves the observation work (~10 % of a step). The
        # state is the unpadded concatenation, as HARL's env.state() through supersuit.
        obs = [self._env.observe(a) for a in self._agents]
        state = np.concatenate(obs, axis=None)
        if self._obs_width is not None:
            obs = [np.pad(o, (0, self._obs_width - o.shape[0])) for o in obs]
        return AgentView(obs=obs, state=state)


def integrate_semi_implicit(world, p_force) -> None:
    """PettingZoo 1.22's World.integrate_state (mpe2's moves by the old velocity first):
    v ← v(1 − damping) + (F/m)·dt, capped at max_speed, then p ← p + v·dt."""
    for i, entity in enumerate(world.entities):
        if not entity.movable:
            continue
        velocity = entity.state.p_vel * (1 - world.damping)
        if p_force[i] is not None:
            velocity = velocity + (p_force[i] / entity.mass) * world.dt
        speed = np.sqrt(np.square(velocity[0]) + np.square(velocity[1]))
        if entity.max_speed is not None and speed > entity.max_speed:
            velocity = velocity / speed * entity.max_speed
        entity.state.p_vel = velocity
        entity.state.p_pos = entity.state.p_pos + velocity * world.dt


def _padded_box(space: spaces.Box, width: int) -> spaces.Box:
    """An observation Box zero-padded at the end to `width` (supersuit pad_observations)."""
    extra = width - space.shape[0]
    low = np.concatenate([space.low, np.zeros(extra, space.dtype)])
    high = np.concatenate([space.high, np.zeros(extra, space.dtype)])
    return spaces.Box(np.minimum(low, 0), np.maximum(high, 0), dtype=space.dtype)


def _padded_actions(action_spaces: tuple[spaces.Space, ...]) -> tuple[spaces.Space, ...]:
    """Every agent's action space as the largest one (supersuit pad_action_space): Box(0, 1,
    (max k,)) or Discrete(max n); MPE's spaces are all Box(0, 1) or all Discrete."""
    if isinstance(action_spaces[0], spaces.Box):
        width = max(s.shape[0] for s in action_spaces)
        return tuple(spaces.Box(0.0, 1.0, (width,), np.float32) for _ in action_spaces)
    return tuple(spaces.Discrete(max(int(s.n) for s in action_spaces)) for _ in action_spaces)


def _to_mpe_action(action: np.ndarray, space: spaces.Space, raw: spaces.Space):
    """Box: float32 clipped into [0, 1], the entries past the agent's own size dropped;
    Discrete: a python int checked against the (padded) space, an index past the agent's
    own actions meaning action 0 (supersuit's dehomogenize_actions)."""
    if isinstance(space, spaces.Box):
        action = np.clip(np.asarray(action, np.float32).reshape(space.shape), space.low, space.high)
        return action[: raw.shape[0]]
    index = int(np.asarray(action).reshape(-1)[0])
    if not 0 <= index < space.n:
        raise ValueError(f"action {index} outside Discrete({space.n})")
    return index if index < raw.n else 0


def env_factory(task: str, config: Config):
    """Validate the task, the config and the simulator now; build copies later."""
    if task not in MODULES:
        raise ConfigError(f"unknown mpe task {task!r}; valid tasks: {', '.join(TASKS)}")
    if not isinstance(config.continuous_actions, bool):
        raise ConfigError(f"env.continuous_actions must be true or false, got {config.continuous_actions!r}")
    if int(config.max_cycles) < 1:
        raise ConfigError(f"env.max_cycles must be >= 1, got {config.max_cycles}")
    check_switches(config, "env", task)
    import_task(task)
    return partial(MpeEnv, task, config)
