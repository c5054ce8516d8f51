"""Wrappers around a VecEnv for the robustness studies (docs/studies.md). A wrapper changes
one thing and passes everything else — spec, n_envs, snapshots, close — to the env inside,
so the training loop, checkpoints and resume see a VecEnv."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from envs.base import Step, VecEnv
from envs.errors import ConfigError


class VecEnvWrapper:
    """Delegates every attribute it does not define to the wrapped env."""

    def __init__(self, env: VecEnv):
        self.env = env

    def __getattr__(self, name: str) -> Any:
        if name == "env":  # not yet set (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.env, name)

    def reset(self, seed: int | None = None) -> Step:
        return self.env.reset(seed)

    def step(self, actions: Sequence[np.ndarray]) -> Step:
        return self.env.step(actions)


class RewardScale(VecEnvWrapper):
    """Multiplies the team reward the learner sees by `scale`. The episode statistics in
    `info["episodes"]` (hence train.csv returns) stay in the task's own units, so runs at
    different scales are compared on the same axis."""

    def __init__(self, env: VecEnv, scale: float):
        super().__init__(env)
        self.scale = scale

    def step(self, actions: Sequence[np.ndarray]) -> Step:
        step = self.env.step(actions)
        step.reward = (step.reward * self.scale).astype(np.float32)
        return step


def scale_rewards(env: VecEnv, scale: float) -> VecEnv | RewardScale:
    """`env` with rewards × `scale`; the env itself when scale is 1 (nothing changes)."""
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"reward_scale must be a finite number > 0, got {scale}")
    return env if scale == 1 else RewardScale(env, float(scale))
