"""What SLURM knows about a sweep's jobs: which job last ran each run, and in what state it is.

Submitting a run writes `slurm.json` in its directory (RunPath.slurm) (job id, log paths, time). A later
sweep asks SLURM about those jobs: a run whose job is still pending or running is left to
it (`queued`), and one whose job ended without finishing the run (cancelled, timed out,
failed, node failure) is reported with that state and its log, then submitted again.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from harness.layout import RunPath
from harness.records import atomic_write_json, now

ACTIVE = frozenset({"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED",
                    "RESIZING", "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "PREEMPTED"})
"""States of a job that will still run, or is running (PREEMPTED: about to be requeued)."""


def record_submission(path: RunPath, job_id: str, stdout: Path, stderr: Path) -> None:
    atomic_write_json(path.slurm, {"job_id": job_id, "submitted": now(), "stdout": str(stdout),
                                         "stderr": str(stderr)})


def read_submission(path: RunPath) -> dict[str, Any]:
    """The run's last submission ({} if none or unreadable)."""
    try:
        record = json.loads(path.slurm.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) and "job_id" in record else {}


def _query(command: list[str]) -> list[list[str]]:
    """Rows of a `-P`/`|`-separated SLURM listing; [] when the command fails or is missing."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split("|") for line in out.splitlines() if "|" in line]


def job_states(job_ids: list[str]) -> dict[str, str]:
    """Each job's state (one word: PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT, FAILED,
    ...) from squeue (live jobs, array tasks one by one) and sacct (ended ones); a job
    neither knows is left out."""
    if not job_ids:
        return {}
    wanted = ",".join(job_ids)
    states = {row[0]: row[1] for row in _query(["squeue", "-h", "-r", "-o", "%i|%T", "-j", wanted])}
    ended = [j for j in job_ids if j not in states]
    if ended:
        rows = _query(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(ended)])
        states.update({row[0]: row[1].split()[0] for row in rows if row[0] in ended and row[1]})
    return {j: states[j] for j in job_ids if j in states}


def follow_hint(array_ids: list[str], results_dir: Path) -> str:
    """How to follow submitted jobs: SLURM's view, the runs' view, and the sweep's summary."""
    ids = ",".join(array_ids)
    return (f"follow: squeue -j {ids}  |  python -m harness.status {results_dir}  |  rerun this command "
            f"for the summary (job logs: {results_dir}/.submitit/<job id>/)")
