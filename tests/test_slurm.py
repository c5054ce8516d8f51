"""The SLURM path on a real scheduler: sbatch arrays, requeue, the time limit, scancel and two
sweeps racing for the same runs. `scripts/slurm_local.sh start` runs a one-node cluster with
accounting on this machine; without a scheduler that answers, every test here is skipped
with the reason. Marked `slurm` (`python -m pytest -m slurm` runs only these).

Every sweep runs as the user types it (`python -m harness.run ...` in the checkout, whose
directory the jobs start in), and every result is compared with the same command run with
`launcher=local`.
"""

from __future__ import annotations

import json
import math
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FAST = ["progress=false", "n_envs=4", "eval_n_envs=2", "eval_episodes=4"]
SMALL_HASAC = ["algo=hasac", "algo.warmup_steps=200", "algo.train_every=100", "algo.updates_per_train=2",
               "algo.batch_size=32", "algo.hidden_sizes=[32,32]"]
MPE_HASAC = ["env=mpe", "task=simple_spread", *SMALL_HASAC, *FAST]
RUN = Path("adhoc") / "mpe" / "simple_spread" / "hasac"


def _no_scheduler() -> str:
    """Why the scheduler tests cannot run here ("" when they can)."""
    if shutil.which("sbatch") is None:
        return "no SLURM here (scripts/slurm_local.sh start installs and starts a one-node cluster)"
    for command in (["scontrol", "ping"], ["sacct", "-n", "-X", "-S", "now"]):
        try:
            ok = subprocess.run(command, capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if not ok:
            return f"no SLURM scheduler with accounting answers `{' '.join(command)}` (scripts/slurm_local.sh start)"
    return ""


REASON = _no_scheduler()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(bool(REASON), reason=REASON)]


def harness(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.run", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.run", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"gave up waiting {timeout:.0f}s for {what}"
        time.sleep(0.5)


def profile(tmp_path: Path, **keys) -> str:
    """A copy of slurm/local.yaml with `keys` changed, as a cluster=<path> value."""
    values = yaml.safe_load((ROOT / "slurm" / "local.yaml").read_text()) | keys
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def eval_rows(run: Path) -> int:
    path = run / "eval.csv"
    return len(pd.read_csv(path)) if path.exists() and path.stat().st_size else 0


def slurm_job(run: Path) -> str:
    return json.loads((run / "slurm.json").read_text())["job_id"]


def job_log(run: Path) -> str:
    return Path(json.loads((run / "slurm.json").read_text())["stdout"]).read_text()


def assert_same_results(a: Path, b: Path) -> None:
    """Same eval.csv, train.csv (but its wall-clock rate) and summary (but wall time)."""
    pd.testing.assert_frame_equal(pd.read_csv(a / "eval.csv"), pd.read_csv(b / "eval.csv"))
    train_a, train_b = pd.read_csv(a / "train.csv"), pd.read_csv(b / "train.csv")
    same = [c for c in train_a.columns if c != "perf/sps"]
    pd.testing.assert_frame_equal(train_a[same], train_b[same])
    first, second = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for key in set(first) | set(second):
        if key not in ("wall_seconds", "resumed_from"):
            assert first.get(key) == second.get(key), f"{a}: {key}"


def test_smoke_sweep_through_sbatch_equals_the_local_sweep(tmp_path):
    sweep = ["suite=smoke", "algo=random,hasac", "seeds=2"]
    on_slurm = harness(*sweep, "launcher=slurm", "cluster=local", "launcher.wait=true",
                       f"results_dir={tmp_path / 'slurm'}")
    assert on_slurm.returncode == 0, on_slurm.stdout + on_slurm.stderr
    assert "squeue" in on_slurm.stdout, "the submission says how to follow the jobs"
    local = harness(*sweep, f"results_dir={tmp_path / 'local'}")
    assert local.returncode == 0, local.stdout + local.stderr
    runs = sorted(p.parent.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("DONE"))
    assert runs == sorted(p.parent.relative_to(tmp_path / "slurm") for p in (tmp_path / "slurm").rglob("DONE"))
    assert len(runs) >= 10, runs
    for run in runs:
        assert_same_results(tmp_path / "local" / run, tmp_path / "slurm" / run)
        meta = json.loads((tmp_path / "slurm" / run / "meta.json").read_text())
        assert meta["slurm"]["job_id"] == slurm_job(tmp_path / "slurm" / run), "the run records its SLURM job"


def test_requeue_mid_run_resumes_to_the_numbers_of_an_uninterrupted_run(tmp_path):
    args = [*MPE_HASAC, "budget=12000", "eval_every=1200"]
    submitted = harness(*args, "launcher=slurm", "cluster=local", f"results_dir={tmp_path / 'slurm'}")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    run = tmp_path / "slurm" / RUN / "seed_0"
    wait_until(lambda: eval_rows(run) >= 2, 300, "two evaluations (past the first checkpoint)")
    seen = int(pd.read_csv(run / "eval.csv")["env_steps"].max())
    subprocess.run(["scontrol", "requeue", slurm_job(run)], check=True, timeout=60)
    wait_until(lambda: (run / "DONE").exists(), 600, "the requeued job to finish")

    straight = harness(*args, f"results_dir={tmp_path / 'local'}")
    assert straight.returncode == 0, straight.stdout + straight.stderr
    assert_same_results(tmp_path / "local" / RUN / "seed_0", run)
    meta = json.loads((run / "meta.json").read_text())
    (stop,), (resume,) = meta["interrupted"], meta["resumed"]
    assert stop["signal"] == "SIGTERM" and resume["slurm"]["restart"] == 1
    assert resume["env_steps"] == stop["env_steps"] > seen, "checkpointed at the signal, not at the last evaluation"
    assert job_log(run).count("Starting with JobEnvironment") == 2, "the restart appends to the job's log"


def budget_for(seconds: float, tmp_path: Path, step: int) -> int:
    """A budget that takes this machine about `seconds` to train (a multiple of `step`), at
    the training rate (env steps/s, updates included) of a short local run of the same
    configuration."""
    calibration = harness(*MPE_HASAC, f"budget={2 * step}", f"eval_every={step}", f"results_dir={tmp_path / 'cal'}")
    assert calibration.returncode == 0, calibration.stdout + calibration.stderr
    rate = float(pd.read_csv(tmp_path / "cal" / RUN / "seed_0" / "train.csv")["perf/sps"].iloc[-1])
    return step * max(2, math.ceil(seconds * rate / step))


def test_time_limit_signals_checkpoints_requeues_and_finishes(tmp_path):
    # --time=2 --signal=USR2@30: SLURM signals when at most 30 s (+ its 30 s check interval) are
    # left, so one start trains at most ~90 s (less its start-up); a budget of ~120 s of this
    # machine's training needs more than one start, however fast the machine.
    short = profile(tmp_path, time=2, signal_delay_s=30)
    args = [*MPE_HASAC, f"budget={budget_for(120, tmp_path, 4000)}", "eval_every=4000"]
    done = harness(*args, "launcher=slurm", f"cluster={short}", "launcher.wait=true", "launcher.max_requeues=10",
                   f"results_dir={tmp_path / 'slurm'}")
    assert done.returncode == 0, done.stdout + done.stderr
    run = tmp_path / "slurm" / RUN / "seed_0"
    meta = json.loads((run / "meta.json").read_text())
    assert meta.get("interrupted"), "the run finished inside one time limit"
    assert {s["signal"] for s in meta["interrupted"]} == {"SIGUSR2"}
    assert [r["env_steps"] for r in meta["resumed"]] == [s["env_steps"] for s in meta["interrupted"]]
    history: list[str] = []

    def ended() -> bool:  # the result is written a moment before the job leaves RUNNING
        history[:] = subprocess.run(["sacct", "-D", "-X", "-n", "-P", "-o", "State", "-j", slurm_job(run)],
                                    capture_output=True, text=True, check=True).stdout.split()
        return history[-1] not in ("RUNNING", "COMPLETING")

    wait_until(ended, 120, "the job to leave RUNNING")
    assert history.count("REQUEUED") == len(meta["interrupted"]) and history[-1] == "COMPLETED", history

    straight = harness(*args, f"results_dir={tmp_path / 'local'}")
    assert straight.returncode == 0, straight.stdout + straight.stderr
    assert_same_results(tmp_path / "local" / RUN / "seed_0", run)


def test_scancel_of_one_array_task_is_reported_and_a_rerun_completes_it(tmp_path):
    sweep = [*MPE_HASAC, "budget=6000", "eval_every=1200", "seeds=3", "launcher=slurm", "cluster=local",
             "launcher.wait=true", f"results_dir={tmp_path}"]
    runs = [tmp_path / RUN / f"seed_{k}" for k in range(3)]
    first = start(*sweep)
    wait_until(lambda: (runs[1] / "meta.json").exists(), 300, "seed 1 to start")
    cancelled = slurm_job(runs[1])
    subprocess.run(["scancel", cancelled], check=True, timeout=60)
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 1, out
    line = next(s for s in out.splitlines() if s.startswith("cancelled") and "s1" in s)
    assert "CANCELLED" in line and cancelled in line and json.loads((runs[1] / "slurm.json").read_text())["stderr"] in line
    assert (runs[0] / "DONE").exists() and (runs[2] / "DONE").exists() and not (runs[1] / "DONE").exists()

    again = harness(*sweep)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "submitted 1 job" in again.stdout, again.stdout
    assert slurm_job(runs[1]) != cancelled and (runs[1] / "DONE").exists()
    for k in (0, 2):
        assert "resumed" not in json.loads((runs[k] / "meta.json").read_text())


def test_two_sweeps_over_the_same_results_train_each_run_once(tmp_path):
    results = tmp_path / "results"
    sweep = [*MPE_HASAC, "budget=6000", "eval_every=1200", "seeds=2", "launcher=slurm", "cluster=local",
             "launcher.wait=true", f"results_dir={results}"]
    first, second = start(*sweep), start(*sweep)  # at once: each may or may not see the other's jobs
    outs = [p.communicate(timeout=900)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    runs = [results / RUN / f"seed_{k}" for k in range(2)]
    logs = "".join(p.read_text() for p in (results / ".submitit").rglob("*_log.out"))
    for run in runs:
        assert logs.count(f"done: {run} ") == 1, f"{run} trained more or less than once"
        meta = json.loads((run / "meta.json").read_text())
        assert meta["status"] == "done" and "resumed" not in meta
        assert pd.read_csv(run / "train.csv")["env_steps"].is_unique

    # The lock itself, across jobs: two SLURM jobs on one run at once (one per core).
    one = [*MPE_HASAC, "budget=6000", "eval_every=1200", "seed=5", f"results_dir={results}"]
    command = shlex.join([sys.executable, "-m", "harness.run", *one])
    jobs = [subprocess.run(["sbatch", "--parsable", "-c", "1", "-o", str(tmp_path / f"twin{k}.log"),
                            "--wrap", command], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
            for k in range(2)]
    wait_until(lambda: not subprocess.run(["squeue", "-h", "-j", ",".join(jobs)], capture_output=True,
                                          text=True).stdout.strip(), 600, "both jobs to end")
    twins = [(tmp_path / f"twin{k}.log").read_text() for k in range(2)]
    run = results / RUN / "seed_5"
    assert sorted(f"done: {run} " in t for t in twins) == [False, True], twins
    assert any(f"{run} is in use by pid" in t for t in twins), twins


def test_a_pack_is_one_array_task_whose_seeds_equal_the_local_lone_runs(tmp_path):
    """seeds=3 pack=3 through sbatch: one array task trains all three seeds (on this CPU node
    in turn, so the numbers equal lone runs bit for bit); each seed records that job."""
    args = [*MPE_HASAC, "budget=1200", "eval_every=400", "seeds=3"]
    on_slurm = harness(*args, "pack=3", "launcher=slurm", "cluster=local", "launcher.wait=true",
                       f"results_dir={tmp_path / 'slurm'}")
    assert on_slurm.returncode == 0, on_slurm.stdout + on_slurm.stderr
    assert "submitted 1 job as SLURM array" in on_slurm.stdout
    local = harness(*args, f"results_dir={tmp_path / 'local'}")
    assert local.returncode == 0, local.stdout + local.stderr
    jobs = {slurm_job(tmp_path / "slurm" / RUN / f"seed_{k}") for k in range(3)}
    assert len(jobs) == 1, jobs
    for k in range(3):
        assert_same_results(tmp_path / "local" / RUN / f"seed_{k}", tmp_path / "slurm" / RUN / f"seed_{k}")
