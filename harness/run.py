"""`python -m harness.run [key=value ...]`: compose the config, train, write results.

One run (`env=mpe task=simple_spread algo=hasac seed=3`) or a sweep
(`suite=quick algo=hasac,hatd3 seeds=5 launcher=local launcher.n_jobs=2`, any `key=a,b`
is swept without `-m`; `dry_run=true` prints the job table): harness/sweep.py expands,
checks and launches the jobs (harness/config.py composes each, harness/launch.py runs
them, harness/train.py trains one), and the sweep ends with a summary table and a
non-zero exit status if any job failed. Every bad input is one line on stderr and exit
status 2, before anything is written. SIGTERM or Ctrl-C during training writes the run's
checkpoint and exits with 128 + the signal number; the same command resumes it.
"""

from __future__ import annotations

import os
import sys

from envs import FAMILIES, family_module
from envs.errors import UserError
from harness.preempt import Interrupted
from harness.suites import families_named


def preload_simulators(argv: list[str]) -> None:
    """Run the `preload(argv)` hook of every family the command line reaches (e.g. Isaac
    Gym, which must be imported before torch); the family decides from the command line
    what its run needs."""
    for family in sorted(families_named(argv) & set(FAMILIES)):
        hook = getattr(family_module(family), "preload", None)
        if hook is not None:
            hook(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors are one line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        preload_simulators(argv)
        # Imported here, after the thread variable and the preloads: it imports torch.
        from harness.sweep import run_sweep

        return run_sweep(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as stop:  # SIGTERM or Ctrl-C: the run's checkpoint is written
        print(f"interrupted: {stop}; rerun the same command", file=sys.stderr)
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
