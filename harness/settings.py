"""The run keys the training loop reads, declared once: `RunConfig` (the Hydra schema,
harness/run.py) and `Settings` (the loop's typed view, harness/train.py) both extend it.
Kept free of torch so the entry point can set thread variables before torch loads."""

from __future__ import annotations

from dataclasses import dataclass


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
