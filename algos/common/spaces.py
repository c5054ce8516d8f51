"""Helpers over per-agent action spaces shared by every algorithm."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.base import EnvSpec


def uniform_actions(spec: EnvSpec, n_envs: int, avail: list[np.ndarray] | None, rng: np.random.Generator) -> list[np.ndarray]:
    """Uniform random actions for every copy: inside the Box bounds, or uniform over the
    available Discrete actions (an unavailable action is never drawn).
    Returns N × [E, act_dim_i] float32 (Box) or N × [E] int64 (Discrete)."""
    actions = []
    for i, space in enumerate(spec.action_spaces):
        if isinstance(space, spaces.Box):
            u = rng.random((n_envs, *space.shape), dtype=np.float32)
            u *= space.high - space.low
            u += space.low
            actions.append(u)
        elif isinstance(space, spaces.Discrete):
            mask = np.ones((n_envs, space.n), bool) if avail is None else avail[i]
            actions.append(masked_uniform_choice(mask, rng))
        else:
            raise TypeError(f"unsupported action space {space}")
    return actions


def masked_uniform_choice(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mask [E, A] bool -> one uniformly chosen available index per row, [E] int64."""
    probs = uniform_probs(mask)
    cumulative = probs.cumsum(axis=1)
    draws = rng.random((mask.shape[0], 1))
    return np.minimum((draws > cumulative).sum(axis=1), mask.shape[1] - 1).astype(np.int64)


def uniform_probs(mask: np.ndarray) -> np.ndarray:
    """[E, A] bool -> [E, A] uniform probabilities over the available actions."""
    mask = mask.astype(np.float64)
    return mask / mask.sum(axis=1, keepdims=True)
