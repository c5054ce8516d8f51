"""A scheduler's stop signals (harness/preempt.py): SIGTERM and the pre-timeout SIGUSR2 make
the training loop write its checkpoint at once and stop; the run then resumes to the numbers
of an uninterrupted one, and a SLURM job requeues itself only after the pre-timeout signal.
The real scheduler's side is in tests/test_slurm.py."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pandas as pd
import pytest

import harness.train
from harness.checkpoint import load_checkpoint
from harness.launch import RunJob
from harness.records import PROJECT_ROOT
from harness.run import main

FAST = ["progress=false", "n_envs=4", "eval_n_envs=2", "eval_episodes=4", "log_every=100"]
ARGS = ["env=matrix", "task=climbing", "algo=hasac", "algo.warmup_steps=200", "algo.train_every=100",
        "algo.updates_per_train=2", "algo.batch_size=32", "algo.hidden_sizes=[32,32]",
        "budget=800", "eval_every=400", *FAST]
RUN = ("adhoc", "matrix", "climbing", "hasac", "seed_0")


@pytest.fixture(autouse=True)
def stop_handlers_restored():
    """RunJob ignores the stop signals once its results are final (for the rest of a job's
    process); this test process gets its handlers back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR2)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def signal_at(monkeypatch, signum: int, env_steps: int) -> None:
    """Send `signum` to this process right after the training env step that reaches `env_steps`
    (a wrapper around the real env's step, installed through prepare)."""
    real_prepare = harness.train.prepare

    def prepare(settings):
        prepared = real_prepare(settings)
        env, real_step, done = prepared.env, prepared.env.step, [0]

        def step(actions):
            out = real_step(actions)
            done[0] += env.n_envs
            if done[0] == env_steps:
                os.kill(os.getpid(), signum)
            return out

        env.step = step
        return prepared

    monkeypatch.setattr(harness.train, "prepare", prepare)


def checkpoint_steps(run) -> int:
    return load_checkpoint(run / "checkpoints" / "latest.pt")["env_steps"]


def test_sigterm_between_evaluations_checkpoints_there_and_resumes_exactly(tmp_path, monkeypatch, capsys):
    assert main([*ARGS, f"results_dir={tmp_path / 'straight'}"]) == 0
    signal_at(monkeypatch, signal.SIGTERM, 500)  # evaluations at 0, 400, 800
    assert main([*ARGS, f"results_dir={tmp_path / 'stopped'}"]) == 128 + signal.SIGTERM
    assert "interrupted: stopped by SIGTERM at env step 500" in capsys.readouterr().err
    run = tmp_path.joinpath("stopped", *RUN)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["interrupted"][0]["env_steps"] == 500
    assert checkpoint_steps(run) == 500, "the checkpoint is the signal's step, not the last evaluation's"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the handlers are put back"

    monkeypatch.undo()
    assert main([*ARGS, f"results_dir={tmp_path / 'stopped'}"]) == 0
    straight = tmp_path.joinpath("straight", *RUN)
    pd.testing.assert_frame_equal(pd.read_csv(straight / "eval.csv"), pd.read_csv(run / "eval.csv"))
    rows_a, rows_b = pd.read_csv(straight / "train.csv"), pd.read_csv(run / "train.csv")
    same = [c for c in rows_a.columns if c != "perf/sps"]
    pd.testing.assert_frame_equal(rows_a[same], rows_b[same])
    first, second = (json.loads((d / "summary.json").read_text()) for d in (straight, run))
    assert second["resumed_from"] == 500
    for key in ("eval_return_mean", "eval_return_std", "env_steps", "updates", "train_episodes", "policy_probs"):
        assert first[key] == second[key], key
    assert json.loads((run / "meta.json").read_text())["resumed"][0]["env_steps"] == 500


def test_a_pack_stopped_by_sigterm_checkpoints_every_seed_there_and_resumes_exactly(tmp_path, monkeypatch, capsys):
    pack = [*ARGS, "seeds=2", "pack=2"]
    assert main([*pack, f"results_dir={tmp_path / 'straight'}"]) == 0
    signal_at(monkeypatch, signal.SIGTERM, 500)
    assert main([*pack, f"results_dir={tmp_path / 'stopped'}"]) == 128 + signal.SIGTERM
    runs = [tmp_path.joinpath("stopped", *RUN[:-1], f"seed_{k}") for k in (0, 1)]
    for run in runs:
        assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"
        assert checkpoint_steps(run) == 500 and not (run / "checkpoints" / "pending.pt").exists()
    monkeypatch.undo()
    assert main([*pack, f"results_dir={tmp_path / 'stopped'}"]) == 0
    for k, run in enumerate(runs):
        straight = tmp_path.joinpath("straight", *RUN[:-1], f"seed_{k}")
        pd.testing.assert_frame_equal(pd.read_csv(straight / "eval.csv"), pd.read_csv(run / "eval.csv"))
        assert json.loads((run / "summary.json").read_text())["resumed_from"] == 500


@pytest.fixture
def slurm_job(tmp_path, monkeypatch):
    """Inside a (pretend) SLURM job: its variables and an `scontrol` that records its arguments."""
    calls = tmp_path / "scontrol.calls"
    fake = tmp_path / "bin" / "scontrol"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4243")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    return calls


def test_pre_timeout_signal_in_a_slurm_job_requeues_it_without_a_result(tmp_path, monkeypatch, slurm_job):
    signal_at(monkeypatch, signal.SIGUSR2, 300)
    with pytest.raises(SystemExit):  # no result for Submitit: the requeued job will write it
        RunJob(max_requeues=2)([[*ARGS, f"results_dir={tmp_path}"]])
    assert slurm_job.read_text().split() == ["requeue", "4242_1"]
    meta = json.loads(tmp_path.joinpath(*RUN, "meta.json").read_text())
    assert meta["interrupted"][0] == meta["interrupted"][0] | {"signal": "SIGUSR2", "env_steps": 300}
    assert meta["slurm"] == {"job_id": "4242_1", "restart": 0}


def test_sigterm_in_a_slurm_job_leaves_the_requeue_to_slurm(tmp_path, monkeypatch, slurm_job):
    signal_at(monkeypatch, signal.SIGTERM, 300)
    with pytest.raises(SystemExit):
        RunJob(max_requeues=2)([[*ARGS, f"results_dir={tmp_path}"]])
    assert not slurm_job.exists()
    assert checkpoint_steps(tmp_path.joinpath(*RUN)) == 300


def test_a_job_restarted_max_requeues_times_is_not_requeued_again(tmp_path, monkeypatch, slurm_job):
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    signal_at(monkeypatch, signal.SIGUSR2, 300)
    [result] = RunJob(max_requeues=2)([[*ARGS, f"results_dir={tmp_path}"]])
    assert result["status"] == "interrupted" and "restarted 2 times" in result["detail"]
    assert not slurm_job.exists()


def test_a_finished_job_ignores_a_late_stop_signal(tmp_path, slurm_job):
    """SLURM's pre-timeout signal may come after the job's results are written, while its
    process exits: it must not kill a finished job (SLURM would record it FAILED)."""
    [result] = RunJob(max_requeues=2)([[*ARGS, f"results_dir={tmp_path}"]])
    assert result["status"] == "done"
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    os.kill(os.getpid(), signal.SIGUSR2)  # ignored: this process goes on
    assert not slurm_job.exists()  # and nothing is requeued


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc)."""
    found, todo = set(), [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            with suppress(OSError):
                children = {int(c) for c in (task / "children").read_text().split()}
                todo += children - found
                found |= children
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_to_a_local_sweep_reaches_its_workers_and_stops_them_at_a_checkpoint(tmp_path):
    """`launcher.n_jobs=2`: SIGTERM to the sweep's process (not its process group) reaches both
    workers, which checkpoint and end, and the queued job never starts; the sweep exits
    128 + 15 and no worker trains on after it."""
    args = [*ARGS[:8], "budget=10000000", "eval_every=5000000", *FAST, "seeds=3", "launcher.n_jobs=2",
            f"results_dir={tmp_path}"]
    sweep = subprocess.Popen([sys.executable, "-m", "harness.run", *args], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stopped_sweep_leaves_no_worker(sweep, tmp_path)
    finally:  # whatever failed, nothing of it trains on
        with suppress(ProcessLookupError):
            os.killpg(sweep.pid, signal.SIGKILL)


def stopped_sweep_leaves_no_worker(sweep: subprocess.Popen, root: Path) -> None:
    runs = [root.joinpath(*RUN[:-1], f"seed_{k}") for k in range(3)]
    deadline = time.monotonic() + 180
    while sum(r.joinpath("train.csv").exists() for r in runs) < 2:  # both workers are training
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.5)
    workers, training = descendants(sweep.pid), [r for r in runs if r.joinpath("train.csv").exists()]
    assert len(workers) >= 3  # the forkserver and two workers
    sweep.send_signal(signal.SIGTERM)  # to the sweep's process alone, not its group
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 128 + signal.SIGTERM, err
    assert "interrupted: stopped by SIGTERM" in err
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers), "a worker outlived the sweep"
    assert training == runs[:2] and not any(r.joinpath("DONE").exists() for r in runs)
    assert all(checkpoint_steps(r) > 0 for r in training)  # each stopped at its checkpoint
    assert not runs[2].exists()  # the queued seed never started (cancelled, or refused by its worker)
