"""A sweep's jobs: what one job is (`Job`, made by harness/sweep.py), how it ended
(`Outcome`, from harness/launch.py), and the two tables a sweep prints about them — the
dry-run plan with estimated device-hours and the closing summary."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.config import semantic_config
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


def pack_key(job: Job) -> str:
    """What the seeds of one pack share: the job's resolved config without its seed."""
    config = semantic_config(job.config_yaml)
    config.pop("seed", None)
    return yaml.safe_dump(config, sort_keys=True)


def pack_units(jobs: list[Job], size: int) -> list[list[Job]]:
    """The jobs grouped into packs (run key `pack`, harness/pack.py) of at most `size` seeds
    of one config, in the order of the jobs."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(pack_key(job), []).append(job)
    return [seeds[i:i + size] for seeds in groups.values() for i in range(0, len(seeds), size)]


def measured_rates(results_dir: Path) -> dict[tuple[str, str, str, int], float]:
    """Env steps per wall second of each seed of finished runs, per (family, task directory,
    algo, pack size): a packed seed advances at the pack's pace."""
    rates: dict[tuple[str, str, str, int], list[float]] = {}
    for run in RunPath.find(results_dir):
        try:
            summary = json.loads(run.summary.read_text())
            rate = summary["env_steps"] / summary["wall_seconds"]
            pack = int((yaml.safe_load(run.config.read_text()) or {}).get("pack", 1))
        except (OSError, ValueError, KeyError, ZeroDivisionError, TypeError, AttributeError, yaml.YAMLError):
            continue
        rates.setdefault((run.family, run.task, run.algo, pack), []).append(rate)
    return {k: sum(v) / len(v) for k, v in rates.items()}


def unit_hours(unit: list[Job], rates: dict[tuple[str, str, str, int], float]) -> tuple[float, str]:
    """Device-hours of one job (a run, or a pack on one device) and how they were estimated:
    from finished runs in packs of this size, else from lone runs with the pack's seeds
    taking their lone time one after another (what packing gains is not assumed)."""
    first, size = unit[0], len(unit)
    todo = [job.budget for job in unit if job.state != "skip"]
    if not todo:
        return 0.0, ""
    rate = rates.get((first.family, first.path.task, first.algo, size))
    if rate:
        return max(todo) / rate / 3600, ""
    lone = rates.get((first.family, first.path.task, first.algo, 1))
    if lone:
        return sum(todo) / lone / 3600, "" if size == 1 else "from lone runs"
    return math.nan, ""


def dry_run_table(jobs: list[Job], results_dir: Path, pack: int = 1) -> str:
    """The job table (with `pack` > 1: which seeds share a job) and an estimated
    device-hours total from measured step rates."""
    rates = measured_rates(results_dir)
    units = pack_units([j for j in jobs if j.compatible], pack)
    first_of = {id(unit[0]): (n, unit) for n, unit in enumerate(units, 1)}
    member_of = {id(job): n for n, unit in enumerate(units, 1) for job in unit}
    column = (lambda text: f" {text:>5}") if pack > 1 else (lambda text: "")
    lines = [f"{'job':<48} {'budget':>11} {'state':>7}{column('pack')} {'est. hours':>10}"]
    total, unknown = 0.0, 0
    for job in jobs:
        if job.state == "no sim":
            lines.append(f"{job.label:<48} {job.budget:>11,} {'no sim':>7}{column('')} {'':>10}  (needs the {job.family} simulator, below)")
            continue
        if not job.compatible:
            lines.append(f"{job.label:<48} {job.budget:>11,} {'n/a':>7}{column('')} {'':>10}  ({job.reason})")
            continue
        shown, note = "", ""
        if id(job) in first_of:
            hours, note = unit_hours(first_of[id(job)][1], rates)
            unknown += math.isnan(hours)
            total += 0.0 if math.isnan(hours) else hours
            shown = "?" if math.isnan(hours) else f"{hours:.2f}"
        lines.append(f"{job.label:<48} {job.budget:>11,} {job.state:>7}{column(member_of[id(job)])} {shown:>10}"
                     + (f"  ({note})" if note else ""))
    runnable = [j for j in jobs if j.compatible]
    missing_sim = sum(j.state == "no sim" for j in jobs)
    counted = f"{len(runnable)} runs in {len(units)} packed jobs (pack={pack})" if pack > 1 else f"{len(runnable)} jobs"
    lines.append(f"{counted} to run or skip ({len(jobs) - len(runnable) - missing_sim} n/a, "
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
