"""Launchers: where a sweep's jobs run. `launcher=local` (default) runs them on this machine,
`launcher.n_jobs` at a time; `launcher=submitit_local` sends them through Submitit's local
executor (the cluster code path, without a cluster); `launcher=slurm cluster=<profile>`
submits a SLURM job array through Submitit with the profile in slurm/<profile>.yaml.

Every job is `RunJob()(overrides)`: the same `python -m harness.run` job, so a job resumes
from its own checkpoint whenever it is started again. RunJob is a Submitit Checkpointable:
on a time-out or preemption Submitit requeues it with the same arguments, and the requeued
job continues from the run's latest checkpoint.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Optional

import submitit
import yaml

from envs.errors import ConfigError, UserError
from harness.jobs import Job, Outcome
from harness.records import PROJECT_ROOT
from harness.settings import Launcher
from harness.loop import TrainingDiverged
from harness.train import run_one

CLUSTER_DIR = PROJECT_ROOT / "slurm"


def execute(overrides: list[str], raise_user_errors: bool = False) -> dict[str, str]:
    """Run one job; failures become a status (their traceback is in the run's error.txt).
    In this process (`raise_user_errors`), bad input stops the sweep with exit status 2."""
    try:
        _, status = run_one(overrides)
        return {"status": status, "detail": ""}
    except TrainingDiverged as exc:
        return {"status": "failed: nan", "detail": str(exc).splitlines()[0]}
    except UserError as exc:
        if raise_user_errors:
            raise
        return {"status": "failed", "detail": str(exc)}
    except Exception as exc:
        return {"status": "failed", "detail": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                                             f" (traceback in the run's error.txt)"}


class RunJob(submitit.helpers.Checkpointable):
    """A job as Submitit sees it; the inherited checkpoint() requeues it unchanged."""

    def __call__(self, overrides: list[str]) -> dict[str, str]:
        return execute(overrides)


def launch(launcher: Launcher, jobs: list[Job], results_dir: Path, cluster: Optional[str],
           report: Callable[[Outcome], None]) -> list[Outcome]:
    """Run the jobs that need running; returns one Outcome per job (skips included)."""
    outcomes = [Outcome(j, "skipped", "DONE") for j in jobs if j.compatible and j.state == "skip"]
    outcomes += [Outcome(j, "n/a", j.reason) for j in jobs if not j.compatible]
    todo = [j for j in jobs if j.compatible and j.state != "skip"]
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
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=launcher.max_requeues)
    executor.update_parameters(**slurm_parameters(load_cluster_profile(cluster)))
    with executor.batch():
        submitted = [executor.submit(RunJob(), quiet(j.overrides)) for j in todo]
    print(f"submitted {len(submitted)} jobs as SLURM array {submitted[0].job_id.split('_')[0]}; "
          f"logs in {results_dir / launcher.folder}/<job id>/")
    if not launcher.wait:
        return outcomes + [Outcome(j, "submitted", f"job {s.job_id}") for j, s in zip(todo, submitted)]
    return outcomes + collect(zip(todo, submitted), report)


def quiet(overrides: list[str]) -> list[str]:
    """Cluster and parallel jobs log to files: no progress bars."""
    return [*overrides, "progress=false"]


def run_local(jobs: list[Job], n_jobs: int, report: Callable[[Outcome], None]) -> list[Outcome]:
    outcomes = []
    if n_jobs <= 1:
        for job in jobs:
            outcomes.append(Outcome(job, **execute(job.overrides, raise_user_errors=True)))
            report(outcomes[-1])
        return outcomes
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("forkserver")) as pool:
        futures = {pool.submit(execute, quiet(job.overrides)): job for job in jobs}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # the worker process itself died
                result = {"status": "failed", "detail": f"worker died: {type(exc).__name__}"}
            outcomes.append(Outcome(futures[future], **result))
            report(outcomes[-1])
    return outcomes


def run_submitit(executor, jobs: list[Job], n_jobs: int, report: Callable[[Outcome], None]) -> list[Outcome]:
    """Submit in waves of n_jobs (the local executor starts everything it is given)."""
    outcomes = []
    for lo in range(0, len(jobs), n_jobs):
        wave = jobs[lo:lo + n_jobs]
        submitted = [executor.submit(RunJob(), quiet(j.overrides)) for j in wave]
        outcomes += collect(zip(wave, submitted), report)
    return outcomes


def collect(pairs, report: Callable[[Outcome], None]) -> list[Outcome]:
    outcomes = []
    for job, handle in pairs:
        try:
            result = handle.result()
        except Exception as exc:  # Submitit re-raises what killed the job, with its log path
            result = {"status": "failed", "detail": f"{type(exc).__name__}; log: {handle.paths.stderr}"}
        outcomes.append(Outcome(job, **result))
        report(outcomes[-1])
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


# profile key -> (Submitit SlurmExecutor parameter, conversion)
PROFILE_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "partition": ("partition", str),
    "gpus_per_task": ("gpus_per_task", int),
    "gpus_per_node": ("gpus_per_node", int),
    "cpus_per_task": ("cpus_per_task", int),
    "mem_gb": ("mem", lambda gb: f"{int(gb)}GB"),
    "timeout_min": ("time", int),
    "array_parallelism": ("array_parallelism", int),
    "account": ("account", str),
    "qos": ("qos", str),
    "constraint": ("constraint", str),
    "exclude": ("exclude", str),
    "setup": ("setup", list),
    "job_name": ("job_name", str),
    "additional_parameters": ("additional_parameters", dict),
}


def slurm_parameters(profile: dict[str, Any]) -> dict[str, Any]:
    """A cluster profile as SlurmExecutor.update_parameters arguments."""
    unknown = sorted(set(profile) - set(PROFILE_KEYS))
    if unknown:
        raise ConfigError(f"unknown cluster profile keys {unknown}; valid: {', '.join(PROFILE_KEYS)}")
    params = {"job_name": "hasac-bench"}
    for key, value in profile.items():
        if value is None:
            continue
        name, convert = PROFILE_KEYS[key]
        params[name] = convert(value)
    return params


def sbatch_script(profile: dict[str, Any], folder: str, command: str = "python -u -m submitit.core._submit") -> str:
    """The sbatch file Submitit writes for a profile (for inspection and the golden test)."""
    from submitit.slurm.slurm import _make_sbatch_string

    return _make_sbatch_string(command=command, folder=folder, map_count=None, **slurm_parameters(profile))
