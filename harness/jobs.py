"""A sweep's jobs: what one job is (`Job`, made by harness/sweep.py), how it ended
(`Outcome`, from harness/launch.py), and the two tables a sweep prints about them — the
dry-run plan with estimated device-hours and the closing summary."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.layout import RunPath


@dataclass
class Job:
    overrides: list[str]
    label: str
    """family/task[-variant] algo seed — how the job is named in tables."""
    path: RunPath
    budget: int
    family: str
    task: str
    algo: str
    config_yaml: str = ""
    state: str = "new"
    """new | resume (a checkpoint to continue from) | skip (finished: DONE) | no sim (the
    family's simulator is missing; dry runs only)."""
    compatible: bool = True
    reason: str = ""


FINE = frozenset({"done", "resumed", "skipped", "n/a", "submitted", "queued", "busy"})


@dataclass
class Outcome:
    job: Job
    status: str
    """done | resumed | skipped | n/a | submitted | queued (SLURM runs it) | busy (another
    process trains it) — or, needing a rerun: failed | failed: nan | cancelled | timeout |
    interrupted (stopped on a signal, checkpoint written)."""

    @property
    def fine(self) -> bool:
        """Nothing is asked of the user (any other outcome makes the sweep exit 1)."""
        return self.status in FINE
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def measured_rates(results_dir: Path) -> dict[tuple[str, str, str], float]:
    """Env steps per wall second of finished runs, per (family, task directory, algo)."""
    rates: dict[tuple[str, str, str], list[float]] = {}
    for run in RunPath.find(results_dir):
        try:
            summary = json.loads(run.summary.read_text())
            rate = summary["env_steps"] / summary["wall_seconds"]
        except (OSError, ValueError, KeyError, ZeroDivisionError):
            continue
        rates.setdefault((run.family, run.task, run.algo), []).append(rate)
    return {k: sum(v) / len(v) for k, v in rates.items()}


def dry_run_table(jobs: list[Job], results_dir: Path) -> str:
    """The job table and an estimated CPU/GPU-hours total from measured step rates."""
    rates = measured_rates(results_dir)
    lines = [f"{'job':<48} {'budget':>11} {'state':>7} {'est. hours':>10}"]
    total, unknown = 0.0, 0
    for job in jobs:
        if job.state == "no sim":
            lines.append(f"{job.label:<48} {job.budget:>11,} {'no sim':>7} {'':>10}  (needs the {job.family} simulator, below)")
            continue
        if not job.compatible:
            lines.append(f"{job.label:<48} {job.budget:>11,} {'n/a':>7} {'':>10}  ({job.reason})")
            continue
        rate = rates.get((job.family, job.path.task, job.algo))
        hours = job.budget / rate / 3600 if rate else math.nan
        if rate and job.state != "skip":
            total += hours
        elif not rate:
            unknown += 1
        shown = f"{hours:.2f}" if rate else "?"
        lines.append(f"{job.label:<48} {job.budget:>11,} {job.state:>7} {shown:>10}")
    runnable = [j for j in jobs if j.compatible]
    missing_sim = sum(j.state == "no sim" for j in jobs)
    lines.append(f"{len(runnable)} jobs to run or skip ({len(jobs) - len(runnable) - missing_sim} n/a, "
                 f"{missing_sim} need a simulator not installed here), "
                 f"{sum(j.state == 'skip' for j in runnable)} already done; estimated {total:.1f} device-hours"
                 + (f" plus {unknown} jobs without a measured rate (run them small once, e.g. the smoke suite)"
                    if unknown else ""))
    lines += sorted({f"no sim: {job.reason}" for job in jobs if job.state == "no sim"})
    return "\n".join(lines)


def summary_table(outcomes: list[Outcome]) -> str:
    counts: dict[str, int] = {}
    lines = []
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        detail = f"  {outcome.detail}" if outcome.detail else ""
        if outcome.status.startswith("failed") and outcome.job.path.error.exists():
            detail += f"  [{outcome.job.path.error}]"
        lines.append(f"{outcome.status:<12} {outcome.job.label:<48}{detail}")
    lines.append("sweep: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    return "\n".join(lines)
