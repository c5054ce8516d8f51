"""`random`: uniform over the available actions. A real baseline — the report uses its
score as each task's normalisation floor — and the cheapest way to drive the loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from algos.base import AlgoConfig, Algorithm
from algos.common.spaces import uniform_actions, uniform_probs
from envs.base import Step


@dataclass
class RandomConfig(AlgoConfig):
    """No hyperparameters."""

    agent_states: ClassVar[bool] = True  # it reads no state at all


class RandomPolicy(Algorithm):
    """Never learns; `explore` makes no difference."""

    Config = RandomConfig

    def act(self, step: Step, explore: bool = True) -> list[np.ndarray]:
        return uniform_actions(self.spec, step.n_envs, step.avail_actions, self.rng)

    def observe(self, step: Step, actions: list[np.ndarray], nxt: Step) -> None:
        pass

    def ready(self, total_env_steps: int) -> bool:
        return False

    def update(self) -> dict[str, float]:
        return {}

    def policy_probs(self, step: Step) -> list[np.ndarray] | None:
        if not self.spec.discrete:
            return None
        masks = step.avail_actions or [np.ones((1, s.n), bool) for s in self.spec.action_spaces]
        return [uniform_probs(m[:1])[0] for m in masks]
