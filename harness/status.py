"""`python -m harness.status results/<suite> [--watch [SECONDS]]`: the sweep as it stands.

One row per (task, algorithm): seeds done / running / stale (the heartbeat stopped) /
failed / not started, env steps, the measured rate, the latest evaluation of every seed,
the time until the running seeds finish and the device-hours of work left; failed and stale
runs are listed under the table. The exit status is 1 when a run failed or went stale.

It reads only files the runs write (meta.json and its heartbeat, the last rows of train.csv
and eval.csv, config.yaml, summary.json) and the sweep's job list (jobs.json, which is how
seeds that never started are known), never takes a run's lock and never writes, so it can
run on a login node over a shared file system while the sweep trains.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.layout import JOBS_FILE, RunPath, jobs_files
from harness.records import atomic_write_json, heartbeat_age_seconds, read_meta

DEFAULT_STALE_MIN = 30.0
STATES = ("done", "running", "stale", "failed", "new")


@dataclass
class RunStatus:
    path: RunPath
    state: str
    """done | running | stale | failed | new (not started)."""
    budget: int | None = None
    env_steps: int = 0
    rate: float | None = None
    """Env steps per wall second measured over this process's (or the finished run's) life."""
    last_eval: tuple[str, float, int] | None = None
    """(column, value, env step) of the latest evaluation: the success metric where there is one."""
    heartbeat_age: float | None = None
    note: str = ""

    @property
    def steps_left(self) -> int:
        return 0 if self.state == "done" or self.budget is None else max(self.budget - self.env_steps, 0)


def record_jobs(budgets: dict[RunPath, int]) -> None:
    """Add a sweep's runs and budgets to their suite's jobs.json, so that status knows the
    seeds that have not started yet (a run directory exists only once its job starts)."""
    suites: dict[Path, dict[str, int]] = {}
    for run, budget in budgets.items():
        suite_dir = run.dir.parents[3]
        suites.setdefault(suite_dir, {})[run.dir.relative_to(suite_dir).as_posix()] = budget
    for suite_dir, added in suites.items():
        try:
            known = json.loads((suite_dir / JOBS_FILE).read_text())
        except (OSError, ValueError):
            known = {}
        atomic_write_json(suite_dir / JOBS_FILE, known | added)


def last_row(path: Path, chunk: int = 65536) -> dict[str, str] | None:
    """The header-keyed last complete row of a CSV file, read from its end (a torn last line
    of a file being appended is ignored); None when there is no row."""
    try:
        with open(path, "rb") as handle:
            header = handle.readline().decode()
            size = handle.seek(0, 2)
            handle.seek(max(size - chunk, len(header.encode())))
            tail = handle.read().decode(errors="replace")
    except OSError:
        return None
    lines = tail.split("\n")[:-1]  # whatever follows the last newline is not a complete row yet
    names = next(csv.reader([header]), [])
    for line in reversed(lines):
        values = next(csv.reader([line]), [])
        if len(values) == len(names) and values != names:
            return dict(zip(names, values))
    return None


def _config(run: RunPath) -> dict[str, Any]:
    try:
        return yaml.load(run.config.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def _rate(meta: dict[str, Any], env_steps: int) -> float | None:
    """Steps per second since this process started or resumed the run, up to its heartbeat."""
    resumed = meta.get("resumed") or []
    start, steps0 = (resumed[-1]["at"], resumed[-1]["env_steps"]) if resumed else (meta.get("start"), 0)
    seconds = _seconds_between(start, meta.get("heartbeat"))
    if not seconds or seconds <= 0 or env_steps <= steps0:
        return None
    return (env_steps - steps0) / seconds


def _last_eval(run: RunPath) -> tuple[str, float, int] | None:
    row = last_row(run.eval_csv)
    if row is None:
        return None
    column = next((c for c in ("win_rate", "score") if row.get(c) not in (None, "")), "eval_return_mean")
    try:
        return column, float(row[column]), int(float(row["env_steps"]))
    except (KeyError, ValueError):
        return None


def read_status(run: RunPath, budget: int | None, stale_after_min: float | None) -> RunStatus:
    """The state of one run from its files alone."""
    meta = read_meta(run)
    config = _config(run)
    status = RunStatus(run, "new", budget=config.get("budget", budget), last_eval=_last_eval(run))
    row = last_row(run.train_csv)
    status.env_steps = int(float(row["env_steps"])) if row else 0
    if run.done:
        status.state = "done"
        try:
            summary = json.loads(run.summary.read_text())
            status.env_steps = int(summary["env_steps"])
            status.rate = summary["env_steps"] / summary["wall_seconds"]
        except (OSError, ValueError, KeyError, ZeroDivisionError):
            pass
        return status
    if not meta:
        return status
    status.heartbeat_age = heartbeat_age_seconds(meta)
    status.rate = _rate(meta, status.env_steps)
    limit = 60 * (stale_after_min if stale_after_min is not None
                  else config.get("stale_after_min", DEFAULT_STALE_MIN))
    if str(meta.get("status", "")).startswith("failed"):
        status.state = "failed"
        status.note = _error_line(run) or str(meta["status"])
    elif status.heartbeat_age is not None and status.heartbeat_age > limit:
        status.state = "stale"
        status.note = f"heartbeat {_duration(status.heartbeat_age)} ago on {meta.get('host', '?')}"
    else:
        status.state = "running"
    return status


def _error_line(run: RunPath) -> str:
    try:
        lines = [line for line in run.error.read_text().splitlines() if line.strip()]
    except OSError:
        return ""
    return f"{lines[-1].strip()[:120]}  [{run.error}]" if lines else ""


def collect(root: Path, stale_after_min: float | None = None) -> list[RunStatus]:
    """Every run under `root` (a suite, or a results root holding suites), and every job of
    the suites' jobs.json that has no directory yet (state `new`)."""
    runs = {run.dir: run for run in RunPath.find(root)}
    budgets: dict[Path, int] = {}
    for jobs_file in jobs_files(root):
        try:
            budgets |= {jobs_file.parent / rel: b for rel, b in json.loads(jobs_file.read_text()).items()}
        except (OSError, ValueError):
            continue
    for run_dir in budgets:
        runs.setdefault(run_dir, RunPath(run_dir))
    return [read_status(run, budgets.get(d), stale_after_min) for d, run in sorted(runs.items())]


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 5400 else f"{seconds / 3600:.1f}h"


def _hours(hours: float | None) -> str:
    if hours is None:
        return "?"
    return "0" if hours == 0 else f"{hours:.{0 if hours >= 10 else 1 if hours >= 1 else 2}f}"


def _steps(n: float) -> str:
    unit = next(((d, u) for d, u in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if n >= d), (1, ""))
    return f"{n / unit[0]:.1f}".removesuffix(".0") + unit[1]


def _group_row(runs: list[RunStatus]) -> list[str]:
    counts = [sum(r.state == s for r in runs) for s in STATES]
    rates = [r.rate for r in runs if r.rate]
    group_rate = sum(rates) / len(rates) if rates else None
    running = [r for r in runs if r.state == "running"]
    live_rates = [r.rate for r in running if r.rate]
    eta = max((r.steps_left / (r.rate or group_rate) for r in running if r.rate or group_rate), default=None)
    left = sum(r.steps_left for r in runs)
    budget = sum(r.budget or 0 for r in runs)
    work = left / group_rate / 3600 if group_rate else (0.0 if left == 0 else None)
    evals = " ".join(f"{r.path.seed}:{r.last_eval[1]:.3g}" if r.last_eval else f"{r.path.seed}:-"
                     for r in sorted(runs, key=lambda r: r.path.seed))
    shown_rate = sum(live_rates) / len(live_rates) if live_rates else group_rate
    return [*(str(c) for c in counts),
            f"{_steps(sum(r.env_steps for r in runs))}/{_steps(budget) if budget else '?'}",
            f"{shown_rate:.0f}" if shown_rate else "-",
            _duration(eta) if running else "-",
            _hours(work), evals]


HEADER = ["task", "algo", "done", "run", "stale", "fail", "new", "env steps", "steps/s", "eta",
          "dev-h left", "latest eval per seed (seed:value)"]


def render(runs: list[RunStatus], root: Path) -> str:
    """The table, the failed/stale runs, and a closing line with the totals."""
    groups: dict[tuple[str, str, str], list[RunStatus]] = {}
    for run in runs:
        groups.setdefault((run.path.family, run.path.task, run.path.algo), []).append(run)
    rows = [[f"{family}/{task}", algo, *_group_row(members)] for (family, task, algo), members in groups.items()]
    widths = [max(len(str(row[i])) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["  ".join(str(cell).ljust(w) if i in (0, 1, len(HEADER) - 1) else str(cell).rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in [HEADER, *rows]]
    lines += [f"{r.state:<7} {r.path.family}/{r.path.task} {r.path.algo} s{r.path.seed}  {r.note}"
              for r in runs if r.state in ("failed", "stale")]
    counts = {s: sum(r.state == s for r in runs) for s in STATES}
    total = ", ".join(f"{n} {'not started' if s == 'new' else s}" for s, n in counts.items() if n)
    lines.append(f"{root}: {len(runs)} runs: {total or 'none'}"
                 + ("" if any(f.exists() for f in jobs_files(root))
                    else f" (no {JOBS_FILE}: runs that never started are not known)"))
    return "\n".join(lines)


def exit_code(runs: list[RunStatus]) -> int:
    return 1 if any(r.state in ("failed", "stale") for r in runs) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.status", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="results/<suite> (or a results root holding suites)")
    parser.add_argument("--watch", nargs="?", type=float, const=30.0, default=None, metavar="SECONDS",
                        help="refresh every SECONDS (default 30) until interrupted")
    parser.add_argument("--stale-after", type=float, default=None, metavar="MIN",
                        help="heartbeat age that makes a running run stale (default: the run's stale_after_min)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"error: {args.root} is not a directory (give results/<suite>)", file=sys.stderr)
        return 2
    code = 0
    try:
        while True:
            runs = collect(args.root, args.stale_after)
            if not runs:
                print(f"error: no runs under {args.root} (give results/<suite>)", file=sys.stderr)
                return 2
            if args.watch is not None and sys.stdout.isatty():
                print("\033[H\033[2J", end="")
            stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            print(f"{stamp}\n{render(runs, args.root)}", flush=True)
            code = exit_code(runs)
            if args.watch is None:
                return code
            time.sleep(args.watch)
    except KeyboardInterrupt:  # the way out of --watch: the last table's status
        return code


if __name__ == "__main__":
    sys.exit(main())
