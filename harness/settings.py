"""The typed run keys. `LoopConfig` holds the keys the training loop reads, declared once:
`RunConfig` (the Hydra schema of `python -m harness.run`) and `Settings` (the loop's typed
view of a composed run, harness/config.py `load_settings`) both extend it. The launcher
schemas (`launcher=<name>`, harness/launch.py) live here too, beside the other schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch
from omegaconf import MISSING

from algos.base import AlgoConfig
from envs.errors import ConfigError


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
    pack_batched: Optional[bool] = None
    """How a pack (run key `pack`) trains its seeds: as one batched computation (true) or
    one after another in its process (false); None: batched on a GPU, in turn on a CPU
    (algos/common/packed.py says why)."""
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


@dataclass
class RunConfig(LoopConfig):
    """Top-level keys of `python -m harness.run` (typed: `seed=abc` is an error).
    config.yaml holds the defaults list; the defaults of the keys live here and in
    LoopConfig. `env`, `algo`, `suite` and `launcher` are Hydra groups: their schemas are
    each family's / algorithm's / launcher's dataclass (harness/config.py)."""

    env: Any = MISSING
    algo: Any = MISSING
    task: str = "simple_spread"
    """Task of the chosen family (envs/<family>.py TASKS)."""
    results_dir: str = "results"
    """Root of results/<suite>/<family>/<task>/<algo>/seed_<k>/ (harness/layout.py)."""
    suite: Any = MISSING
    """Suite (conf/suite/<name>.yaml); after composition, its name, which is also the first
    level of the results path. Runs outside a suite go under adhoc."""
    tuned: bool = True
    """Apply harness/tuned/<algo>.yaml for this family/task before the command line."""
    variant: str = ""
    """Label appended to the task in the results path (task-variant), for suites that run
    one task in several configurations (`alpha0.2`). Env fields that change the task's
    spaces label themselves (`env.continuous_actions=false` → `-discrete`, harness/layout.py)."""
    launcher: Any = MISSING
    """Where jobs run: local | submitit_local | slurm (harness/launch.py)."""
    cluster: Optional[str] = None
    """SLURM profile in slurm/<name>.yaml (or a path) for launcher=slurm."""
    seeds: Optional[int] = None
    """Sweep seeds 0..seeds-1 (instead of seed=K)."""
    pack: int = 1
    """Seeds of one (task, algorithm, config) trained together in one job, in one process on
    one device (harness/pack.py, algos/common/packed.py); algorithms with a packed form only."""
    dry_run: bool = False
    """Print the job table and estimated device-hours; launch nothing."""
    report: bool = True
    """A suite sweep ends by writing its report, reports/<suite>/ beside results_dir
    (harness/report); false skips it."""
    stale_after_min: float = 30.0
    """A `running` run whose heartbeat is older than this is reported as stale (dead)."""
    logger: List[str] = field(default_factory=lambda: ["csv"])
    """Where train.csv/eval.csv rows also go: `logger=csv,tensorboard,wandb`, any subset; csv
    is always on (harness/loggers.py)."""
    wandb_mode: Optional[str] = None
    """offline | online; None: $WANDB_MODE, else offline (files in the run's wandb/)."""
    wandb_project: Optional[str] = None
    """W&B project; None: hasac-bench-<suite>."""
    wandb_entity: Optional[str] = None
    """W&B user or team; None: the logged-in user's default."""
    choices: Optional[Dict[str, str]] = None
    """Filled in by the harness: which env/algo yaml was composed."""
    fidelity: Optional[Dict[str, str]] = None
    """Filled in by the harness: the fidelity switches away from the official behaviour
    ({"algo.box_action": "affine", ...}; {} = official behaviour; envs/fidelity.py)."""


@dataclass(kw_only=True)
class Settings(LoopConfig):
    """The loop's typed view of the composed config: the run keys plus what was resolved."""

    family: str
    task: str
    algo: str
    algo_config: AlgoConfig
    env_fields: dict[str, Any]
    official_env: dict[str, str] = field(default_factory=dict)
    """The official code's env switch values for this algorithm and task where they are not
    "official" (harness/tuned/<algo>.yaml `env:`), the reference `fidelity` is
    recorded against; {} with `tuned=false`."""

    def validate(self) -> None:
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**31:
            raise ConfigError(f"seed must be an integer in [0, 2**31), got {self.seed!r}")
        for name in ("budget", "n_envs", "eval_every", "eval_episodes", "eval_n_envs", "log_every", "torch_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.budget < self.eval_every:
            raise ConfigError(f"budget={self.budget} is smaller than one evaluation interval "
                              f"(eval_every={self.eval_every}); lower eval_every or raise the budget")
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be cpu, cuda[:k] or auto, got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device={self.device} but no CUDA GPU is visible; use device=cpu or device=auto")

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


# -- launcher=<name> (harness/launch.py runs them) ---------------------------------------------
@dataclass
class LocalLauncher:
    name: str = "local"
    n_jobs: int = 1
    """Jobs at once; above 1 each runs in its own process without a progress bar."""


@dataclass
class SubmititLocalLauncher:
    name: str = "submitit_local"
    n_jobs: int = 2
    """Jobs at once."""
    timeout_min: int = 24 * 60
    folder: str = ".submitit"
    """Submitit's pickles and logs, under results_dir."""


@dataclass
class SlurmLauncher:
    name: str = "slurm"
    wait: bool = False
    """Block until every job ends and print the summary; otherwise submit and return
    (rerun the same command later: finished runs are skipped, the summary shows the rest)."""
    max_requeues: int = 5
    """Requeues on time-out (Submitit's max_num_timeout); preemptions requeue as well."""
    folder: str = ".submitit"
    """Submitit's sbatch files and logs (%j = job id), under results_dir."""


Launcher = LocalLauncher | SubmititLocalLauncher | SlurmLauncher
LAUNCHERS: dict[str, type] = {"local": LocalLauncher, "submitit_local": SubmititLocalLauncher, "slurm": SlurmLauncher}
