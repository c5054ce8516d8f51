"""harness.status: the sweep table read from the files runs write, on a generated tree with
done, running, stale, failed and not-started runs, and on real runs."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness import status
from harness.layout import RunPath

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(autouse=True)
def now():
    """One clock reading per test, so that every file of a tree is dated from it."""
    global NOW
    NOW = dt.datetime.now(dt.timezone.utc)


def ago(seconds: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")


def write_run(suite: Path, algo: str, seed: int, state: str, steps: int, budget: int = 100_000,
              started_s: float = 1000.0, beat_s: float = 10.0, evals: list[float] = (1.0, 2.0),
              resumed: list | None = None) -> Path:
    """A run directory as harness/records.py writes it, `steps` env steps in, last train row
    written `beat_s` seconds ago by a process that started `started_s` seconds ago."""
    run = suite / "mpe" / "simple_spread" / algo / f"seed_{seed}"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"budget": budget, "stale_after_min": 30.0, "seed": seed}))
    meta = {"status": {"failed": "failed: nan"}.get(state, "done" if state == "done" else "running"),
            "start": ago(started_s), "heartbeat": ago(beat_s), "host": "node7"}
    if resumed:
        meta["resumed"] = resumed
    (run / "meta.json").write_text(json.dumps(meta))
    log_steps = list(range(500, steps + 1, 500))
    pd.DataFrame({"env_steps": log_steps, "episodes": [s // 25 for s in log_steps],
                  "train_return_mean": [-1.0] * len(log_steps), "perf/sps": [99.0] * len(log_steps)}
                 ).to_csv(run / "train.csv", index=False)
    eval_steps = [round(steps * k / max(len(evals) - 1, 1)) for k in range(len(evals))]
    pd.DataFrame({"env_steps": eval_steps, "eval_return_mean": list(evals), "eval_return_std": 0.5}
                 ).to_csv(run / "eval.csv", index=False)
    if state == "failed":
        (run / "error.txt").write_text("Traceback (most recent call last):\n  ...\nTrainingDiverged: non-finite metric\n")
    if state == "done":
        (run / "summary.json").write_text(json.dumps({"env_steps": steps, "wall_seconds": steps / 40.0}))
        (run / "DONE").write_text(ago(beat_s) + "\n")
    return run


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    """hasac: seed 0 done (40 steps/s), 1 running, 2 stale (heartbeat 2 h old), 3 failed
    (50 steps/s each), 4 only in jobs.json; mappo: two seeds done."""
    root = tmp_path / "results" / "quick"
    write_run(root, "hasac", 0, "done", 100_000, evals=[-80.0, -60.5])
    write_run(root, "hasac", 1, "running", 49_500, started_s=1000, beat_s=10, evals=[-80.0, -70.25])
    write_run(root, "hasac", 2, "stale", 20_000, started_s=7600, beat_s=7200)
    write_run(root, "hasac", 3, "failed", 5_000, started_s=110, beat_s=10)
    for seed in (0, 1):
        write_run(root, "mappo", seed, "done", 100_000, evals=[-75.0, -65.0 - seed])
    jobs = {RunPath(root / "mpe" / "simple_spread" / a / f"seed_{k}"): 100_000
            for a, n in (("hasac", 5), ("mappo", 2)) for k in range(n)}
    status.record_jobs(jobs)
    return root


def by_seed(runs: list[status.RunStatus], algo: str) -> dict[int, status.RunStatus]:
    return {r.path.seed: r for r in runs if r.path.algo == algo}


def test_each_state_and_rate_is_read_from_the_run_files(suite: Path):
    hasac = by_seed(status.collect(suite), "hasac")
    assert {k: r.state for k, r in hasac.items()} == {0: "done", 1: "running", 2: "stale", 3: "failed", 4: "new"}
    assert hasac[1].rate == pytest.approx(49_500 / 990)  # steps since start / (heartbeat - start)
    assert hasac[0].rate == pytest.approx(40.0)  # a finished run: summary env_steps / wall_seconds
    assert hasac[1].env_steps == 49_500 and hasac[1].steps_left == 50_500
    assert hasac[1].last_eval == ("eval_return_mean", -70.25, 49_500)
    assert hasac[4].budget == 100_000 and hasac[4].env_steps == 0 and hasac[4].last_eval is None
    assert "heartbeat 2.0h ago on node7" in hasac[2].note
    assert "TrainingDiverged: non-finite metric" in hasac[3].note and "error.txt" in hasac[3].note


def test_table_counts_seeds_and_estimates_time_left(suite: Path):
    lines = status.render(status.collect(suite), suite).splitlines()
    row = next(line.split() for line in lines if line.split()[:2] == ["mpe/simple_spread", "hasac"])
    assert row[2:7] == ["1", "1", "1", "1", "1"]  # done running stale failed not-started
    assert row[7] == "174.5k/500k"
    assert row[8] == "50"  # the running seed's steps/s
    assert row[9] == "17m"  # 50,500 steps left at 50 steps/s
    # every unfinished seed's steps at the group's mean measured rate (40, 50, 50, 50)
    left = (50_500 + 80_000 + 95_000 + 100_000) / 47.5 / 3600
    assert row[10] == f"{left:.1f}"
    assert row[11:] == ["0:-60.5", "1:-70.2", "2:2", "3:2", "4:-"]
    mappo = next(line.split() for line in lines if line.split()[:2] == ["mpe/simple_spread", "mappo"])
    assert mappo[2:7] == ["2", "0", "0", "0", "0"] and mappo[9:11] == ["-", "0"]
    assert lines[-1].endswith("7 runs: 3 done, 1 running, 1 stale, 1 failed, 1 not started")
    assert any(line.startswith("failed ") and "hasac s3" in line for line in lines)
    assert any(line.startswith("stale ") and "hasac s2" in line for line in lines)


def test_exit_status_is_nonzero_for_failed_or_stale_runs(suite: Path, tmp_path: Path, capsys):
    assert status.main([str(suite)]) == 1
    assert status.main([str(suite / "mpe" / "simple_spread" / "mappo")]) == 2  # not a suite: no runs at depth 4/5
    done_only = tmp_path / "other" / "quick"
    write_run(done_only, "hasac", 0, "done", 100_000)
    write_run(done_only, "hasac", 1, "running", 10_000)
    assert status.main([str(done_only)]) == 0
    assert status.main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "is not a directory" in err[-1]


def test_stale_after_overrides_the_runs_own_limit(tmp_path: Path):
    root = tmp_path / "quick"
    write_run(root, "hasac", 0, "running", 10_000, started_s=800, beat_s=600)  # 10 min old, the run's limit is 30
    assert status.collect(root)[0].state == "running"
    row = status.render(status.collect(root), root).splitlines()[1].split()
    assert row[10] == f"{90_000 / 50 / 3600:.2f}"  # under an hour of work left: two decimals
    assert status.collect(root, stale_after_min=5)[0].state == "stale"
    assert status.main([str(root), "--stale-after", "5"]) == 1


def test_rate_of_a_resumed_run_counts_from_its_resumption(tmp_path: Path):
    root = tmp_path / "quick"
    resumed = [{"at": ago(400), "env_steps": 30_000, "host": "node2"}]
    write_run(root, "hasac", 0, "running", 50_000, started_s=90_000, beat_s=0, resumed=resumed)
    assert status.collect(root)[0].rate == pytest.approx(20_000 / 400)


def test_reads_without_locking_or_writing(suite: Path):
    """A live run holds its flock; status neither blocks on it nor changes any file."""
    running = suite / "mpe" / "simple_spread" / "hasac" / "seed_1"
    with open(running / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in suite.rglob("*")}
        code = subprocess.run([sys.executable, "-m", "harness.status", str(suite)], capture_output=True,
                              text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
        after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in suite.rglob("*")}
    assert code.returncode == 1 and "mpe/simple_spread  hasac" in code.stdout
    assert before == after


def test_last_row_ignores_a_torn_line_and_reads_long_files_from_the_end(tmp_path: Path):
    path = tmp_path / "train.csv"
    rows = "".join(f"{k * 100},{k}.5\n" for k in range(5000))
    path.write_text("env_steps,train_return_mean\n" + rows + "500000,9")  # a row being appended
    assert status.last_row(path, chunk=256) == {"env_steps": "499900", "train_return_mean": "4999.5"}
    path.write_text("env_steps,train_return_mean\n")
    assert status.last_row(path) is None
    assert status.last_row(tmp_path / "absent.csv") is None


def test_jobs_file_keeps_earlier_sweeps(tmp_path: Path):
    root = tmp_path / "quick"
    status.record_jobs({RunPath(root / "mpe/simple_spread/hasac/seed_0"): 1000})
    status.record_jobs({RunPath(root / "mpe/simple_spread/mappo/seed_0"): 2000})
    runs = status.collect(root)
    assert [(r.path.algo, r.state, r.budget) for r in runs] == [("hasac", "new", 1000), ("mappo", "new", 2000)]


def test_watch_refreshes_until_interrupted_and_exits_with_the_last_status(suite: Path):
    import signal
    import time

    # SIGINT back to its default in the child: a test run started in the background by a
    # non-interactive shell (`cmd &`) inherits SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler, so the interrupt below would never arrive.
    proc = subprocess.Popen([sys.executable, "-m", "harness.status", str(suite), "--watch", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1],
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen, deadline = [], time.time() + 120
    while len([line for line in seen if line.startswith("task ")]) < 2 and time.time() < deadline:
        seen.append(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert len([line for line in seen if line.startswith("task ")]) == 2
    assert proc.returncode == 1 and "Traceback" not in err  # a failed and a stale run in the tree
