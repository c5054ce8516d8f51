"""The algorithm interface the one training loop (harness/loop.py) drives.

    actions = algo.act(step, explore=True)     # per-agent list, numpy in and out
    nxt = env.step(actions)
    algo.observe(step, actions, nxt)           # the algorithm owns its buffer
    while algo.ready(total_env_steps): metrics = algo.update()   # every update owed now

Capabilities are ClassVars on the config (`action_spaces`, `on_policy`, `packed`) so the harness can
refuse an impossible pairing once, before any env or results directory exists.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch

from envs.base import EnvSpec, Step


@dataclass
class AlgoConfig:
    """Base of every algorithm's typed config (the Hydra schema `<name>_schema`)."""

    action_spaces: ClassVar[frozenset[str]] = frozenset({"box", "discrete"})
    """Action-space kinds the algorithm handles: 'box', 'discrete' (and 'mixed')."""
    on_policy: ClassVar[bool] = False
    agent_states: ClassVar[bool] = False
    """Whether the algorithm takes one state per agent (EnvSpec.agent_states, HARL's FP
    state) as one critic row per agent; an algorithm that does not refuses such a task."""
    packed: ClassVar[str | None] = None
    """"module:Class" of the batched form of K seeds (algos/common/packed.py) that run key
    `pack=K` trains; None: the algorithm trains one seed per process (pack=1 only)."""

    def validate(self, spec: EnvSpec) -> None:
        """Raise ConfigError for values that cannot work (e.g. alpha <= 0); default: none."""

    def memory_bytes(self, spec: EnvSpec, n_envs: int) -> int:
        """Bytes the learner preallocates for its data (a replay table), so that a run that
        cannot fit a machine is refused before it starts; default: none worth counting."""
        return 0

    def fixed_alpha(self) -> float | None:
        """The entropy temperature α when the algorithm has one and it is fixed (the soft
        objective J(π) is evaluated at it by default); None when learned or absent."""
        return None

    def temperature_label(self) -> str | None:
        """How reports name this config's temperature ('0.05' for a fixed α, 'auto' for a
        learned one); None for algorithms without an entropy temperature."""
        return None


class Algorithm(ABC):
    """One CTDE learner over all agents of a task. Subclasses set `Config`."""

    Config: ClassVar[type[AlgoConfig]]

    def __init__(self, spec: EnvSpec, config: AlgoConfig, n_envs: int, device: torch.device, seed: int):
        self.spec = spec
        self.config = config
        self.n_envs = n_envs
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def act(self, step: Step, explore: bool = True) -> list[np.ndarray]:
        """Actions for every env copy: N × [E, act_dim_i] (Box) or N × [E] int (Discrete).
        explore=False is the deterministic evaluation policy."""

    @abstractmethod
    def observe(self, step: Step, actions: list[np.ndarray], nxt: Step) -> None:
        """Store the transition step --actions--> nxt (use nxt.info['final_*'] as next view)."""

    @abstractmethod
    def ready(self, total_env_steps: int) -> bool:
        """Whether `update()` should run now."""

    @abstractmethod
    def update(self) -> dict[str, float]:
        """One learning step; returns scalar metrics with the fixed metric keys."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: networks, optimisers, buffers, RNGs."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def policy_probs(self, step: Step) -> list[np.ndarray] | None:
        """Each agent's action probabilities at the first row of `step` (Discrete only);
        single-state tasks record them in summary.json. None when not defined."""
        return None

    def sample_policy(self, step: Step, generator: torch.Generator) -> PolicySample | None:
        """Actions drawn from the learned stochastic policy π itself (no warm-up, ε or added
        exploration noise), with the caller's generator and without touching any training
        state, plus each agent's entropy H(πⁱ(·|oⁱ)) at every row: what the soft objective
        J(π) = E[R] + α Σᵢ H(πⁱ) is estimated from (harness/evaluate.py). None: π is
        deterministic or its entropy is not defined here (HATD3, QMIX's greedy policy)."""
        return None


class PolicySample(NamedTuple):
    """One draw from π at every row of a Step (Algorithm.sample_policy)."""

    actions: list[np.ndarray]
    """N × [E, act_dim_i] float32 (Box) or N × [E] int64 (Discrete), as `act` returns."""
    entropy: np.ndarray
    """[N, E] nats: H(πⁱ(·|oⁱ)) per agent and row (a Monte-Carlo estimate where there is
    no closed form, e.g. the tanh-squashed Gaussian)."""
