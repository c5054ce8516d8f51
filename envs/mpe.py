"""Multi-Agent Particle Environments (mpe2, the maintained PettingZoo MPE).

Tasks as in the HASAC paper: `simple_spread` (3 agents cover 3 landmarks),
`simple_speaker_listener` (heterogeneous: the speaker sees the goal colour and only talks,
the listener sees everything else and only moves) and `simple_reference` (2 agents, each
both talks and moves). `env.continuous_actions` picks Box(0, 1, (k,)) or Discrete(k).

Conventions of the official HARL MPE wrapper (harl/envs/pettingzoo_mpe/):
- team reward = the SUM of all agents' rewards;
- the state is `env.state()`, the concatenated observations;
- episodes end by truncation at `max_cycles` (25): truncated=True, terminated=False.

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
from typing import Sequence

import numpy as np
from gymnasium import spaces

from envs.base import AgentView, EnvSpec, FamilyConfig, SingleEnv
from envs.errors import ConfigError, EnvUnavailable

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

    def variant_tokens(self) -> tuple[str, ...]:
        return () if self.continuous_actions else ("discrete",)


def _import_task(task: str):
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
        self._env = _import_task(task).raw_env(
            max_cycles=config.max_cycles, continuous_actions=config.continuous_actions
        )
        env = self._env
        self._agents = list(env.possible_agents)
        self._action_spaces = tuple(env.action_space(a) for a in self._agents)
        self.spec = EnvSpec(
            family="mpe",
            task=task,
            n_agents=len(self._agents),
            obs_spaces=tuple(env.observation_space(a) for a in self._agents),
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
        for action, space in zip(actions, self._action_spaces):
            env.step(_to_mpe_action(action, space))
        reward = float(sum(env.rewards[a] for a in self._agents))
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
        # again; reusing the observations halves the observation work (~10 % of a step).
        obs = [self._env.observe(a) for a in self._agents]
        return AgentView(obs=obs, state=np.concatenate(obs, axis=None))


def _to_mpe_action(action: np.ndarray, space: spaces.Space):
    """Box: float32 clipped into [0, 1]; Discrete: a python int, checked against n."""
    if isinstance(space, spaces.Box):
        return np.clip(np.asarray(action, np.float32).reshape(space.shape), space.low, space.high)
    index = int(np.asarray(action).reshape(-1)[0])
    if not 0 <= index < space.n:
        raise ValueError(f"action {index} outside Discrete({space.n})")
    return index


def env_factory(task: str, config: Config):
    """Validate the task, the config and the simulator now; build copies later."""
    if task not in MODULES:
        raise ConfigError(f"unknown mpe task {task!r}; valid tasks: {', '.join(TASKS)}")
    if not isinstance(config.continuous_actions, bool):
        raise ConfigError(f"env.continuous_actions must be true or false, got {config.continuous_actions!r}")
    if int(config.max_cycles) < 1:
        raise ConfigError(f"env.max_cycles must be >= 1, got {config.max_cycles}")
    _import_task(task)
    return partial(MpeEnv, task, config)
