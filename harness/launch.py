"""Launchers: where a sweep's jobs run. `launcher=local` (default) runs them on this machine,
`launcher.n_jobs` at a time; `launcher=submitit_local` sends them through Submitit's local
executor (the cluster code path, without a cluster); `launcher=slurm cluster=<profile>`
submits a SLURM job array through Submitit with the profile in slurm/<profile>.yaml.

Every job is `RunJob()(unit)`: the overrides of the seeds it trains — one run, or with
`pack=K` up to K seeds of one config in one process on one device (harness/pack.py) — so a
job resumes each of its runs from its own checkpoint whenever it is started again. RunJob
is a Submitit Checkpointable: on a time-out or preemption Submitit requeues it with the same
arguments, and the requeued job continues from the runs' latest checkpoints.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Optional

import submitit
import yaml

from envs.errors import ConfigError, UserError
from harness.jobs import Job, Outcome, pack_units
from harness.records import PROJECT_ROOT
from harness.settings import Launcher
from harness.loop import TrainingDiverged
from harness.pack import run_job

CLUSTER_DIR = PROJECT_ROOT / "slurm"


def execute(unit: list[list[str]], raise_user_errors: bool = False) -> list[dict[str, str]]:
    """Run one job (the overrides of its seeds); failures become a status per seed (their
    traceback is in each run's error.txt). In this process (`raise_user_errors`), bad input
    stops the sweep with exit status 2."""
    try:
        return [{"status": status, "detail": ""} for _, status in run_job(unit)]
    except TrainingDiverged as exc:
        result = {"status": "failed: nan", "detail": str(exc).splitlines()[0]}
    except UserError as exc:
        if raise_user_errors:
            raise
        result = {"status": "failed", "detail": str(exc)}
    except Exception as exc:
        result = {"status": "failed", "detail": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                                                f" (traceback in the run's error.txt)"}
    return [result] * len(unit)


class RunJob(submitit.helpers.Checkpointable):
    """A job as Submitit sees it; the inherited checkpoint() requeues it unchanged."""

    def __call__(self, unit: list[list[str]]) -> list[dict[str, str]]:
        return execute(unit)


def launch(launcher: Launcher, jobs: list[Job], results_dir: Path, cluster: Optional[str],
           report: Callable[[Outcome], None], pack: int = 1) -> list[Outcome]:
    """Run the jobs that need running, `pack` seeds of one config per process; returns one
    Outcome per run (skips included)."""
    outcomes = [Outcome(j, "skipped", "DONE") for j in jobs if j.compatible and j.state == "skip"]
    outcomes += [Outcome(j, "n/a", j.reason) for j in jobs if not j.compatible]
    todo = pack_units([j for j in jobs if j.compatible and j.state != "skip"], pack)
    for outcome in outcomes:
        report(outcome)
    if not todo:
        return outcomes
    if launcher.name == "local":
        return outcomes + run_local(todo, launcher.n_jobs, report)
    folder = results_dir / launcher.folder / "%j"
    if launcher.name == "submitit_local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=launcher.timeout_min)
        return outcomes + run_submitit(executor, todo, launcher.n_jobs, report)
    executor = slurm_executor(folder, load_cluster_profile(cluster), launcher.max_requeues)
    with executor.batch():
        submitted = [executor.submit(RunJob(), quiet(unit)) for unit in todo]
    print(f"submitted {len(submitted)} jobs as SLURM array {submitted[0].job_id.split('_')[0]}; "
          f"logs in {results_dir / launcher.folder}/<job id>/")
    if not launcher.wait:
        return outcomes + [Outcome(j, "submitted", f"job {s.job_id}") for unit, s in zip(todo, submitted) for j in unit]
    return outcomes + collect(zip(todo, submitted), report)


def quiet(unit: list[Job]) -> list[list[str]]:
    """A job's seeds' overrides; cluster and parallel jobs log to files: no progress bars."""
    return [[*job.overrides, "progress=false"] for job in unit]


def outcomes_of(unit: list[Job], results: list[dict[str, str]], report: Callable[[Outcome], None]) -> list[Outcome]:
    out = [Outcome(job, **result) for job, result in zip(unit, results)]
    for outcome in out:
        report(outcome)
    return out


def run_local(units: list[list[Job]], n_jobs: int, report: Callable[[Outcome], None]) -> list[Outcome]:
    outcomes = []
    if n_jobs <= 1:
        for unit in units:
            outcomes += outcomes_of(unit, execute([j.overrides for j in unit], raise_user_errors=True), report)
        return outcomes
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("forkserver")) as pool:
        futures = {pool.submit(execute, quiet(unit)): unit for unit in units}
        for future in as_completed(futures):
            try:
                results = future.result()
            except Exception as exc:  # the worker process itself died
                results = [{"status": "failed", "detail": f"worker died: {type(exc).__name__}"}] * len(futures[future])
            outcomes += outcomes_of(futures[future], results, report)
    return outcomes


def run_submitit(executor, units: list[list[Job]], n_jobs: int, report: Callable[[Outcome], None]) -> list[Outcome]:
    """Submit in waves of n_jobs (the local executor starts everything it is given)."""
    outcomes = []
    for lo in range(0, len(units), n_jobs):
        wave = units[lo:lo + n_jobs]
        submitted = [executor.submit(RunJob(), quiet(unit)) for unit in wave]
        outcomes += collect(zip(wave, submitted), report)
    return outcomes


def collect(pairs, report: Callable[[Outcome], None]) -> list[Outcome]:
    outcomes = []
    for unit, handle in pairs:
        try:
            results = handle.result()
        except Exception as exc:  # Submitit re-raises what killed the job, with its log path
            results = [{"status": "failed", "detail": f"{type(exc).__name__}; log: {handle.paths.stderr}"}] * len(unit)
        outcomes += outcomes_of(unit, results, report)
    return outcomes


def available_profiles() -> list[str]:
    return sorted(p.stem for p in CLUSTER_DIR.glob("*.yaml"))


def load_cluster_profile(name: Optional[str]) -> dict[str, Any]:
    """slurm/<name>.yaml, or a path to a YAML file."""
    if not name:
        raise ConfigError(f"launcher=slurm needs cluster=<profile>; profiles: {', '.join(available_profiles())}")
    path = Path(name) if name.endswith((".yaml", ".yml")) else CLUSTER_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown cluster profile {name!r}; valid: {', '.join(available_profiles())} "
                          f"(files in {CLUSTER_DIR}) or a path to a .yaml file")
    profile = yaml.safe_load(path.read_text()) or {}
    if not isinstance(profile, dict):
        raise ConfigError(f"cluster profile {path} must be a mapping of sbatch settings")
    return profile


def slurm_executor(folder: Path, profile: dict[str, Any], max_requeues: int = 5) -> submitit.SlurmExecutor:
    """Submitit's SlurmExecutor with a profile's parameters: the profile's keys are its
    parameter names (`partition`, `mem`, `time`, `setup`, ...; `job_name` defaults to
    hasac-bench), and Submitit refuses unknown ones, here one line."""
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=max_requeues)
    params = {"job_name": "hasac-bench"} | {k: v for k, v in profile.items() if v is not None}
    try:
        executor.update_parameters(**params)
    except ValueError as exc:
        raise ConfigError(f"cluster profile: {str(exc).splitlines()[0]} (valid: SlurmExecutor's parameters, "
                          "see slurm/README.md)") from None
    return executor
