"""The run keys the training loop reads, declared once: `RunConfig` (the Hydra schema,
harness/run.py) and `Settings` (the loop's typed view, harness/train.py) both extend it.
Kept free of torch so the entry point can set thread variables before torch loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class LoopConfig:
    seed: int = 0
    """Run seed: envs, networks, sampling."""
    budget: int = 100_000
    """Env steps, summed over the n_envs copies."""
    n_envs: int = 8
    """Training env copies stepped in lock-step."""
    eval_every: int = 10_000
    """Env steps between evaluations (there is also one at step 0 and one at the end)."""
    eval_episodes: int = 10
    """Deterministic episodes per evaluation."""
    eval_n_envs: int = 5
    """Evaluation env copies."""
    log_every: int = 2_000
    """Env steps between train.csv rows."""
    device: str = "cpu"
    """cpu | cuda | cuda:k | auto (a GPU where there is one)."""
    torch_threads: int = 1
    """Torch intra-op threads per process; 1 is fastest for small MLPs on few cores."""
    progress: bool = True
    """Show a per-run progress bar."""
    reward_scale: float = 1.0
    """Training rewards are multiplied by this (envs/wrappers.py); evaluation returns are not."""
    soft_eval: bool = False
    """Also evaluate the stochastic policy: J(π) = E[R] + α Σᵢ H(πⁱ), its entropy, and on
    single-state games the distance to the soft QRE (harness/evaluate.py, docs/studies.md)."""
    eval_alpha: Optional[float] = None
    """α of J(π) and of the soft QRE; None = the algorithm's own fixed α, if it has one."""
    eval_obs_noise: List[float] = field(default_factory=list)
    """Observation-noise levels σ, in units of each feature's std over the clean evaluation
    episodes: one extra greedy evaluation per level (eval_return_obsnoise_<σ>)."""
    eval_action_noise: List[float] = field(default_factory=list)
    """Action-perturbation probabilities p: each agent's action is replaced by a uniform
    random one with probability p; one extra greedy evaluation per level."""
