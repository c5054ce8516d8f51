"""Stopping a run early without losing work.

A scheduler announces the end of a job with a signal: SLURM sends SIGTERM on `scancel`,
`scontrol requeue`, preemption and node drain (then SIGKILL after its KillWait, 30 s by
default), and the pre-timeout signal the job asked for (`--signal=USR2@<s>`, launch.py)
some time before its time limit. While `watch()` is active these signals, and a first
Ctrl-C, only note that a stop was asked for; the training loop looks at `requested()`
between steps, writes its checkpoint at once and raises `Interrupted`. A second Ctrl-C
interrupts at once, as usual.

What happens next depends on who runs the job: a local sweep stops with a one-line message
(rerunning the command resumes; with `launcher.n_jobs` > 1 its workers watch for their
whole life, `watch_process`, and a SIGTERM to the sweep reaches them, harness/launch.py);
a SLURM job requeues itself after the pre-timeout signal (`requeue_self`), and after a
SIGTERM leaves the requeue to SLURM (it requeues on `scontrol requeue` and preemption, and
does not after `scancel`). On restart the run
resumes from that checkpoint exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from contextlib import contextmanager
from typing import Iterator

WATCHED = (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT)
TIME_LIMIT_SIGNAL = signal.SIGUSR2

# Signals are process-wide, so is the note of one received: nested watch() blocks (the
# SLURM job around the training loop) share it.
_received: list[int] = []
_depth = 0
_previous: dict[int, object] = {}
_process_watch = None  # the watch() of watch_process, for the life of the process


class Interrupted(BaseException):
    """The run stopped on a signal after writing its checkpoint at `env_steps` (None: a
    local sweep stopped, its queued jobs cancelled). A BaseException, like
    KeyboardInterrupt: it is a request to stop, never a failure of the run."""

    def __init__(self, signum: int, env_steps: int | None):
        self.signum, self.env_steps = signum, env_steps
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at env step {env_steps:,}; its checkpoint is written and the run "
                         "resumes from it" if env_steps is not None else
                         f"stopped by {name}; the jobs not yet started were cancelled")

    def __reduce__(self):  # crosses process boundaries (local worker processes)
        return Interrupted, (self.signum, self.env_steps)


def _note(signum: int, frame) -> None:
    if signum == signal.SIGINT and signal.SIGINT in _received:
        raise KeyboardInterrupt  # a second Ctrl-C: the user means now
    _received.append(signum)


@contextmanager
def watch() -> Iterator[None]:
    """Turn the watched signals into a note for `requested()` inside this block. Outside
    the main thread (where Python cannot install handlers) it does nothing."""
    global _depth
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and _depth == 0:
        _received.clear()
        _previous.update({s: signal.signal(s, _note) for s in WATCHED})
    _depth += main_thread
    try:
        yield
    finally:
        _depth -= main_thread
        if main_thread and _depth == 0:
            for signum, handler in _previous.items():
                signal.signal(signum, handler)
            _previous.clear()


def watch_process() -> None:
    """Watch for the rest of this process: a local sweep's worker (the pool's initializer),
    so a stop signal that arrives between two jobs is kept, and the next job, once started,
    checkpoints and stops at its first step instead of training on (watch() blocks inside it
    nest and keep the note)."""
    global _process_watch
    _process_watch = watch()  # held: a dropped generator would close, and end the watch
    _process_watch.__enter__()


def ignore_stops() -> None:
    """Ignore SIGTERM and the pre-timeout signal for the rest of this process (a job whose
    results are written and returned). Python keeps an ignored signal ignored while it exits,
    where it would reset a handler to the default action, which kills the process."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, TIME_LIMIT_SIGNAL):
            signal.signal(signum, signal.SIG_IGN)


def requested() -> int | None:
    """The first watched signal received since the outermost watch() began, if any."""
    return _received[0] if _received else None


def slurm_job() -> dict[str, object] | None:
    """This process's SLURM job as `{"job_id", "restart"}` (an array task as <array>_<task>,
    the form squeue, sacct and scancel take; restart = SLURM_RESTART_COUNT), None outside SLURM."""
    env = os.environ
    if "SLURM_JOB_ID" not in env:
        return None
    array, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    job_id = f"{array}_{task}" if array and task else env["SLURM_JOB_ID"]
    return {"job_id": job_id, "restart": int(env.get("SLURM_RESTART_COUNT") or 0)}


def requeue_self(stop: Interrupted, max_requeues: int) -> tuple[bool, str]:
    """After the pre-timeout signal, put this SLURM job back in the queue (the same job id
    restarts with SLURM_RESTART_COUNT + 1). Returns (requeued, what happened)."""
    job = slurm_job()
    if stop.signum != TIME_LIMIT_SIGNAL or job is None:
        return False, "not requeued by the job (SLURM requeues what it preempts or is told to requeue)"
    if job["restart"] >= max_requeues:
        return False, (f"not requeued: restarted {job['restart']} times already (launcher.max_requeues="
                       f"{max_requeues}); rerun the sweep to resume it")
    try:
        subprocess.run(["scontrol", "requeue", str(job["job_id"])], check=True, timeout=60, capture_output=True,
                       text=True)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = str(getattr(exc, "stderr", "") or exc).strip()
        return False, f"requeue of job {job['job_id']} failed ({detail}); rerun the sweep to resume it"
    return True, f"requeued job {job['job_id']} (restart {job['restart'] + 1} of at most {max_requeues})"
