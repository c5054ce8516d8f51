"""Sweeps: one command line → checked jobs (suite entry × swept values × seed) → launched.

`suite=<name>` reads harness/conf/suite/<name>.yaml (harness/suites.py); any `key=a,b` on
the command line is swept (Hydra's override grammar, without `-m`); `seeds=N` means seeds
0…N−1, `seed=K` one seed. Every job is composed and checked here — names, fields,
simulators, algorithm vs action space, a results directory written by another config, a
checkpoint's integrity — before anything is launched, so a bad input fails in one line
with nothing started. `run_sweep` then launches them (harness/launch.py) and prints the
summary.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

import envs
from algos.common.registry import ALGORITHMS, check_compatible
from envs.base import EnvSpec
from envs.errors import ConfigError, EnvUnavailable
from harness.checkpoint import check_checkpoint_intact
from harness.config import check_same_config, compose, load_settings, register_schemas, run_path
from harness.jobs import Job, Outcome, dry_run_table, summary_table
from harness.launch import launch, load_cluster_profile, slurm_executor
from harness.pack import check_packable
from harness.layout import RunPath
from harness.records import check_writable, heartbeat_age_seconds, read_meta
from harness.settings import Settings
from harness.status import record_jobs
from harness.suites import ADHOC, entry_overrides, load_suite, split_overrides

def seed_list(base: DictConfig, plain: list[str], swept: dict[str, list[str]]) -> list[str] | None:
    """Overrides for the user's seeds: `seeds=N` → seed=0…N−1; [] for seed=K; None when the
    command line names no seed (a suite's or run's `seeds:` then applies)."""
    seeds = base.seeds
    given = "seed" in swept or any(o.split("=", 1)[0].lstrip("+") == "seed" for o in plain)
    if seeds is None:
        return [] if given else None
    if given:
        raise ConfigError("give seed=K (one run) or seeds=N (seeds 0..N-1), not both")
    return count_seeds(seeds)


def count_seeds(seeds: Any) -> list[str]:
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ConfigError(f"seeds must be >= 1 (an integer), got {seeds!r}")
    return [f"seed={k}" for k in range(seeds)]


def note_pending(suite: dict[str, Any], name: str) -> None:
    """One line naming the algorithms a suite lists (`algos:`, its own or a run's) that this
    version does not implement; they are left out."""
    listed = [*(suite.get("algos") or []), *(a for entry in suite["runs"] for a in entry.get("algos", []))]
    pending = sorted(set(listed) - set(ALGORITHMS))
    if pending:
        print(f"note: suite {name} lists {', '.join(pending)}, not implemented in this version; left out")


def expand(argv: list[str]) -> tuple[DictConfig, list[list[str]]]:
    """(base config, every job's overrides) for a command line. A suite run's `algos:` and
    `seeds:` (else the suite's) apply unless the command line gives algo= / seeds= / seed=."""
    register_schemas()
    plain, swept = split_overrides(argv)
    # The base needs only the top-level keys, the launcher and the group choices. Algorithm and
    # env fields (`algo=hasac,mehaml_kl algo.alpha=0.2`, or a suite's algorithms) fit each
    # job's choices, not the default ones, so they are left out here; every job is composed
    # whole, and checked, in prepare_jobs.
    base, choices = compose([o for o in plain if not o.lstrip("+~").startswith(("algo.", "env."))])
    suite = load_suite(str(base.suite))
    user_algo = "algo" in swept or any(o.startswith("algo=") for o in plain)
    user_seeds = seed_list(base, plain, swept)
    if not user_algo:
        note_pending(suite, str(base.suite))
    jobs = []
    for entry in suite["runs"]:
        entry_swept = dict(swept)
        algos = entry.get("algos", suite.get("algos"))
        if not user_algo and algos:
            entry_swept = {"algo": [a for a in algos if a in ALGORITHMS], **swept}
        default_seeds = entry.get("seeds", suite.get("seeds"))
        seeds = (user_seeds if user_seeds is not None else count_seeds(default_seeds) if default_seeds is not None else []) or [None]
        keys = list(entry_swept)
        for values in itertools.product(*(entry_swept[k] for k in keys)):
            combo = dict(zip(keys, values))
            algo = combo.get("algo", choices["algo"])
            per_algo = [str(o) for o in suite["algo_overrides"].get(algo, [])]
            per_algo += [str(o) for o in entry.get("algo_overrides", {}).get(algo, [])]
            for seed in seeds:
                swept_values = [f"{k}={v}" for k, v in combo.items()]
                jobs.append(entry_overrides(entry) + per_algo + plain + swept_values + ([seed] if seed else []))
    return base, jobs


def prepare_jobs(argv: list[str]) -> tuple[DictConfig, list[Job]]:
    """Expand and check every job; raises ConfigError/EnvUnavailable on any bad input."""
    base, job_overrides = expand(argv)
    specs: dict[str, EnvSpec] = {}
    jobs = []
    for overrides in job_overrides:
        settings, cfg = load_settings(overrides)
        settings.validate()
        path = run_path(cfg, settings)
        job = Job(overrides=overrides, label=f"{settings.family}/{path.task} {settings.algo} s{settings.seed}",
                  path=path, budget=settings.budget, family=settings.family, task=settings.task,
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
        if job.compatible:
            check_packable(settings.algo, settings.algo_config, base.pack)
        check_same_config(path, job.config_yaml)
        job.state = path.state
        if job.state == "resume":
            check_checkpoint_intact(path.checkpoint)
        jobs.append(job)
    if jobs and not any(j.compatible for j in jobs) and not base.dry_run:
        raise ConfigError(f"no job of this sweep can run: {jobs[0].reason}")
    return base, jobs


def env_spec(cache: dict[str, EnvSpec], settings: Settings) -> EnvSpec:
    """Build one copy per distinct env config (this is where a missing simulator shows)."""
    key = yaml.safe_dump([settings.family, settings.task, settings.env_fields])
    if key not in cache:
        env = envs.make(settings.family, settings.task, n_envs=1, seed=0, **settings.env_fields)
        cache[key] = env.spec
        env.close()
    return cache[key]


def stale_runs(jobs: list[Job], stale_after_s: float) -> list[tuple[Job, float]]:
    """Runs whose meta says `running` but whose heartbeat stopped: the process died without
    Python noticing (SIGKILL, OOM killer, a lost SLURM node)."""
    out = []
    for job in jobs:
        meta = read_meta(job.path)
        age = heartbeat_age_seconds(meta) if meta.get("status") == "running" else None
        if age is not None and age > stale_after_s:
            out.append((job, age))
    return out


def run_sweep(argv: list[str]) -> int:
    """Expand, check, launch; print the summary. 0 when every job ended well (or is still
    queued or running elsewhere), 1 otherwise."""
    base, jobs = prepare_jobs(argv)
    results_dir = Path(base.results_dir)
    if base.dry_run:
        print(dry_run_table(jobs, results_dir, base.pack))
        return 0
    check_writable(results_dir)
    launcher = OmegaConf.to_object(base.launcher)
    if launcher.name == "slurm":
        slurm_executor(results_dir / launcher.folder, load_cluster_profile(base.cluster))  # a bad profile fails first
    for job, age in stale_runs(jobs, base.stale_after_min * 60):
        print(f"stale: {job.path} says running but its heartbeat is {age / 60:.0f} min old "
              "(the process died); it resumes from its checkpoint")
    record_jobs({job.path: job.budget for job in jobs if job.compatible})  # for harness.status
    total = sum(j.compatible for j in jobs)
    seen: list[Outcome] = []

    def report(outcome: Outcome) -> None:
        seen.append(outcome)
        if total > 1:
            print(f"[{len(seen)}/{len(jobs)}] {outcome.status}: {outcome.job.label}"
                  + (f" ({outcome.detail})" if outcome.detail else ""), flush=True)
        elif outcome.status == "skipped":
            print(f"skip: {outcome.job.path} is finished (DONE); delete it to run again")

    outcomes = launch(launcher, jobs, results_dir, base.cluster, report, base.pack)
    if len(jobs) > 1 or not all(o.fine for o in outcomes):
        print(summary_table(outcomes))
    if base.report and str(base.suite) != ADHOC:
        from harness.report import sweep_report

        sweep_report(results_dir, str(base.suite))
    return 0 if all(o.fine for o in outcomes) else 1
