"""Sweeps: one command line → a table of jobs (suite entry × swept values × seed).

`suite=<name>` reads harness/conf/suite/<name>.yaml (a list of runs: env, task, budget,
per-task overrides, optional variant label); any `key=a,b` on the command line is swept
(Hydra's override grammar, without `-m`); `seeds=N` means seeds 0…N−1, `seed=K` one seed.
Every job is composed and checked here — names, fields, simulators, algorithm vs action
space, a results directory written by another config — before anything is launched, so a
bad input fails in one line with nothing started.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from envs.errors import ConfigError, EnvUnavailable
from harness.records import heartbeat_age_seconds, read_meta

SUITE_DIR = Path(__file__).resolve().parent / "conf" / "suite"
# Keys that say how or where to run, not what is computed: a rerun may change them freely.
VOLATILE_KEYS = ("progress", "launcher", "cluster", "dry_run", "seeds", "results_dir", "torch_threads")


@dataclass
class Job:
    overrides: list[str]
    label: str
    """family/task[-variant] algo seed — how the job is named in tables."""
    run_dir: Path
    budget: int
    family: str
    task: str
    algo: str
    config_yaml: str = ""
    state: str = "new"
    """new | resume | skip (DONE) | running (live lock)."""
    compatible: bool = True
    reason: str = ""


@dataclass
class Outcome:
    job: Job
    status: str
    """done | resumed | skipped | failed | failed: nan | n/a."""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def read_suite(name: str) -> dict[str, Any]:
    """conf/suite/<name>.yaml with its `include:`d suites' runs appended."""
    path = SUITE_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown suite {name!r}; valid: {', '.join(available_suites())}")
    suite = yaml.safe_load(path.read_text()) or {}
    runs = list(suite.get("runs", []))
    algo_overrides = dict(suite.get("algo_overrides", {}))
    for included in suite.get("include", []):
        inner = read_suite(included)
        runs += inner["runs"]
        algo_overrides = inner.get("algo_overrides", {}) | algo_overrides
    return {**suite, "runs": runs, "algo_overrides": algo_overrides}


def load_suite(name: str) -> dict[str, Any]:
    """The suite's runs, default algos and per-algorithm overrides; `adhoc` is the command
    line alone."""
    if name == "adhoc":
        return {"runs": [{}], "algos": None, "algo_overrides": {}}
    return read_suite(name)


def entry_overrides(entry: dict[str, Any]) -> list[str]:
    """A suite run as command-line overrides (placed before the user's, which win)."""
    out = []
    for key in ("env", "task", "budget", "eval_every", "variant"):
        if key in entry:
            out.append(f"{key}={entry[key]}")
    out += [str(o) for o in entry.get("overrides", [])]
    return out


def split_overrides(argv: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(plain overrides, {key: swept values}) by Hydra's own override parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(argv)
    except Exception as exc:  # Hydra's OverrideParseException and friends
        raise ConfigError(f"cannot parse overrides: {str(exc).splitlines()[0]}") from None
    plain, swept = [], {}
    for override in parsed:
        if override.is_sweep_override():
            swept[override.key_or_group] = list(override.sweep_string_iterator())
        else:
            plain.append(override.input_line)
    return plain, swept


def seed_list(base: Any, plain: list[str], swept: dict[str, list[str]]) -> list[str]:
    """Overrides for the seeds: `seeds=N` → seed=0…N−1; otherwise none (seed=K or default)."""
    seeds = base.seeds
    if seeds is None:
        return []
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    if "seed" in swept or any(o.split("=", 1)[0].lstrip("+") == "seed" for o in plain):
        raise ConfigError("give seed=K (one run) or seeds=N (seeds 0..N-1), not both")
    return [f"seed={k}" for k in range(seeds)]


def expand(argv: list[str]) -> tuple[Any, list[list[str]]]:
    """(base config, every job's overrides) for a command line."""
    from algos.common.registry import ALGORITHMS
    from harness.run import compose, register_schemas

    register_schemas()
    plain, swept = split_overrides(argv)
    # The base needs only the top-level keys, the launcher and the group choices. Algorithm and
    # env fields (`algo=hasac,mehaml_kl algo.alpha=0.2`, or a suite's algorithms) fit each
    # job's choices, not the default ones, so they are left out here; every job is composed
    # whole, and checked, in prepare_jobs.
    base, choices = compose([o for o in plain if not o.lstrip("+~").startswith(("algo.", "env."))])
    suite = load_suite(str(base.suite))
    if "algo" not in swept and not any(o.startswith("algo=") for o in plain) and suite.get("algos"):
        pending = [a for a in suite["algos"] if a not in ALGORITHMS]
        if pending:
            print(f"note: suite {base.suite} lists {', '.join(pending)}, not implemented in this version; left out")
        swept = {"algo": [a for a in suite["algos"] if a in ALGORITHMS], **swept}
    seeds = seed_list(base, plain, swept) or [None]
    keys = list(swept)
    jobs = []
    for entry in suite["runs"]:
        for values in itertools.product(*(swept[k] for k in keys)):
            combo = dict(zip(keys, values))
            algo = combo.get("algo", choices["algo"])
            per_algo = [str(o) for o in suite["algo_overrides"].get(algo, [])]
            per_algo += [str(o) for o in entry.get("algo_overrides", {}).get(algo, [])]
            for seed in seeds:
                swept_values = [f"{k}={v}" for k, v in combo.items()]
                jobs.append(entry_overrides(entry) + per_algo + plain + swept_values + ([seed] if seed else []))
    return base, jobs


def prepare_jobs(argv: list[str]) -> tuple[Any, list[Job]]:
    """Expand and check every job; raises ConfigError/EnvUnavailable on any bad input."""
    from algos.common.registry import check_compatible
    from harness.run import load_settings, run_dir_for

    base, job_overrides = expand(argv)
    specs: dict[str, Any] = {}
    jobs = []
    for overrides in job_overrides:
        settings, cfg = load_settings(overrides)
        settings.validate()
        run_dir = run_dir_for(cfg, settings)
        variant = f"-{cfg.variant}" if cfg.variant else ""
        job = Job(overrides=overrides, label=f"{settings.family}/{settings.task}{variant} {settings.algo} s{settings.seed}",
                  run_dir=run_dir, budget=settings.budget, family=settings.family, task=settings.task,
                  algo=settings.algo, config_yaml=OmegaConf.to_yaml(cfg))
        try:
            spec = env_spec(specs, settings)
        except EnvUnavailable as exc:
            if not base.dry_run:
                raise
            job.compatible, job.state, job.reason = False, "no sim", f"simulator missing: {exc}"
            jobs.append(job)
            continue
        try:
            check_compatible(settings.algo, spec)
            settings.algo_config.validate(spec)
        except ConfigError as exc:
            if len(job_overrides) == 1:
                raise
            job.compatible, job.reason = False, str(exc)
        check_same_config(run_dir, job.config_yaml)
        job.state = run_state(run_dir)
        if job.state == "resume":
            check_checkpoint_intact(run_dir / "checkpoints" / "latest.pt")
        jobs.append(job)
    if jobs and not any(j.compatible for j in jobs) and not base.dry_run:
        raise ConfigError(f"no job of this sweep can run: {jobs[0].reason}")
    return base, jobs


def env_spec(cache: dict[str, Any], settings) -> Any:
    """Build one copy per distinct env config (this is where a missing simulator shows)."""
    import envs

    key = yaml.safe_dump([settings.family, settings.task, settings.env_fields])
    if key not in cache:
        env = envs.make(settings.family, settings.task, n_envs=1, seed=0, **settings.env_fields)
        cache[key] = env.spec
        env.close()
    return cache[key]


def semantic_config(config_yaml: str) -> dict[str, Any]:
    config = yaml.safe_load(config_yaml) or {}
    for key in VOLATILE_KEYS:
        config.pop(key, None)
    return config


def check_same_config(run_dir: Path, config_yaml: str) -> None:
    """Refuse to mix: an existing run directory must have been written by this config."""
    path = run_dir / "config.yaml"
    if not path.exists():
        return
    old, new = semantic_config(path.read_text()), semantic_config(config_yaml)
    if old != new:
        changed = ", ".join(_differences(old, new)[:3])
        raise ConfigError(f"{run_dir} was written by a different config ({changed}); "
                          "use another results_dir or suite, or delete that directory")


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in dict.fromkeys([*old, *new]):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def run_state(run_dir: Path) -> str:
    if (run_dir / "DONE").exists():
        return "skip"
    if (run_dir / "checkpoints" / "latest.pt").exists():
        return "resume"
    return "new"


def check_checkpoint_intact(path: Path) -> None:
    """A cheap up-front check (zip CRCs, no unpickling) so a corrupt checkpoint stops the
    sweep before it starts; a foreign one is caught when its job loads it."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}); "
                          "delete it to start that run over") from None
    if bad is not None:
        raise ConfigError(f"checkpoint {path} is corrupt ({bad} fails its CRC); delete it to start that run over")


def stale_runs(jobs: list[Job], stale_after_s: float) -> list[tuple[Job, float]]:
    """Runs whose meta says `running` but whose heartbeat stopped: the process died without
    Python noticing (SIGKILL, OOM killer, a lost SLURM node)."""
    out = []
    for job in jobs:
        meta = read_meta(job.run_dir)
        age = heartbeat_age_seconds(meta) if meta.get("status") == "running" else None
        if age is not None and age > stale_after_s:
            out.append((job, age))
    return out


def measured_rates(results_dir: Path) -> dict[tuple[str, str, str], float]:
    """Env steps per wall second of finished runs, per (family, task, algo)."""
    import json

    rates: dict[tuple[str, str, str], list[float]] = {}
    for summary_path in results_dir.glob("*/*/*/*/seed_*/summary.json"):
        try:
            summary = json.loads(summary_path.read_text())
            rate = summary["env_steps"] / summary["wall_seconds"]
        except (OSError, ValueError, KeyError, ZeroDivisionError):
            continue
        algo_dir = summary_path.parent.parent
        task = algo_dir.parent.name
        family = algo_dir.parent.parent.name
        rates.setdefault((family, task, algo_dir.name), []).append(rate)
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
        rate = rates.get((job.family, job.run_dir.parent.parent.name, job.algo))
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
        if outcome.status.startswith("failed") and (outcome.job.run_dir / "error.txt").exists():
            detail += f"  [{outcome.job.run_dir / 'error.txt'}]"
        lines.append(f"{outcome.status:<12} {outcome.job.label:<48}{detail}")
    lines.append("sweep: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    return "\n".join(lines)
