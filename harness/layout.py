"""The results layout, in one place: where a run's files are, built from what the run is and
parsed back from a directory.

    <results_dir>/<suite>/<family>/<task dir>/<algo>/seed_<k>/
        config.yaml    the fully resolved config
        meta.json      git commit + dirty flag, package versions, command, host, device,
                       SLURM job, start/end, status (running | done | failed | failed: nan |
                       interrupted), heartbeat, each stop on a signal and each resumption
        train.csv      env_steps, episodes, train return, sps, update metrics
        eval.csv       env_steps, eval return mean/std, episodes, win_rate/score
        summary.json   the final evaluation (+ policy_probs for single-state tasks)
        checkpoints/   latest.pt (written after every evaluation and on a stop signal; a
                       rerun resumes from it); pending.pt only for a moment: a pack of seeds
                       (run key pack) writes every seed's checkpoint there first, then
                       renames each one
        error.txt      the traceback of a failed run
        sim.log        what the simulator printed while the run built its envs (import
                       notices, deprecation warnings), kept off the terminal
        DONE           written last: a reader that sees it can trust every other file
        .lock          held (flock) by the process training the run
        slurm.json     the SLURM job last submitted for the run, and its log files
        events.out.tfevents.*  TensorBoard's event files (logger=tensorboard)
        wandb/         W&B's offline run, its logs and the run's W&B id (logger=wandb)
    <results_dir>/<suite>/jobs.json   every run a sweep launched there, with its budget

    <results_dir>/<suite>/sweep.log   what the simulators printed while a sweep checked its jobs

The task directory is `<task>[-<variant>][@<substitute>]`: the variant labels a
configuration of the task (`simple_spread-discrete`, `climbing-alpha0.2`), the substitute
names a simulator that is not the published one (`3m@smax`), so such results are never
filed, or compared, as the real one's. harness/records.py writes the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SEED_PREFIX = "seed_"
SUBSTITUTE_MARK = "@"
LAUNCHER_FOLDER = ".submitit"
"""Submitit's pickles and logs under a results root: never a run."""


def variant_label(derived: tuple[str, ...], given: str) -> str:
    """The variant of a run: the tokens its env fields imply (`discrete`) that the given
    label (`variant=`) does not already hold, then the given label."""
    tokens = [t for t in derived if t not in given.split("-")]
    return "-".join([*tokens, given] if given else tokens)


def task_dir(task: str, variant: str = "", substitute: str | None = None) -> str:
    """The task directory name of a run: task[-variant][@substitute]."""
    name = f"{task}-{variant}" if variant else task
    return f"{name}{SUBSTITUTE_MARK}{substitute}" if substitute else name


def sweep_log(root: Path | str, suite: str) -> Path:
    """What the simulators printed while a sweep of `suite` checked its jobs."""
    return Path(root) / suite / "sweep.log"


JOBS_FILE = "jobs.json"
"""<results_dir>/<suite>/jobs.json: every run a sweep launched there ({run directory
relative to the suite directory: budget})."""


def jobs_files(root: Path) -> list[Path]:
    """The jobs.json of `root` when it is a suite directory, else of each suite under it."""
    return [root / JOBS_FILE, *root.glob(f"*/{JOBS_FILE}")]


@dataclass(frozen=True)
class RunPath:
    """One run's directory and the name of each of its files."""

    dir: Path

    @classmethod
    def build(cls, root: Path | str, suite: str, family: str, task: str, algo: str, seed: int) -> RunPath:
        """`task` is the task directory name (see `task_dir`)."""
        return cls(Path(root) / suite / family / task / algo / f"{SEED_PREFIX}{seed}")

    @classmethod
    def find(cls, root: Path) -> list[RunPath]:
        """Every run under `root`, which is a results root (holding suites) or one suite."""
        found = []
        for seed_dir in sorted(root.rglob(f"{SEED_PREFIX}*")):
            parts = seed_dir.relative_to(root).parts
            if seed_dir.is_dir() and LAUNCHER_FOLDER not in parts and len(parts) in (4, 5):
                found.append(cls(seed_dir))
        return found

    # -- what the run is, parsed from the directory ----------------------------------------------
    @property
    def suite(self) -> str:
        return self.dir.parts[-5]

    @property
    def family(self) -> str:
        return self.dir.parts[-4]

    @property
    def task(self) -> str:
        """The task directory name: task[-variant][@substitute]."""
        return self.dir.parts[-3]

    @property
    def algo(self) -> str:
        return self.dir.parts[-2]

    @property
    def seed(self) -> int:
        return int(self.dir.name.removeprefix(SEED_PREFIX))

    @property
    def substitute(self) -> str | None:
        """The substitute simulator the run used (e.g. 'smax'), None for the published one."""
        _, mark, name = self.task.partition(SUBSTITUTE_MARK)
        return name if mark else None

    # -- its files --------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def meta(self) -> Path:
        return self.dir / "meta.json"

    @property
    def train_csv(self) -> Path:
        return self.dir / "train.csv"

    @property
    def eval_csv(self) -> Path:
        return self.dir / "eval.csv"

    @property
    def summary(self) -> Path:
        return self.dir / "summary.json"

    @property
    def error(self) -> Path:
        return self.dir / "error.txt"

    @property
    def sim_log(self) -> Path:
        return self.dir / "sim.log"

    @property
    def done_marker(self) -> Path:
        return self.dir / "DONE"

    @property
    def lock(self) -> Path:
        return self.dir / ".lock"

    @property
    def checkpoint(self) -> Path:
        return self.dir / "checkpoints" / "latest.pt"

    @property
    def pending_checkpoint(self) -> Path:
        """A pack's new checkpoint of this seed before the pack commits it (harness/pack.py)."""
        return self.dir / "checkpoints" / "pending.pt"

    @property
    def slurm(self) -> Path:
        return self.dir / "slurm.json"

    @property
    def tensorboard_events(self) -> list[Path]:
        return sorted(self.dir.glob("events.out.tfevents.*"))

    @property
    def wandb(self) -> Path:
        return self.dir / "wandb"

    # -- its state --------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.done_marker.exists()

    @property
    def state(self) -> str:
        """skip (finished: DONE) | resume (a checkpoint to continue from) | new."""
        if self.done:
            return "skip"
        return "resume" if self.checkpoint.exists() else "new"

    def __str__(self) -> str:
        return str(self.dir)
