"""Launchers: where a sweep's jobs run. `launcher=local` (default) runs them on this machine,
`launcher.n_jobs` at a time; `launcher=submitit_local` sends them through Submitit's local
executor (the cluster code path, without a cluster); `launcher=slurm cluster=<profile>`
submits a SLURM job array through Submitit with the profile in slurm/<profile>.yaml.

Every job is `RunJob()(unit)`: the overrides of the seeds it trains — one run, or with
`pack=K` up to K seeds of one config in one process on one device (harness/pack.py) — so a
job resumes each of its runs from its own checkpoint whenever it is started again. On
SLURM a job writes its checkpoint
at once on SIGTERM or the pre-timeout signal and requeues after the latter (RunJob,
harness/preempt.py); a sweep submits only the runs SLURM is not already running, lists
their job ids, and names the state and log of a job that ended without finishing its run
(harness/slurm.py).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import submitit
import yaml

from envs.errors import ConfigError, UserError
from harness import preempt, slurm
from harness.jobs import Job, Outcome, pack_units
from harness.records import PROJECT_ROOT, RunLocked
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
    except RunLocked as exc:
        if raise_user_errors:
            raise
        result = {"status": "busy", "detail": str(exc)}  # another job trains it: not a failure
    except UserError as exc:
        if raise_user_errors:
            raise
        result = {"status": "failed", "detail": str(exc)}
    except Exception as exc:
        result = {"status": "failed", "detail": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                                                f" (traceback in the run's error.txt)"}
    return [result] * len(unit)


class RunJob(submitit.helpers.Checkpointable):
    """A job as Submitit sees it. Its stop signals are watched from the start (harness/preempt.py):
    after one, the run's checkpoint is written and the job exits without a result, so a waiting
    sweep keeps waiting for the restart. After the pre-timeout signal the job requeues itself;
    after SIGTERM SLURM requeues it (preemption, `scontrol requeue`) or it was cancelled. The
    inherited checkpoint() (Submitit's own handler, before ours is set) resubmits it unchanged."""

    def __init__(self, max_requeues: int = 5):
        self.max_requeues = max_requeues

    def __call__(self, unit: list[list[str]]) -> list[dict[str, str]]:
        with preempt.watch():
            try:
                results = execute(unit)
            except preempt.Interrupted as stop:
                requeued, what = preempt.requeue_self(stop, self.max_requeues)
                print(f"{stop}; {what}", flush=True)
                if requeued or stop.signum != preempt.TIME_LIMIT_SIGNAL:
                    raise SystemExit(128 + stop.signum) from None
                results = [{"status": "interrupted", "detail": what}] * len(unit)
        # The results are final: a stop signal from here on has nothing to save. SLURM's
        # pre-timeout signal can come while the process exits, and would otherwise end a
        # finished job as FAILED (killed by SIGUSR2 once Python has reset its handlers).
        preempt.ignore_stops()
        return results


def launch(launcher: Launcher, jobs: list[Job], results_dir: Path, cluster: Optional[str],
           report: Callable[[Outcome], None], pack: int = 1) -> list[Outcome]:
    """Run the jobs that need running (all runnable here), up to `pack` seeds of one config
    per job; returns one Outcome per run (skips included)."""
    outcomes = [Outcome(j, "skipped", "DONE") for j in jobs if j.state == "skip"]
    todo = [j for j in jobs if j.state != "skip"]
    for outcome in outcomes:
        report(outcome)
    if not todo:
        return outcomes
    if launcher.name == "local":
        return outcomes + run_local(pack_units(todo, pack), launcher.n_jobs, report)
    folder = results_dir / launcher.folder / "%j"
    if launcher.name == "submitit_local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=launcher.timeout_min)
        return outcomes + run_submitit(executor, pack_units(todo, pack), launcher.n_jobs, report)
    executor = slurm_executor(folder, load_cluster_profile(cluster), launcher.max_requeues)
    return outcomes + run_slurm(executor, launcher, todo, results_dir, report, pack)


def quiet(unit: list[Job]) -> list[list[str]]:
    """A job's seeds' overrides; cluster and parallel jobs log to files: no progress bars."""
    return [[*job.overrides, "progress=false"] for job in unit]


def outcomes_of(unit: list[Job], results: list[dict[str, str]], report: Callable[[Outcome], None]) -> list[Outcome]:
    """One Outcome per seed of a job, reported."""
    out = [Outcome(job, **result) for job, result in zip(unit, results)]
    for outcome in out:
        report(outcome)
    return out


def run_local(units: list[list[Job]], n_jobs: int, report: Callable[[Outcome], None]) -> list[Outcome]:
    outcomes = []
    if n_jobs <= 1:
        for unit in units:
            try:
                results = execute([j.overrides for j in unit], raise_user_errors=True)
            except RunLocked as exc:  # a single run says so and exits 2; a sweep goes on
                if len(units) == 1:
                    raise
                results = [{"status": "busy", "detail": str(exc)}] * len(unit)
            outcomes += outcomes_of(unit, results, report)
        return outcomes
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("forkserver"),
                             initializer=preempt.watch_process) as pool, stops_forwarded(pool) as stops:
        futures = {pool.submit(execute_unless_stopped, quiet(unit)): unit for unit in units}
        pending = set(futures)
        while pending:
            # a short wait, so that the jobs still queued are cancelled here, in this thread,
            # soon after a stop signal (the handler may not take the futures' locks)
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            if stops:
                for queued in pending:
                    queued.cancel()
            for future in done:
                if future.cancelled():
                    continue
                try:
                    results = future.result()  # a worker's Interrupted stops the sweep here
                except Exception as exc:  # the worker process itself died
                    results = [{"status": "failed", "detail": f"worker died: {type(exc).__name__}"}] * len(futures[future])
                outcomes += outcomes_of(futures[future], results, report)
    if stops:  # every job running at the signal had just finished: the queued ones were cancelled
        raise preempt.Interrupted(stops[0], None)
    return outcomes


def execute_unless_stopped(unit: list[list[str]]) -> list[dict[str, str]]:
    """A local pool's job: `execute`, unless a stop signal reached this worker before (kept by
    preempt.watch_process); a job the pool had already handed out then does not start."""
    stop = preempt.requested()
    if stop is not None:
        raise preempt.Interrupted(stop, None)
    return execute(unit)


@contextmanager
def stops_forwarded(pool: ProcessPoolExecutor) -> Iterator[list[int]]:
    """While a local pool runs: a SIGTERM to this process (`kill`, the end of an allocation)
    is sent on to every worker, whose training loop then writes its checkpoint and stops
    (preempt.watch_process), as a Ctrl-C does through the process group; run_local cancels
    the queued jobs. Without it the workers, children of the forkserver, train on after this
    process has ended. Yields the signals received. The handler only notes and forwards:
    cancelling futures takes locks the interrupted main thread may hold."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def forward(signum, frame):
        received.append(signum)
        for process in list(pool._processes.values()):  # CPython's executor keeps its workers there
            with suppress(ProcessLookupError):
                os.kill(process.pid, signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_submitit(executor, units: list[list[Job]], n_jobs: int, report: Callable[[Outcome], None]) -> list[Outcome]:
    """Submit in waves of n_jobs (the local executor starts everything it is given)."""
    outcomes = []
    for lo in range(0, len(units), n_jobs):
        wave = units[lo:lo + n_jobs]
        submitted = [executor.submit(RunJob(), quiet(unit)) for unit in wave]
        outcomes += collect(zip(wave, submitted), report)
    return outcomes


def run_slurm(executor: submitit.SlurmExecutor, launcher: Launcher, jobs: list[Job], results_dir: Path,
              report: Callable[[Outcome], None], pack: int = 1) -> list[Outcome]:
    """Submit, as one array, the runs SLURM is not already running (up to `pack` seeds of one
    config per array task); list them with their job ids; with launcher.wait, wait for them
    and return how each ended."""
    outcomes, todo, before = [], [], {}
    previous = {id(j): slurm.read_submission(j.path) for j in jobs}
    states = slurm.job_states([p["job_id"] for p in previous.values() if p])
    for job in jobs:
        record = previous[id(job)]
        state = states.get(record.get("job_id", ""), "")
        if state in slurm.ACTIVE:
            outcomes.append(Outcome(job, "queued", f"SLURM job {record['job_id']} {state}"))
            report(outcomes[-1])
            continue
        if record:
            before[id(job)] = f"before: job {record['job_id']} {state or 'gone'}, log: {record['stderr']}"
        todo.append(job)
    if not todo:
        return outcomes
    units = pack_units(todo, pack)
    with executor.batch():
        handles = [executor.submit(RunJob(launcher.max_requeues), quiet(unit)) for unit in units]
    pairs = [(job, handle) for unit, handle in zip(units, handles) for job in unit]
    for job, handle in pairs:
        slurm.record_submission(job.path, handle.job_id, handle.paths.stdout, handle.paths.stderr)
    arrays = sorted({h.job_id.split("_")[0] for h in handles})
    print(f"submitted {len(handles)} job{'s' * (len(handles) > 1)} as SLURM array {', '.join(arrays)}:")
    for job, handle in pairs:
        print(f"  {handle.job_id:<12} {job.label}" + (f"  ({before[id(job)]})" if id(job) in before else ""))
    print(slurm.follow_hint(arrays, results_dir), flush=True)
    if not launcher.wait:
        return outcomes + [Outcome(j, "submitted", f"job {h.job_id}" + (f"; {before[id(j)]}" if id(j) in before else ""))
                           for j, h in pairs]
    return outcomes + collect(zip(units, handles), report)


# How a job that ended without a result is listed
ENDED = {"CANCELLED": "cancelled", "TIMEOUT": "timeout"}


def collect(pairs, report: Callable[[Outcome], None]) -> list[Outcome]:
    """Each job's (unit of seeds, Submitit handle) result, one Outcome per seed."""
    outcomes = []
    for unit, handle in pairs:
        try:
            results = handle.result()
        except Exception as exc:  # no result: the job was killed, cancelled or crashed outside Python
            state = (handle.state or "UNKNOWN").split()[0]
            results = [{"status": ENDED.get(state, "failed"),
                        "detail": f"{state} (job {handle.job_id}, {type(exc).__name__}); log: {handle.paths.stderr}"}] * len(unit)
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
    hasac-bench), and Submitit refuses unknown ones, here one line. Every job is marked
    requeueable (`--requeue`), so that it may requeue itself at its time limit wherever the
    cluster's default (JobRequeue) says otherwise. Where SLURM's commands are missing
    (Submitit looks for `srun`), one line too."""
    if shutil.which("srun") is None or shutil.which("sbatch") is None:
        missing = " and ".join(c for c in ("srun", "sbatch") if shutil.which(c) is None)
        raise ConfigError(f"launcher=slurm needs SLURM's commands on PATH ({missing} not found): run it on a "
                          "cluster's login node, or use launcher=local")
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=max_requeues)
    params = {"job_name": "hasac-bench"} | {k: v for k, v in profile.items() if v is not None}
    params["additional_parameters"] = {"requeue": True, **(params.get("additional_parameters") or {})}
    try:
        executor.update_parameters(**params)
    except ValueError as exc:
        raise ConfigError(f"cluster profile: {str(exc).splitlines()[0]} (valid: SlurmExecutor's parameters, "
                          "see slurm/README.md)") from None
    return executor
