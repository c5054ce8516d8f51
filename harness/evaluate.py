"""Deterministic evaluation on separate env copies.

Each copy runs a fixed quota of episodes (the total split as evenly as possible), so short
episodes are not over-represented the way "the first N episodes to finish" would be.
The eval envs are reset with the same seed at every evaluation: successive points of a
learning curve are measured on the same start states.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from algos.base import Algorithm
from envs.base import VecEnv


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    successes: list[bool] = field(default_factory=list)  # win / score flags, if the family has them
    policy_probs: list[list[float]] | None = None

    def row(self, success_metric: str | None) -> dict:
        """The eval.csv / summary.json fields of this evaluation."""
        out = {
            "eval_return_mean": float(np.mean(self.returns)),
            "eval_return_std": float(np.std(self.returns)),
            "eval_episodes": len(self.returns),
            "eval_length_mean": float(np.mean(self.lengths)),
        }
        if success_metric and self.successes:
            out[success_metric] = float(np.mean(self.successes))
        return out


def evaluate(algo: Algorithm, env: VecEnv, n_episodes: int, seed: int) -> EvalResult:
    """Run `n_episodes` greedy episodes; returns per-episode returns, lengths, successes."""
    quota = np.full(env.n_envs, n_episodes // env.n_envs)
    quota[: n_episodes % env.n_envs] += 1
    finished = np.zeros(env.n_envs, int)
    result = EvalResult(returns=[], lengths=[])
    step = env.reset(seed)
    if env.spec.single_state:
        probs = algo.policy_probs(step)
        result.policy_probs = None if probs is None else [np.asarray(p, float).tolist() for p in probs]
    while (finished < quota).any():
        step = env.step(algo.act(step, explore=False))
        for episode in step.info["episodes"]:
            k = episode["env_index"]
            if finished[k] >= quota[k]:
                continue
            finished[k] += 1
            result.returns.append(episode["return"])
            result.lengths.append(episode["length"])
            success = episode.get("win", episode.get("score"))
            if success is not None:
                result.successes.append(bool(success))
    return result
