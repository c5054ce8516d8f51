"""The harness as users drive it: suites, sweeps, launchers, exact resume, locks, failures."""

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from algos.common.registry import ALGORITHMS
from envs import FAMILIES
from envs.smac.tasks import sc2_installed
from envs.errors import ConfigError
from harness.launch import available_profiles, launch
from harness.settings import SlurmLauncher
from harness.config import load_settings
from harness.layout import RunPath
from harness.records import RunLocked, RunRecord
from harness.run import main
from harness.suites import available_suites, load_suite
from harness.sweep import expand, prepare_jobs

GOLDEN = Path(__file__).parent / "golden"
FAST = ["progress=false", "n_envs=4", "eval_n_envs=2", "eval_episodes=4"]
MATRIX = ["env=matrix", "task=climbing", "budget=40", "eval_every=20", *FAST]
# HASAC small enough to update within a few hundred steps
SMALL_HASAC = ["algo=hasac", "algo.warmup_steps=200", "algo.train_every=100", "algo.updates_per_train=2",
               "algo.batch_size=32", "algo.hidden_sizes=[32,32]"]


def test_every_suite_and_algorithm_composes():
    """Each suite run composes (with `random`), and each registered algorithm composes on
    one run of every implemented family; runs of families this version does not have fail
    with the one-line unknown-env error, nothing else."""
    assert {"smoke", "quick", "full", "paper_mpe", "paper_mamujoco", "paper_smac", "paper_smacv2",
            "paper_football", "paper_lag", "paper_dexhands"} <= set(available_suites())
    one_per_family = {}
    for suite in available_suites():
        runs = load_suite(suite)["runs"]
        assert runs, suite
        for run in runs if suite != "adhoc" else []:
            overrides = [f"{k}={run[k]}" for k in ("env", "task", "budget", "eval_every") if k in run]
            overrides += [str(o) for o in run.get("overrides", [])]
            if run["env"] in FAMILIES:
                settings, cfg = load_settings([*overrides, "algo=random", f"suite={suite}"])
                assert settings.budget == run["budget"] and cfg.suite == suite
                settings.validate()
                one_per_family.setdefault(run["env"], overrides)
            else:
                with pytest.raises(ConfigError, match=f"unknown env '{run['env']}'"):
                    load_settings([*overrides, "algo=random"])
    assert set(one_per_family) == set(FAMILIES) - {"matrix"} or set(one_per_family) == set(FAMILIES)
    for overrides in one_per_family.values():
        for algo in ALGORITHMS:
            settings, _ = load_settings([*overrides, f"algo={algo}"])
            assert settings.algo == algo


def test_full_suite_holds_every_paper_suite():
    full = {(r["env"], r["task"], r.get("variant")) for r in load_suite("full")["runs"]}
    parts = {(r["env"], r["task"], r.get("variant"))
             for s in available_suites() if s.startswith("paper_") for r in load_suite(s)["runs"]}
    assert full == parts and len({env for env, _, _ in full}) == 7  # six families + SMACv2


def test_sweep_expands_tasks_algos_seeds_into_paths(tmp_path):
    base, jobs, _ = prepare_jobs(["suite=smoke", "algo=hasac,hatd3", "seeds=2", f"results_dir={tmp_path}"])
    entries = load_suite("smoke")["runs"]
    assert len(jobs) == len(entries) * 2 * 2
    dirs = {str(j.path.dir.relative_to(tmp_path)) for j in jobs}
    assert "smoke/mpe/simple_spread/hasac/seed_1" in dirs
    assert "smoke/mpe/simple_spread-discrete/hatd3/seed_0" in dirs
    assert "smoke/mamujoco/HalfCheetah-2x3/hatd3/seed_1" in dirs
    discrete_hatd3 = [j for j in jobs if j.algo == "hatd3" and j.family == "matrix"]
    assert discrete_hatd3 and not any(j.runnable for j in discrete_hatd3)
    assert all(j.runnable for j in jobs if j.algo == "hasac")
    assert all(j.state == "new" for j in jobs)
    # the suite's per-algorithm schedule and budgets reach the composed job
    hasac_cheetah = next(j for j in jobs if j.algo == "hasac" and j.family == "mamujoco")
    assert "algo.warmup_steps=200" in hasac_cheetah.overrides and hasac_cheetah.budget == 1000


def test_seed_alone_is_one_run_and_suite_defaults_pick_algos(tmp_path):
    _, one = expand(["env=matrix", "task=climbing", "seed=7"])
    assert len(one) == 1 and "seed=7" in one[0]
    _, smoke = expand(["suite=smoke"])
    algos = {o for job in smoke for o in job if o.startswith("algo=")}
    assert algos == {f"algo={a}" for a in load_suite("smoke")["algos"] if a in ALGORITHMS}


def test_fields_of_a_swept_algo_group_reach_every_job(tmp_path):
    # algo.alpha is no field of the default algorithm (random); it must still reach each job
    _, jobs, _ = prepare_jobs([*MATRIX, "algo=hasac,mehaml_kl", "algo.alpha=0.3", f"results_dir={tmp_path}"])
    assert sorted(j.algo for j in jobs) == ["hasac", "mehaml_kl"]
    assert all("alpha: 0.3" in j.config_yaml for j in jobs)
    # a suite's own algorithms: the field must fit each of them, and the error names the one it does not
    with pytest.raises(ConfigError, match="'alpha' not in 'HappoConfig'"):
        prepare_jobs(["suite=monotonic_matrix", "algo.alpha=0.3", f"results_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="not_a_field"):
        prepare_jobs([*MATRIX, "algo=hasac,mehaml_kl", "algo.not_a_field=1", f"results_dir={tmp_path}"])


def test_dry_run_prints_the_table_and_launches_nothing(tmp_path, capsys):
    assert main(["suite=smoke", "algo=hasac", "seeds=2", "dry_run=true", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert f"{2 * len(load_suite('smoke')['runs'])} jobs: {2 * len(load_suite('smoke')['runs'])} runnable here" in out
    assert "CPU-hours" in out and "GPU-hours" in out
    assert re.search(r"^mpe/simple_spread hasac +s0-1 +1,000 +new ", out, re.M)
    assert not tmp_path.exists() or not list(tmp_path.rglob("meta.json"))


def test_local_sweep_runs_each_seed_and_reruns_skip(tmp_path, capsys):
    assert main([*MATRIX, "algo=random,hasac", "seeds=2", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "sweep: 4 done" in out
    assert len(list(tmp_path.rglob("DONE"))) == 4
    assert main([*MATRIX, "algo=random,hasac", "seeds=2", f"results_dir={tmp_path}"]) == 0
    assert "sweep: 4 skipped" in capsys.readouterr().out


def test_local_launcher_runs_jobs_in_parallel_processes(tmp_path, capsys):
    assert main([*MATRIX, "algo=random", "seeds=2", "launcher.n_jobs=2", f"results_dir={tmp_path}"]) == 0
    assert "sweep: 2 done" in capsys.readouterr().out
    hosts = [json.loads(p.read_text())["status"] for p in tmp_path.rglob("meta.json")]
    assert hosts == ["done", "done"]


def test_submitit_local_runs_a_two_job_sweep(tmp_path, capsys):
    assert main([*MATRIX, "algo=random", "seeds=2", "launcher=submitit_local", f"results_dir={tmp_path}"]) == 0
    assert "sweep: 2 done" in capsys.readouterr().out
    for seed in (0, 1):
        run = tmp_path / "adhoc" / "matrix" / "climbing" / "random" / f"seed_{seed}"
        assert (run / "DONE").exists() and (run / "summary.json").exists()
    assert list((tmp_path / ".submitit").rglob("*_log.out")), "submitit logs are kept"


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_sbatch_file_of_a_submitted_array_matches_golden_file(tmp_path, fake_sbatch, capsys, profile):
    """The real submission path (launch → Submitit's SlurmExecutor, one job array) with a
    stand-in for the cluster's `sbatch` command, which prints what sbatch prints; the sbatch
    file Submitit wrote, with this machine's paths replaced, is the golden file."""
    assert profile in available_profiles()
    results = tmp_path / "results"
    _, jobs, _ = prepare_jobs([*MATRIX, "algo=random", "seeds=2", f"results_dir={results}"])
    outcomes = launch(SlurmLauncher(), jobs, results, profile, lambda outcome: None)
    assert [o.status for o in outcomes] == ["submitted", "submitted"] and "SLURM array 4242" in capsys.readouterr().out
    [script] = (results / ".submitit").rglob("*_submission.sh")
    text = script.read_text().replace(str(results), "/results").replace(sys.executable, "python")
    golden = GOLDEN / f"sbatch_{profile}.sh"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_an_unknown_cluster_profile_key_is_one_line(tmp_path, capsys, fake_sbatch):
    profile = tmp_path / "mine.yaml"
    profile.write_text("partition: gpu\nmem_gb: 8\n")
    assert main([*MATRIX, "algo=random", "launcher=slurm", f"cluster={profile}", f"results_dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Unavailable parameter(s): ['mem_gb']" in err


def test_launcher_slurm_without_slurm_commands_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """A machine without SLURM (no srun, no sbatch on PATH): one line naming both, exit 2,
    no results directory."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    root = tmp_path / "r"
    assert main([*MATRIX, "algo=random", "launcher=slurm", "cluster=cpu", f"results_dir={root}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "srun and sbatch not found" in err
    assert not root.exists()


def test_sigkill_then_resume_ends_with_the_same_numbers(tmp_path):
    """A run killed (SIGKILL) mid-training and resumed from its checkpoint ends with the
    same eval.csv and final numbers as an uninterrupted run (CPU)."""
    args = ["env=mpe", "task=simple_spread", *SMALL_HASAC, "budget=6000", "eval_every=600", *FAST]
    assert main([*args, f"results_dir={tmp_path / 'straight'}"]) == 0
    killed_root = tmp_path / "killed"
    run = killed_root / "adhoc" / "mpe" / "simple_spread" / "hasac" / "seed_0"
    proc = subprocess.Popen([sys.executable, "-m", "harness.run", *args, f"results_dir={killed_root}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        evals = run / "eval.csv"
        if evals.exists() and len(pd.read_csv(evals)) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    assert json.loads((run / "meta.json").read_text())["status"] == "running"
    assert main([*args, f"results_dir={killed_root}"]) == 0
    straight = tmp_path / "straight" / "adhoc" / "mpe" / "simple_spread" / "hasac" / "seed_0"
    pd.testing.assert_frame_equal(pd.read_csv(straight / "eval.csv"), pd.read_csv(run / "eval.csv"))
    first, second = (json.loads((d / "summary.json").read_text()) for d in (straight, run))
    for key in ("eval_return_mean", "eval_return_std", "env_steps", "updates", "train_episodes"):
        assert first[key] == second[key], key
    assert second["resumed_from"] > 0
    train_a, train_b = pd.read_csv(straight / "train.csv"), pd.read_csv(run / "train.csv")
    same = [c for c in train_a.columns if c != "perf/sps"]
    pd.testing.assert_frame_equal(train_a[same], train_b[same])
    assert json.loads((run / "meta.json").read_text())["resumed"][0]["env_steps"] > 0


def test_a_second_process_on_the_same_run_is_refused(tmp_path, capsys):
    run = tmp_path / "adhoc" / "matrix" / "climbing" / "random" / "seed_0"
    holder = RunRecord(RunPath(run))
    holder.lock()
    try:
        assert main([*MATRIX, "algo=random", f"results_dir={tmp_path}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "in use by pid" in err
    finally:
        holder.unlock()
    assert main([*MATRIX, "algo=random", f"results_dir={tmp_path}"]) == 0


def test_a_refused_process_names_a_holder_that_writes_its_line_late(tmp_path):
    """The holder truncates the lock file and writes its line just after flock; a process
    refused in between still names it (a SLURM CI run once read the empty file)."""
    run = RunPath(tmp_path / "run")
    run.dir.mkdir(parents=True)
    with open(run.lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        late = threading.Timer(0.3, lambda: (handle.write("pid 4242 on elsewhere since now\n"), handle.flush()))
        late.start()
        with pytest.raises(RunLocked, match="in use by pid 4242 on elsewhere"):
            RunRecord(run).lock()
        late.join()


def test_a_sweep_in_this_process_passes_a_busy_run_and_trains_the_others(tmp_path, capsys):
    """Two sweeps over one results directory (launcher.n_jobs=1 trains in the sweep's own
    process): a run the other one holds is reported busy, not an end of the sweep."""
    busy = tmp_path / "adhoc" / "matrix" / "climbing" / "random" / "seed_0"
    holder = RunRecord(RunPath(busy))
    holder.lock()
    try:
        assert main([*MATRIX, "algo=random", "seeds=2", f"results_dir={tmp_path}"]) == 0
    finally:
        holder.unlock()
    out = capsys.readouterr().out
    assert "busy" in out and "in use by pid" in out and "1 done" in out
    assert (busy.parent / "seed_1" / "DONE").exists() and not (busy / "DONE").exists()


def test_failing_job_is_reported_and_exit_is_nonzero(tmp_path, capsys, monkeypatch):
    import harness.train

    calls = {"n": 0}
    real_evaluate = harness.train.evaluate

    def evaluate_failing_for_seed_1(algo, env, episodes, seed):
        if seed % 1_000_003 == 1:
            raise RuntimeError("simulated crash")
        return real_evaluate(algo, env, episodes, seed)

    monkeypatch.setattr(harness.train, "evaluate", evaluate_failing_for_seed_1)
    assert main([*MATRIX, "algo=random", "seeds=2", f"results_dir={tmp_path}"]) == 1
    out = capsys.readouterr().out
    assert "1 done" in out and "1 failed" in out and "error.txt" in out
    failed = tmp_path / "adhoc" / "matrix" / "climbing" / "random" / "seed_1"
    assert json.loads((failed / "meta.json").read_text())["status"] == "failed"
    assert "simulated crash" in (failed / "error.txt").read_text()
    assert not (failed / "DONE").exists()


def test_non_finite_loss_stops_the_run_as_failed_nan(tmp_path, capsys, monkeypatch):
    from algos.hasac import Hasac

    monkeypatch.setattr(Hasac, "update", lambda self: {"loss/critic": float("nan")})
    assert main([*MATRIX, *SMALL_HASAC, "budget=400", "eval_every=200", f"results_dir={tmp_path}"]) == 1
    run = tmp_path / "adhoc" / "matrix" / "climbing" / "hasac" / "seed_0"
    assert json.loads((run / "meta.json").read_text())["status"] == "failed: nan"
    assert "failed: nan" in capsys.readouterr().out


def test_stale_running_run_is_reported_and_resumed(tmp_path, capsys):
    args = [*MATRIX, "algo=random", f"results_dir={tmp_path}"]
    run = tmp_path / "adhoc" / "matrix" / "climbing" / "random" / "seed_0"
    assert main(args) == 0
    (run / "DONE").unlink()
    meta = json.loads((run / "meta.json").read_text())
    meta.update(status="running", heartbeat="2020-01-01T00:00:00+00:00")
    (run / "meta.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "stale:" in out and str(run) in out
    assert json.loads((run / "meta.json").read_text())["status"] == "done"


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["suite=nope"], "unknown suite 'nope'; valid: "),
        (["launcher=nope"], "unknown launcher 'nope'; valid: "),
        (["launcher=slurm", "cluster=nope"], "unknown cluster profile 'nope'"),
        (["launcher=slurm"], "launcher=slurm needs cluster=<profile>"),
        (["algo=hasac,nope"], "unknown algo 'nope'"),
        (["seeds=0"], "seeds must be >= 1"),
        (["seeds=2", "seed=3"], "not both"),
        (["budget=10", "eval_every=20"], "smaller than one evaluation interval"),
        (["algo=hatd3"], "hatd3 needs Box actions"),
    ],
)
def test_bad_sweep_input_exits_2_with_one_line(tmp_path, capsys, overrides, fragment):
    root = tmp_path / "results"
    assert main(["env=matrix", "task=climbing", "budget=40", "eval_every=20", *overrides,
                 f"results_dir={root}", "progress=false"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert fragment in err
    assert not root.exists()


def test_corrupt_checkpoint_and_changed_config_are_refused_and_nothing_is_lost(tmp_path, capsys):
    args = [*MATRIX, "algo=random", f"results_dir={tmp_path}"]
    run = tmp_path / "adhoc" / "matrix" / "climbing" / "random" / "seed_0"
    assert main(args) == 0
    (run / "DONE").unlink()
    checkpoint = run / "checkpoints" / "latest.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(args) == 2
    assert "corrupt" in capsys.readouterr().err
    assert main([*args[:-1], "budget=60", f"results_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "written by a different config (budget: 40 -> 60)" in err and err.count("\n") == 1
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_config_written_before_a_field_existed_matches_the_value_it_ran_with(tmp_path):
    """ADDED_FIELDS: a HASAC config.yaml from before `use_valuenorm` existed is the same run
    as use_valuenorm=false (the code had no ValueNorm then), not as use_valuenorm=true; a
    GRU run from before `recurrent_critic` had the MLP critic."""
    import yaml
    from harness.config import check_same_config
    from harness.layout import RunPath

    path = RunPath.build(str(tmp_path), "adhoc", "smac", "3m", "hasac", 0)
    path.config.parent.mkdir(parents=True)
    old = {"budget": 100, "algo": {"batch_size": 1000, "use_huber": True}}
    path.config.write_text(yaml.safe_dump(old))
    check_same_config(path, yaml.safe_dump({**old, "algo": {**old["algo"], "use_valuenorm": False}}))
    with pytest.raises(ConfigError, match=r"algo.use_valuenorm: False -> True"):
        check_same_config(path, yaml.safe_dump({**old, "algo": {**old["algo"], "use_valuenorm": True}}))
    # an on-policy run with GRU actors had an MLP critic: the new default is a different run
    gru = {"budget": 100, "algo": {"use_recurrent_policy": True}}
    path.config.write_text(yaml.safe_dump(gru))
    check_same_config(path, yaml.safe_dump({**gru, "algo": {**gru["algo"], "recurrent_critic": "mlp"}}))
    with pytest.raises(ConfigError, match=r"algo.recurrent_critic: 'mlp' -> 'official'"):
        check_same_config(path, yaml.safe_dump({**gru, "algo": {**gru["algo"], "recurrent_critic": "official"}}))
    # SMAC before HARL's observation extras: smacv2's observation alone on sc2, SMAX's on smax
    for backend, then, now in (("sc2", ("none", "smacv2"), "official"), ("smax", ("official", "official"), "none")):
        smac = {"budget": 100, "env": {"family": "smac", "backend": backend}}
        path.config.write_text(yaml.safe_dump(smac))
        same = {"obs_extras": then[0], "state_type": then[1], "harl_obs": False, "harl_state": False}
        check_same_config(path, yaml.safe_dump({**smac, "env": {**smac["env"], **same}}))
        with pytest.raises(ConfigError, match=rf"env.obs_extras: '{then[0]}' -> '{now}'"):
            check_same_config(path, yaml.safe_dump({**smac, "env": {**smac["env"], **same, "obs_extras": now}}))


def test_foreign_checkpoint_is_refused_with_exit_2(tmp_path, capsys):
    import torch

    args = [*MATRIX, "algo=random", f"results_dir={tmp_path}"]
    run = tmp_path / "adhoc" / "matrix" / "climbing" / "random" / "seed_0"
    assert main(args) == 0
    (run / "DONE").unlink()
    torch.save({"weights": 1}, run / "checkpoints" / "latest.pt")
    capsys.readouterr()
    assert main(args) == 2
    assert "not written by hasac-bench" in capsys.readouterr().err


def test_dry_run_lists_jobs_whose_simulator_is_missing(tmp_path, capsys):
    """Without Isaac Gym the dexhands jobs are listed as needing it (exit 0); a real run
    of the same suite has nothing it can run and refuses in one line."""
    assert main(["suite=paper_dexhands", "algo=hasac", "dry_run=true", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert out.count(" no simulator ") == 9 and "9 jobs: 0 runnable here, 9 need a simulator not installed here" in out
    # each reason once, with the jobs it covers (Over's names its Isaac Lab port too)
    reasons = re.findall(r"^  no simulator: (env=dexhands needs NVIDIA Isaac Gym.*)\n +(\d+) jobs?: ", out, re.M)
    assert len({reason for reason, _ in reasons}) == len(reasons) and sum(int(n) for _, n in reasons) == 9
    assert main(["suite=paper_dexhands", "algo=hasac", f"results_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no job of this sweep can run here: env=dexhands needs")


def test_load_policy_restores_the_weights_a_run_trained(tmp_path):
    import torch

    from algos.common.registry import algorithm_class
    from harness.checkpoint import load_checkpoint
    from harness.policy import load_policy

    assert main([*MATRIX, *SMALL_HASAC, "budget=400", "eval_every=200", f"results_dir={tmp_path}"]) == 0
    path = RunPath(tmp_path / "adhoc" / "matrix" / "climbing" / "hasac" / "seed_0")
    algo = load_policy(path)
    saved = load_checkpoint(path.checkpoint)["algo"]
    fresh = algorithm_class("hasac")(algo.spec, algo.config, 4, torch.device("cpu"), 0)
    loaded, untrained = algo.state_dict(), fresh.state_dict()
    assert all(torch.equal(a, b) for a, b in zip(loaded["actors"].values(), saved["actors"].values()))
    assert not all(torch.equal(a, b) for a, b in zip(loaded["actors"].values(), untrained["actors"].values()))


HEADLINE = {"full": ["algo=hasac,hatd3", "seeds=10"]}
"""Extra arguments per suite: the README's first command for the full suite."""


@pytest.mark.parametrize("suite", available_suites())
def test_every_shipped_suite_dry_runs_to_a_job_table(suite, tmp_path, capfd):
    """Whatever is installed, a suite's dry run classifies every job and exits 0 with the
    table, the counts, and the estimate; simulators print nothing on the terminal."""
    assert main([f"suite={suite}", *HEADLINE.get(suite, []), "dry_run=true", f"results_dir={tmp_path}"]) == 0
    out, err = capfd.readouterr()
    assert err == ""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("job "))
    count = next(line for line in lines if re.match(r"\d+ jobs?: \d+ runnable here", line))
    total = int(count.split()[0])
    assert total >= len(load_suite(suite)["runs"]) and header == 0
    assert any(line.startswith("estimate for the ") and "CPU-hours" in line and "GPU-hours" in line for line in lines)
    assert not tmp_path.exists() or not any(tmp_path.rglob("*.*"))  # a dry run writes nothing


def test_a_sweep_trains_what_can_run_here_and_lists_the_rest(tmp_path, capsys):
    assert main([*MATRIX, "algo=random,hatd3", "seeds=2", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "done         matrix/climbing random s0-1" in out
    assert "sweep: 2 done, 2 not runnable here" in out
    assert "not runnable here (2 jobs):\n  n/a: hatd3 cannot act in discrete action spaces (it supports: box)\n" \
           "      2 jobs: matrix/climbing × hatd3 s0-1" in out
    assert not (tmp_path / "adhoc" / "matrix" / "climbing" / "hatd3").exists()


def test_a_task_the_simulator_here_cannot_run_is_listed_in_a_sweep_and_an_error_alone(tmp_path, capsys):
    """MMM2 and corridor on SMAX (no jaxmarl needed: refused before the simulator loads)."""
    root = tmp_path / "results"
    sweep = ["env=smac", "task=MMM2,corridor", "env.backend=smax", "algo=random,hasac", f"results_dir={root}"]
    assert main([*sweep, "dry_run=true"]) == 0
    out = capsys.readouterr().out
    assert "4 jobs: 0 runnable here, 4 cannot run on the simulator installed here" in out
    assert out.count("the task needs StarCraft II") == 1
    assert "4 jobs: smac/MMM2@smax, smac/corridor@smax × random, hasac s0" in out
    assert main(sweep) == 2  # nothing of it can run here
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no job of this sweep can run here: the task needs StarCraft II" in err
    for backend in (["env.backend=smax"], []):  # pinned, or chosen automatically on a machine without StarCraft II
        if not backend and sc2_installed():
            continue
        assert main(["env=smac", "task=MMM2", "algo=random", *backend, f"results_dir={root}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: the task needs StarCraft II: SMAX has no medivacs")
    assert not root.exists()


def test_a_run_keeps_what_the_simulator_prints_in_its_sim_log(tmp_path, monkeypatch, capfd):
    import envs

    real_make = envs.make

    def talkative_make(*args, **kwargs):
        print("engine: deprecated attribute")
        return real_make(*args, **kwargs)

    monkeypatch.setattr(envs, "make", talkative_make)
    assert main([*MATRIX, "algo=random", "seeds=2", f"results_dir={tmp_path}"]) == 0
    out, err = capfd.readouterr()
    assert "engine:" not in out + err
    for seed in (0, 1):
        # the run's own two builds (training and evaluation copies)
        log = tmp_path / "adhoc" / "matrix" / "climbing" / "random" / f"seed_{seed}" / "sim.log"
        assert log.read_text().count("engine: deprecated attribute") == 2
    assert "engine: deprecated attribute" in (tmp_path / "adhoc" / "sweep.log").read_text()  # the sweep's check


def test_seeds_share_one_composition_and_get_the_config_composing_would_give():
    from harness.sweep import Composer

    composer = Composer()
    base = ["env=mpe", "task=simple_spread", "algo=hasac", "suite=quick"]
    first, _, _ = composer([*base, "seed=0"])
    for seed in (1, 7):
        settings, cfg, config_yaml = composer([*base, f"seed={seed}"])
        expected, expected_cfg = load_settings([*base, f"seed={seed}"])
        assert config_yaml == OmegaConf.to_yaml(cfg) == OmegaConf.to_yaml(expected_cfg) and settings == expected
        assert settings.algo_config is not first.algo_config  # copies: a job cannot change another's config


def test_every_registered_name_has_its_config_group_file():
    from harness.config import CONF_DIR, GROUP_OPTIONS

    for group, options in GROUP_OPTIONS.items():
        assert {p.stem for p in (CONF_DIR / group).glob("*.yaml")} == set(options()), group
