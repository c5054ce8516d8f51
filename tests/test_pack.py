"""The run key pack=K as users drive it (harness/pack.py): packed seeds write the runs lone
seeds write, resume exactly after SIGKILL, fail alone, group into jobs for every launcher,
and algorithms without a packed form are refused in one line."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.config import semantic_config
from harness.jobs import pack_units
from harness.launch import launch
from harness.run import main
from harness.settings import SlurmLauncher
from harness.sweep import prepare_jobs

FAST = ["progress=false", "n_envs=4", "eval_n_envs=2", "eval_episodes=4"]
SMALL = ["env=mpe", "task=simple_spread", "algo.warmup_steps=200", "algo.train_every=100", "algo.updates_per_train=2",
         "algo.batch_size=32", "algo.hidden_sizes=[32,32]", "budget=1200", "eval_every=400", *FAST]
RUNS = Path("adhoc") / "mpe" / "simple_spread"


def run_dirs(root: Path, algo: str, seeds) -> list[Path]:
    return [root / RUNS / algo / f"seed_{k}" for k in seeds]


def assert_same_runs(a: Path, b: Path, close: bool = False) -> None:
    """Two run directories hold the same files and numbers: eval.csv, train.csv but for
    perf/sps, the summary but for the wall time, config.yaml but for the volatile keys."""
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    check = (lambda x, y: pd.testing.assert_frame_equal(x, y, rtol=1e-4, atol=1e-5)) if close else pd.testing.assert_frame_equal
    check(pd.read_csv(a / "eval.csv"), pd.read_csv(b / "eval.csv"))
    train_a, train_b = pd.read_csv(a / "train.csv"), pd.read_csv(b / "train.csv")
    assert list(train_a.columns) == list(train_b.columns)
    same = [c for c in train_a.columns if c != "perf/sps"]
    check(train_a[same], train_b[same])
    first, second = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert first.keys() == second.keys()
    for key in ("eval_return_mean", "eval_return_std", "env_steps", "updates", "train_episodes"):
        assert first[key] == pytest.approx(second[key], rel=1e-4 if close else 0), key
    assert semantic_config((a / "config.yaml").read_text()) == semantic_config((b / "config.yaml").read_text())


@pytest.mark.parametrize("algo", ["hasac", "hatd3"])
def test_packed_seeds_write_exactly_the_runs_of_lone_seeds(tmp_path, algo):
    """On a CPU a pack steps its lone learners in turn: the same numbers, bit for bit."""
    args = [f"algo={algo}", *SMALL, "seeds=2"]
    assert main([*args, "pack=1", f"results_dir={tmp_path / 'lone'}"]) == 0
    assert main([*args, "pack=2", f"results_dir={tmp_path / 'packed'}"]) == 0
    for lone, packed in zip(run_dirs(tmp_path / "lone", algo, [0, 1]), run_dirs(tmp_path / "packed", algo, [0, 1])):
        assert_same_runs(lone, packed)
        assert json.loads((packed / "meta.json").read_text())["status"] == "done"


def test_batched_pack_matches_lone_seeds_to_float_rounding(tmp_path):
    """pack_batched=true on a CPU: the batched update (the GPU's) through the whole harness."""
    args = ["algo=hasac", *SMALL, "seeds=2", "algo.auto_alpha=true"]
    assert main([*args, f"results_dir={tmp_path / 'lone'}"]) == 0
    assert main([*args, "pack=2", "pack_batched=true", f"results_dir={tmp_path / 'packed'}"]) == 0
    for lone, packed in zip(run_dirs(tmp_path / "lone", "hasac", [0, 1]), run_dirs(tmp_path / "packed", "hasac", [0, 1])):
        assert_same_runs(lone, packed, close=True)


def test_sigkill_then_resume_of_a_batched_pack_ends_with_the_same_numbers(tmp_path):
    args = ["algo=hasac", *SMALL, "budget=2400", "seeds=2", "pack=2", "pack_batched=true"]
    assert main([*args, f"results_dir={tmp_path / 'straight'}"]) == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "harness.run", *args, f"results_dir={killed}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dirs(killed, "hasac", [1])[0] / "eval.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and len(pd.read_csv(last)) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the pack finished before it could be killed"
    assert main([*args, f"results_dir={killed}"]) == 0
    for straight, resumed in zip(run_dirs(tmp_path / "straight", "hasac", [0, 1]), run_dirs(killed, "hasac", [0, 1])):
        assert_same_runs(straight, resumed)
        assert json.loads((resumed / "summary.json").read_text())["resumed_from"] > 0


def test_seeds_at_different_steps_train_in_turn_and_match_lone_runs(tmp_path):
    """Seed 0 stopped half way (killed) and seed 1 new: the pack trains each from where it is."""
    args = ["algo=hasac", *SMALL]
    assert main([*args, "seeds=2", f"results_dir={tmp_path / 'lone'}"]) == 0
    partial = tmp_path / "partial"
    assert main([*args, "seed=0", "budget=400", "eval_every=400", f"results_dir={partial}"]) == 0
    seed_0 = run_dirs(partial, "hasac", [0])[0]
    (seed_0 / "DONE").unlink()  # as if killed after its checkpoint at 400: resume it with the full budget
    config = seed_0 / "config.yaml"
    config.write_text(config.read_text().replace("budget: 400", "budget: 1200").replace("eval_every: 400", "eval_every: 400"))
    assert main([*args, "seeds=2", "pack=2", f"results_dir={partial}"]) == 0
    for lone, packed in zip(run_dirs(tmp_path / "lone", "hasac", [0, 1]), run_dirs(partial, "hasac", [0, 1])):
        pd.testing.assert_frame_equal(pd.read_csv(lone / "eval.csv"), pd.read_csv(packed / "eval.csv"))
    assert json.loads((run_dirs(partial, "hasac", [0])[0] / "summary.json").read_text())["resumed_from"] == 400


def test_a_diverged_seed_fails_alone_and_the_pack_goes_on(tmp_path, capsys, monkeypatch):
    from algos.hasac import Hasac

    real_update = Hasac.update

    def update(self):
        metrics = real_update(self)
        return {**metrics, "loss/critic": float("nan")} if self.generator.initial_seed() == 1 else metrics

    monkeypatch.setattr(Hasac, "update", update)
    assert main(["algo=hasac", *SMALL, "seeds=3", "pack=3", f"results_dir={tmp_path}"]) == 1
    statuses = [json.loads((d / "meta.json").read_text())["status"] for d in run_dirs(tmp_path, "hasac", [0, 1, 2])]
    assert statuses == ["done", "failed: nan", "done"]
    assert "sweep: 2 done, 1 failed: nan" in capsys.readouterr().out


@pytest.mark.parametrize("algo", ["mappo", "happo", "mehaml_kl"])
def test_pack_above_1_is_refused_for_algorithms_without_a_packed_form(tmp_path, capsys, algo):
    assert main(["env=mpe", "task=simple_spread", f"algo={algo}", "seeds=2", "pack=2", f"results_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{algo} trains one seed per process" in err and "hasac, hatd3" in err
    assert not list(tmp_path.rglob("meta.json"))


def test_qmix_and_the_expected_discrete_loss_are_refused_too(tmp_path, capsys):
    assert main(["env=matrix", "task=climbing", "algo=qmix", "seeds=2", "pack=2", f"results_dir={tmp_path}"]) == 2
    assert "qmix trains one seed per process" in capsys.readouterr().err
    assert main(["env=matrix", "task=climbing", "algo=hasac", "algo.discrete_actor_loss=expected", "seeds=2", "pack=2",
                 f"results_dir={tmp_path}"]) == 2
    assert "discrete_actor_loss=gumbel only" in capsys.readouterr().err


def test_packs_group_seeds_of_one_config_and_the_dry_run_counts_jobs(tmp_path, capsys):
    _, jobs = prepare_jobs(["algo=hasac,hatd3", *SMALL, "seeds=5", "pack=3", f"results_dir={tmp_path}"])
    units = pack_units(jobs, 3)
    assert [[(j.algo, j.path.seed) for j in unit] for unit in units] == [
        [("hasac", 0), ("hasac", 1), ("hasac", 2)], [("hasac", 3), ("hasac", 4)],
        [("hatd3", 0), ("hatd3", 1), ("hatd3", 2)], [("hatd3", 3), ("hatd3", 4)]]
    assert main(["algo=hasac,hatd3", *SMALL, "seeds=5", "pack=3", "dry_run=true", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "10 runs in 4 packed jobs (pack=3)" in out and " pack " in out.splitlines()[0]


def test_dry_run_estimates_a_pack_from_lone_runs_then_from_packed_ones(tmp_path, capsys):
    args = ["algo=hasac", *SMALL, f"results_dir={tmp_path}"]
    assert main([*args, "seed=0"]) == 0
    capsys.readouterr()
    assert main([*args, "seeds=3", "pack=2", "dry_run=true"]) == 0
    out = capsys.readouterr().out
    assert "from lone runs" in out  # seeds 1 and 2 share a job, estimated as two lone runs in a row


def test_a_slurm_array_has_one_task_per_pack(tmp_path, fake_sbatch):
    results = tmp_path / "results"
    _, jobs = prepare_jobs(["algo=hasac", *SMALL, "seeds=4", "pack=2", f"results_dir={results}"])
    outcomes = launch(SlurmLauncher(), jobs, results, "gpu", lambda outcome: None, pack=2)
    assert [o.status for o in outcomes] == ["submitted"] * 4
    assert len({o.detail for o in outcomes}) == 2  # two array tasks, each naming its job id
    assert len(list((results / ".submitit").rglob("*_submitted.pkl"))) == 2


@pytest.mark.parametrize("pending, expected", [
    ([False, True, True], ["new", "new", "new"]),  # killed while renaming: finish the renames
    ([True, True, False], ["old", "old", "old"]),  # killed while writing: drop what was written
    ([True, True, True], ["old", "old", "old"]),  # written, no rename yet: drop (still one step)
])
def test_an_interrupted_pack_checkpoint_settles_on_one_step(tmp_path, pending, expected):
    from harness.layout import RunPath
    from harness.pack import settle_checkpoints

    paths = [RunPath(tmp_path / f"seed_{k}") for k in range(3)]
    for path, has in zip(paths, pending):
        path.checkpoint.parent.mkdir(parents=True)
        path.checkpoint.write_text("old" if has else "new")  # a seed without a pending file was renamed, or not written yet
        if has:
            path.pending_checkpoint.write_text("new")
    if pending == [True, True, False]:
        paths[2].checkpoint.write_text("old")
    settle_checkpoints(paths)
    assert [p.checkpoint.read_text() for p in paths] == expected
    assert not any(p.pending_checkpoint.exists() for p in paths)


@pytest.mark.slow
def test_batched_pack_final_returns_are_indistinguishable_from_lone_runs(tmp_path):
    """5 seeds of HASAC on simple_spread (40k env steps, smaller networks), lone and as one
    batched pack: the final evaluation returns pass Welch's t-test (p > 0.05), and both
    learned (their mean beats the first evaluation's)."""
    from scipy.stats import ttest_ind

    args = ["env=mpe", "task=simple_spread", "algo=hasac", "seeds=5", "budget=40000", "eval_every=10000",
            "eval_episodes=20", "n_envs=8", "progress=false", "algo.hidden_sizes=[64,64]", "algo.batch_size=256",
            "algo.warmup_steps=5000"]
    assert main([*args, f"results_dir={tmp_path / 'lone'}"]) == 0
    assert main([*args, "pack=5", "pack_batched=true", f"results_dir={tmp_path / 'packed'}"]) == 0
    finals = {}
    for name in ("lone", "packed"):
        evals = [pd.read_csv(d / "eval.csv") for d in run_dirs(tmp_path / name, "hasac", range(5))]
        finals[name] = [e["eval_return_mean"].iloc[-1] for e in evals]
        assert sum(finals[name]) / 5 > sum(e["eval_return_mean"].iloc[0] for e in evals) / 5
    assert ttest_ind(finals["lone"], finals["packed"], equal_var=False).pvalue > 0.05, finals
