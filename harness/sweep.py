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

import copy
import dataclasses
import itertools
import re
from collections import Counter
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from algos.common.registry import ALGORITHMS
from envs.errors import ConfigError
from harness.checkpoint import check_checkpoint_intact
from harness.config import check_same_config, compose, load_settings, register_schemas, run_path
from harness.estimate import CostQuery, RateBook, device_kind
from harness.jobcheck import MemoryShare, Prober, classify
from harness.jobs import Job, Outcome, not_runnable_lines, plan_table, steps_done, summary_table
from harness.launch import launch, load_cluster_profile, slurm_executor
from harness.layout import sweep_log
from harness.pack import check_packable
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


class Composer:
    """load_settings once per job apart from its seed: seeds 0..N-1 of one task and algorithm
    differ in `seed` alone, so the other seeds reuse the first one's composition (its config
    object, with `seed` set: valid until the next call, and its YAML with the seed line
    replaced)."""

    def __init__(self) -> None:
        self._done: dict[tuple[str, ...], tuple[Settings, DictConfig, str]] = {}

    def __call__(self, overrides: list[str]) -> tuple[Settings, DictConfig, str]:
        rest = [o for o in overrides if not o.startswith("seed=")]
        seed = overrides[-1].split("=", 1)[1] if len(rest) == len(overrides) - 1 and overrides[-1].startswith("seed=") else None
        if seed is None or not seed.isdigit():
            settings, cfg = load_settings(overrides)
            return settings, cfg, OmegaConf.to_yaml(cfg)
        if tuple(rest) not in self._done:
            settings, cfg = load_settings(overrides)
            self._done[tuple(rest)] = settings, cfg, OmegaConf.to_yaml(cfg)
        settings, cfg, config_yaml = self._done[tuple(rest)]
        cfg.seed = int(seed)
        config_yaml = re.sub(r"^seed: .*$", f"seed: {int(seed)}", config_yaml, count=1, flags=re.M)
        return dataclasses.replace(settings, seed=int(seed), algo_config=copy.deepcopy(settings.algo_config),
                                   env_fields=copy.deepcopy(settings.env_fields)), cfg, config_yaml


def prepare_jobs(argv: list[str]) -> tuple[DictConfig, list[Job], Prober]:
    """Expand, compose and classify every job (harness/jobcheck.py) and check the runnable
    ones (an existing directory written by another config, a checkpoint's integrity).
    Raises ConfigError on bad input; a single run (not a dry run) that cannot run here
    raises its own error (EnvUnavailable, TaskUnsupported, ConfigError)."""
    base, job_overrides = expand(argv)
    strict = len(job_overrides) == 1 and not base.dry_run
    # local launchers train on this machine, launcher.n_jobs processes at once
    memory = MemoryShare.here(base.launcher.n_jobs, base.pack) if base.launcher.name != "slurm" else None
    composer, prober, jobs = Composer(), Prober(), []
    for overrides in job_overrides:
        settings, cfg, config_yaml = composer(overrides)
        settings.validate()
        path = run_path(cfg, settings)
        job = Job(overrides=overrides, path=path, budget=settings.budget, family=settings.family, task=settings.task,
                  algo=settings.algo, seed=settings.seed, config_yaml=config_yaml)
        on_cpu = device_kind(settings.torch_device) == "cpu"
        verdict = classify(settings.algo, settings.algo_config, settings.family, settings.task, settings.env_fields,
                           prober, strict=strict, n_envs=settings.n_envs,
                           memory=memory if on_cpu else None)
        job.verdict, job.reason = verdict.kind, verdict.reason
        if job.runnable:
            check_packable(settings.algo, settings.algo_config, base.pack)
            check_same_config(path, job.config_yaml)
            job.state = path.state
            if job.state == "resume":
                check_checkpoint_intact(path.checkpoint)
        job.cost = CostQuery((settings.family, path.task, settings.algo, device_kind(settings.torch_device)),
                             settings.budget, settings.eval_every, settings.eval_episodes, settings.torch_threads,
                             steps_done(path) if job.state == "resume" else 0)
        jobs.append(job)
    return base, jobs, prober


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


def run_sweep(argv: list[str], simulator_output: str = "") -> int:
    """Expand, classify, launch the runnable jobs; print the summary. 0 when every runnable
    job ended well (or is still queued or running elsewhere), 1 otherwise; a sweep with no
    runnable job is a ConfigError. `simulator_output`: what the simulators printed before
    (preloads), for the sweep's log."""
    base, jobs, prober = prepare_jobs(argv)
    results_dir = Path(base.results_dir)
    if base.dry_run:
        hint = " ".join(["python -m harness.bench.rates", *(a for a in argv if not a.startswith("dry_run="))])
        print(plan_table(jobs, RateBook.load(results_dir), hint, base.pack))
        return 0
    runnable = [j for j in jobs if j.runnable]
    if not runnable:
        print("\n".join(not_runnable_lines(jobs)))
        reasons = Counter(j.reason for j in jobs)
        raise ConfigError(f"no job of this sweep can run here: {reasons.most_common(1)[0][0]}")
    check_writable(results_dir)
    printed = simulator_output + "".join(prober.output)  # what the simulators printed while the jobs were checked
    if printed:
        log = sweep_log(results_dir, str(base.suite))
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as handle:
            handle.write(printed)
    launcher = OmegaConf.to_object(base.launcher)
    if launcher.name == "slurm":
        slurm_executor(results_dir / launcher.folder, load_cluster_profile(base.cluster))  # a bad profile fails first
    for job, age in stale_runs(runnable, base.stale_after_min * 60):
        print(f"stale: {job.path} says running but its heartbeat is {age / 60:.0f} min old "
              "(the process died); it resumes from its checkpoint")
    record_jobs({job.path: job.budget for job in runnable})  # for harness.status
    seen: list[Outcome] = []

    def report(outcome: Outcome) -> None:
        seen.append(outcome)
        if len(runnable) > 1:
            print(f"[{len(seen)}/{len(runnable)}] {outcome.status}: {outcome.job.label}"
                  + (f" ({outcome.detail})" if outcome.detail else ""), flush=True)
        elif outcome.status == "skipped":
            print(f"skip: {outcome.job.path} is finished (DONE); delete it to run again")

    outcomes = launch(launcher, runnable, results_dir, base.cluster, report, base.pack)
    if len(jobs) > 1 or not all(o.fine for o in outcomes):
        print(summary_table(outcomes, jobs))
    if base.report and str(base.suite) != ADHOC:
        from harness.report import sweep_report

        sweep_report(results_dir, str(base.suite))
    return 0 if all(o.fine for o in outcomes) else 1
