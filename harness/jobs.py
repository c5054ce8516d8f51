"""A sweep's jobs: what one job is (`Job`, made and classified by harness/sweep.py), how it
ended (`Outcome`, from harness/launch.py), and what a sweep prints about them — the dry
run's plan (one row per task and algorithm, seeds together; the counts per class; each
reason a job cannot run here once, with the jobs it covers; the cost estimate) and the
closing summary of a real run, which repeats the counts and the reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

from harness.config import semantic_config
from harness.estimate import CostQuery, RateBook, estimate, estimate_lines, unit_hours
from harness.jobcheck import RUNNABLE, count_line, reason_lines, seed_text
from harness.layout import RunPath


@dataclass
class Job:
    overrides: list[str]
    path: RunPath
    budget: int
    family: str
    task: str
    algo: str
    seed: int
    config_yaml: str = ""
    state: str = "new"
    """new | resume (a checkpoint to continue from) | skip (finished: DONE)."""
    verdict: str = RUNNABLE
    """harness/jobcheck.py's class: runnable, or why not (no simulator, unsupported, n/a)."""
    reason: str = ""
    """One line for a job that cannot run here, shared by every job with the same cause."""
    cost: CostQuery | None = None
    """What the estimate needs (device, evaluation cadence, threads, steps already done)."""

    @property
    def name(self) -> str:
        """family/task-dir — the task as the results tree files it (variant, substitute)."""
        return f"{self.family}/{self.path.task}"

    @property
    def label(self) -> str:
        """How one job is named in progress lines: family/task-dir algo s<seed>."""
        return f"{self.name} {self.algo} s{self.seed}"

    @property
    def runnable(self) -> bool:
        return self.verdict == RUNNABLE


FINE = frozenset({"done", "resumed", "skipped", "submitted", "queued", "busy"})


@dataclass
class Outcome:
    job: Job
    status: str
    """done | resumed | skipped | submitted | queued (SLURM runs it) | busy (another process
    trains it) — or, needing a rerun: failed | failed: nan | cancelled | timeout |
    interrupted (stopped on a signal, checkpoint written). Jobs that cannot run here have
    no outcome: the summary lists them with their reasons."""

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


def not_runnable_lines(jobs: Iterable[Job]) -> list[str]:
    """Each reason a job cannot run here, once, with the jobs it covers."""
    blocked = [(j.verdict, j.reason, (j.name, j.algo, j.seed)) for j in jobs if not j.runnable]
    if not blocked:
        return []
    return [f"not runnable here ({len(blocked)} job{'s' * (len(blocked) != 1)}):", *reason_lines(blocked)]


def _rows(jobs: Iterable[Job]) -> dict[tuple[str, str], list[Job]]:
    rows: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        rows.setdefault((job.name, job.algo), []).append(job)
    return rows


def _states(jobs: list[Job]) -> str:
    if not jobs[0].runnable:
        return jobs[0].verdict
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    return counts.popitem()[0] if len(counts) == 1 else ", ".join(f"{n} {s}" for s, n in counts.items())


def cost_units(jobs: list[Job], pack: int) -> list[list[CostQuery]]:
    """The jobs left to run as the launcher will start them (packs of seeds with `pack` > 1)."""
    todo = [j for j in jobs if j.runnable and j.state != "skip" and j.cost is not None]
    return [[j.cost for j in unit] for unit in (pack_units(todo, pack) if pack > 1 else [[j] for j in todo])]


def plan_table(jobs: list[Job], book: RateBook, hint: str, pack: int = 1) -> str:
    """The dry run's output: rows, counts, reasons, estimate."""
    width = max([len(f"{name} {algo}") for name, algo in _rows(jobs)] + [20]) + 2
    packs = (lambda text: f" {text:>5}") if pack > 1 else (lambda text: "")  # packed jobs per row
    lines = [f"{'job':<{width}} {'seeds':<8} {'budget':>12}  {'state':<14}{packs('packs')} {'est. hours':>10}"]
    for (name, algo), members in _rows(jobs).items():
        units = cost_units(members, pack)
        found = [unit_hours(unit, book) for unit in units]
        hours = f"{sum(f[0] for f in found):,.1f}" if units and all(found) else "?" if units else ""
        lines.append(f"{name + ' ' + algo:<{width}} {seed_text(j.seed for j in members):<8} {members[0].budget:>12,}  "
                     f"{_states(members):<14}{packs(len(units) if units else '')} {hours:>10}")
    runnable = [j for j in jobs if j.runnable]
    done = sum(j.state == "skip" for j in runnable)
    units = cost_units(jobs, pack)
    notes = ([f"{done} of them already done"] if done else []) + (
        [f"{sum(map(len, units))} runs in {len(units)} packed jobs (pack={pack})"] if pack > 1 else [])
    lines.append(count_line(j.verdict for j in jobs) + (f" ({'; '.join(notes)})" if notes else ""))
    lines += not_runnable_lines(jobs)
    lines += estimate_lines(estimate(units, book), hint)
    return "\n".join(lines)


def summary_table(outcomes: list[Outcome], jobs: list[Job]) -> str:
    """The closing summary of a real run: how each runnable job ended (seeds of a task and
    algorithm together; each outcome that needs a rerun on its own line, with its detail and
    error.txt), the counts, and the jobs that could not run here and why."""
    counts: dict[str, int] = {}
    grouped: dict[tuple[str, str, str], list[Outcome]] = {}
    failures = []
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if not outcome.fine:
            error = f"  [{outcome.job.path.error}]" if outcome.job.path.error.exists() else ""
            failures.append(f"{outcome.status:<12} {outcome.job.label}  {outcome.detail}{error}")
        else:
            grouped.setdefault((outcome.status, outcome.job.name, outcome.job.algo), []).append(outcome)
    lines = [f"{status:<12} {name} {algo} {seed_text(o.job.seed for o in members)}"
             for (status, name, algo), members in grouped.items()] + failures
    blocked = sum(not j.runnable for j in jobs)
    lines.append("sweep: " + ", ".join([f"{n} {status}" for status, n in sorted(counts.items())]
                                       + ([f"{blocked} not runnable here"] if blocked else [])))
    return "\n".join(lines + not_runnable_lines(jobs))


def steps_done(path: RunPath) -> int:
    """Env steps a resumable run has already trained (its eval.csv's last row; 0 if none)."""
    try:
        rows = path.eval_csv.read_text().strip().splitlines()
        header = rows[0].split(",")
        return int(float(rows[-1].split(",")[header.index("env_steps")])) if len(rows) > 1 else 0
    except (OSError, ValueError, IndexError):
        return 0
