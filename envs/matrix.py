"""One-step cooperative matrix games: the family whose soft-QRE we can compute by hand.

Every agent sees the same constant observation, picks one of its actions, and the team
reward is the payoff at the joint action; the episode then terminates. `payoff` is an
N-dimensional nested list with one axis per agent (its length along axis i is agent i's
number of actions), so heterogeneous action counts and any number of agents work.

Built-in games (Claus & Boutilier 1998, the standard coordination examples):
- `climbing`: optimum 11 at (0, 0), guarded by −30 penalties; the safe (2, 2) gives 5.
- `penalty`: optimum 10 at (0, 0) and (2, 2), miscoordination on them costs `penalty_k`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.base import AgentView, EnvSpec, FamilyConfig, SingleEnv
from envs.errors import ConfigError

TASKS = ("climbing", "penalty", "custom")

CLIMBING = [[11, -30, 0], [-30, 7, 6], [0, 0, 5]]


def penalty_payoff(k: float) -> list[list[float]]:
    """The penalty game with miscoordination cost k (k < 0)."""
    return [[10, 0, k], [0, 2, 0], [k, 0, 10]]


@dataclass
class Config(FamilyConfig):
    payoff: Any = None
    """Nested list, one axis per agent; required for task=custom, ignored otherwise."""
    penalty_k: float = -100.0
    """Miscoordination cost of the penalty game."""


def payoff_for(task: str, config: Config) -> np.ndarray:
    """The payoff tensor of a task, validated: a ConfigError names what is wrong. Also the
    family's hook for single-state games (harness/evaluate.py: the analytic soft QRE)."""
    if task not in TASKS:
        raise ConfigError(f"unknown matrix task {task!r}; valid tasks: {', '.join(TASKS)}")
    if task == "climbing":
        return np.asarray(CLIMBING, np.float64)
    if task == "penalty":
        return np.asarray(penalty_payoff(float(config.penalty_k)), np.float64)
    if config.payoff is None:
        raise ConfigError("env=matrix task=custom needs env.payoff, e.g. env.payoff='[[1,0],[0,1]]'")
    raw = _to_plain(config.payoff)
    try:
        payoff = np.asarray(raw, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"env.payoff must be a rectangular nested list of numbers (one axis per agent): {exc}") from None
    if payoff.ndim < 2:
        raise ConfigError(f"env.payoff needs one axis per agent and at least 2 agents; got {payoff.ndim} axis")
    if min(payoff.shape) < 2 or not np.all(np.isfinite(payoff)):
        raise ConfigError(f"env.payoff needs >= 2 actions per agent and finite numbers; got shape {payoff.shape}")
    return payoff


def _to_plain(value: Any) -> Any:
    """OmegaConf ListConfig -> nested python lists (numpy cannot read ListConfig)."""
    if hasattr(value, "_content") or isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


class MatrixGame(SingleEnv):
    """A single copy: constant observation [1.0], one step, reward = payoff[joint action]."""

    def __init__(self, task: str, payoff: np.ndarray):
        self.payoff = payoff
        n_agents = payoff.ndim
        obs_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.spec = EnvSpec(
            family="matrix",
            task=task,
            n_agents=n_agents,
            obs_spaces=(obs_space,) * n_agents,
            state_space=spaces.Box(0.0, 1.0, (1,), np.float32),
            action_spaces=tuple(spaces.Discrete(n) for n in payoff.shape),
            episode_limit=1,
            has_avail_actions=True,
            single_state=True,
        )
        self._view = AgentView(
            obs=[np.ones(1, np.float32) for _ in range(n_agents)],
            state=np.ones(1, np.float32),
            avail_actions=[np.ones(n, bool) for n in payoff.shape],
        )

    def reset(self, seed: int | None) -> AgentView:
        return self._view

    def step(self, actions):
        joint = tuple(int(np.asarray(a).reshape(-1)[0]) for a in actions)
        for i, (a, n) in enumerate(zip(joint, self.payoff.shape)):
            if not 0 <= a < n:
                raise ValueError(f"agent {i} chose action {a}, outside Discrete({n})")
        return self._view, float(self.payoff[joint]), True, False, {}

    def get_state(self) -> None:
        """Nothing to save: the game has no randomness and no state between steps."""
        return None

    def set_state(self, state: None) -> None:
        pass


def env_factory(task: str, config: Config):
    """Validate now (before any results directory exists), build copies later."""
    payoff = payoff_for(task, config)
    return partial(MatrixGame, task, payoff)
