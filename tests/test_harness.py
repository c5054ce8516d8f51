"""`python -m harness.run`: the results layout, re-runs, and one-line errors for bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envs.errors import ConfigError
from harness.checkpoint import load_checkpoint, save_checkpoint
from harness.run import main

FAST = ["progress=false", "n_envs=4", "eval_n_envs=2", "eval_episodes=4"]
MATRIX = ["env=matrix", "task=climbing", "algo=random", "budget=40", "eval_every=20", *FAST]
RESULT_FILES = ["config.yaml", "meta.json", "train.csv", "eval.csv", "summary.json", "checkpoints/latest.pt", "DONE"]


def run_dir(root: Path, task="climbing", algo="random", seed=0, family="matrix") -> Path:
    return root / "adhoc" / family / task / algo / f"seed_{seed}"


def test_run_command_writes_every_results_file(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "harness.run", *MATRIX, f"results_dir={tmp_path}"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = run_dir(tmp_path)
    for name in RESULT_FILES:
        assert (out / name).is_file(), name
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "done" and meta["end"] is not None
    assert set(meta["git"]) == {"commit", "dirty"}
    assert meta["packages"]["torch"].startswith("2.13.0")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 40 and summary["eval_episodes"] == 4
    assert len(summary["policy_probs"]) == 2 and sum(summary["policy_probs"][0]) == pytest.approx(1.0)
    evals = pd.read_csv(out / "eval.csv")
    assert evals["env_steps"].tolist() == [0, 20, 40]
    assert "task: climbing" in (out / "config.yaml").read_text()
    assert not list(out.rglob("*.tmp")), "temp files left behind"


def test_same_seed_gives_identical_results_and_rerun_skips(tmp_path, capsys):
    assert main([*MATRIX, f"results_dir={tmp_path / 'a'}"]) == 0
    assert main([*MATRIX, f"results_dir={tmp_path / 'b'}"]) == 0
    first = pd.read_csv(run_dir(tmp_path / "a") / "eval.csv")
    second = pd.read_csv(run_dir(tmp_path / "b") / "eval.csv")
    pd.testing.assert_frame_equal(first, second)
    done_before = (run_dir(tmp_path / "a") / "DONE").read_text()
    capsys.readouterr()
    assert main([*MATRIX, f"results_dir={tmp_path / 'a'}"]) == 0
    assert "skip" in capsys.readouterr().out
    assert (run_dir(tmp_path / "a") / "DONE").read_text() == done_before


def test_runs_record_their_fidelity_switches_in_config_and_summary(tmp_path):
    """{} = the official behaviour; otherwise every switch away from it, algo and env alike."""
    assert main([*MATRIX, f"results_dir={tmp_path}"]) == 0
    official = run_dir(tmp_path)
    assert json.loads((official / "summary.json").read_text())["fidelity"] == {}
    assert "fidelity: {}" in (official / "config.yaml").read_text()
    switched = [*MATRIX, "algo=hasac", "algo.episode_end_avail=final", f"results_dir={tmp_path}"]
    assert main(switched) == 0
    summary = json.loads((run_dir(tmp_path, algo="hasac") / "summary.json").read_text())
    assert summary["fidelity"] == {"algo.episode_end_avail": "final"}
    from harness.config import load_settings
    _, cfg = load_settings(["env=mpe", "task=simple_spread", "algo=hasac", "env.reward=mpe2", "algo.box_action=affine"])
    assert dict(cfg.fidelity) == {"algo.box_action": "affine", "env.reward": "mpe2"}


def test_tuned_env_values_are_the_official_setting_where_they_apply():
    """harness/tuned/<algo>.yaml `env:` values (HARL's per-file env_args, PyMARL's SMAC
    inputs for QMIX) are applied where the switch has an effect (sc2, not SMAX), the command
    line still wins, and a run records a deviation only against them."""
    from harness.config import load_settings

    def resolved(*overrides):
        settings, cfg = load_settings(["env=smac", *overrides])
        return {k: settings.env_fields[k] for k in ("obs_extras", "state_type")}, dict(cfg.fidelity)

    official = {"obs_extras": "official", "state_type": "official"}
    # HAPPO: HARL's EP state on 25m (its tuned file), its default FP state on 5m_vs_6m
    assert resolved("algo=happo", "task=25m", "env.backend=sc2") == ({**official, "state_type": "ep"}, {})
    assert resolved("algo=happo", "task=5m_vs_6m", "env.backend=sc2") == (official, {})
    assert resolved("algo=happo", "task=25m", "env.backend=sc2", "env.state_type=official") == (
        official, {"env.state_type": "official"})  # FP where HARL's file says EP: a deviation
    # QMIX: SMAC's own observation and state on every map ("smac/*")
    assert resolved("algo=qmix", "task=8m", "env.backend=sc2") == ({"obs_extras": "none", "state_type": "smacv2"}, {})
    assert resolved("algo=qmix", "task=8m", "env.backend=sc2", "env.obs_extras=official") == (
        {"obs_extras": "official", "state_type": "smacv2"}, {"env.obs_extras": "official"})
    # SMAX: the switches have no effect, so the tuned values are not applied (nor refused)
    assert resolved("algo=qmix", "task=3m", "env.backend=smax") == (official, {})
    assert resolved("algo=happo", "task=25m", "env.backend=smax") == (official, {})
    # tuned=false: no tuned value at all, and "official" is the reference again
    settings, cfg = load_settings(["env=smac", "algo=happo", "task=25m", "env.backend=sc2", "tuned=false"])
    assert settings.env_fields["state_type"] == "official" and dict(cfg.fidelity) == {}
    assert settings.algo_config.hidden_sizes != [64, 64, 64]


def test_every_tuned_env_value_is_a_valid_switch_value_where_it_applies():
    """A typo in a tuned table's `env:` (a field that is no switch, a value it does not
    take) must fail here, not be dropped silently."""
    import yaml

    from envs import family_module, make_config
    from envs.fidelity import check_switches
    from harness.config import TUNED_DIR, official_env_values

    checked = 0
    for path in sorted(TUNED_DIR.glob("*.yaml")):
        for key, entry in (yaml.safe_load(path.read_text()) or {}).items():
            if "env" not in entry:
                continue
            family, task = key.split("/")
            for task in family_module(family).TASKS if task == "*" else [task]:
                values = official_env_values(path.stem, family, task, {"backend": "sc2"})
                assert values == entry["env"], (path.name, key)  # SMAC v1 maps: every value applies on sc2
                check_switches(make_config(family, backend="sc2", **values), "env", family, task)
                assert official_env_values(path.stem, family, task, {"backend": "smax"}) == {}
                checked += 1
    assert checked >= 4 + len(family_module("smac").TASKS)  # HAPPO's four EP maps, QMIX's every map


def test_seed_changes_the_results(tmp_path):
    assert main([*MATRIX, "seed=1", f"results_dir={tmp_path}"]) == 0
    assert main([*MATRIX, "seed=2", f"results_dir={tmp_path}"]) == 0
    one = pd.read_csv(run_dir(tmp_path, seed=1) / "eval.csv")["eval_return_mean"]
    two = pd.read_csv(run_dir(tmp_path, seed=2) / "eval.csv")["eval_return_mean"]
    assert not one.equals(two)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["algo=nope"], "unknown algo 'nope'; valid: "),
        (["env=nope"], "unknown env 'nope'; valid: "),
        (["env=matrix", "task=nope"], "valid tasks: climbing, penalty, custom"),
        (["env=matrix", "task=custom", "env.payoff=[[1,0],[0]]"], "rectangular"),
        (["env=matrix", "task=custom", "env.payoff=[1,0]"], "one axis per agent"),
        (["env=matrix", "task=custom"], "needs env.payoff"),
        (["env=matrix", "task=climbing", "budget=-5"], "budget must be a positive integer"),
        (["env=matrix", "task=climbing", "eval_episodes=0"], "eval_episodes must be a positive integer"),
        (["env=matrix", "task=climbing", "env.nope=1"], "Could not override 'env.nope'"),
        (["env=matrix", "task=climbing", "algo.nope=1"], "Could not override 'algo.nope'"),
        (["env=matrix", "task=climbing", "seed=abc"], "could not be converted to Integer"),
        (["env=matrix", "task=climbing", "device=tpu"], "device must be"),
        (["env=matrix", "task=climbing", "seed=-3"], "seed must be an integer in [0, 2**31), got -3"),
        (["env=matrix", "task=climbing", "algo=hasac", "algo.box_action=clip"], "algo.box_action must be one of official, affine"),
        (["env=matrix", "task=climbing", "algo=hasac", "algo.box_action=affine"],
         "algo.box_action=affine does not apply here: it only affects Box action spaces"),
        (["env=mpe", "task=simple_reference", "env.reward=mpe2"], "env.reward=mpe2 does not apply here"),
        (["env=mpe", "task=simple_spread", "env.physics=verlet"], "env.physics must be one of official, mpe2"),
        (["env=matrix", "task=climbing", "algo=hatd3", "algo.box_action=affine"], "Could not override 'algo.box_action'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, overrides, fragment):
    root = tmp_path / "results"
    assert main([*overrides, f"results_dir={root}", "progress=false"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert fragment in err
    assert not root.exists()


@pytest.mark.parametrize("results_dir", ["/proc/hasac-results", "{tmp}/a_file/results"])
def test_unwritable_results_dir_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, results_dir):
    (tmp_path / "a_file").write_text("not a directory")
    before = sorted(tmp_path.rglob("*"))
    assert main([*MATRIX, f"results_dir={results_dir.format(tmp=tmp_path)}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: results_dir=") and "cannot be written" in err, err
    assert sorted(tmp_path.rglob("*")) == before


def test_cli_exit_status_is_2_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "harness.run", "algo=nope", f"results_dir={tmp_path}"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_corrupt_or_foreign_checkpoint_is_a_config_error(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"algo": {"x": 1}, "env_steps": 5})
    assert load_checkpoint(good)["env_steps"] == 5
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[:50])
    with pytest.raises(ConfigError, match="corrupt"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    import torch

    torch.save({"weights": 1}, foreign)
    with pytest.raises(ConfigError, match="not written by hasac-bench"):
        load_checkpoint(foreign)


def test_missing_simulator_exits_2_naming_the_extra(tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "mpe2" or m.startswith("mpe2.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mpe2", None)  # import mpe2 now raises ImportError
    assert main(["env=mpe", "task=simple_spread", f"results_dir={tmp_path}", "progress=false"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'hasac-bench[mpe]'" in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "overrides, task_dir",
    [
        (["env=mpe", "task=simple_spread", "env.continuous_actions=false"], "simple_spread-discrete"),
        (["env=mamujoco", "task=HalfCheetah-2x3", "env.episode_limit=50", "env.obs_mode=local"], "HalfCheetah-2x3-local"),
    ],
)
def test_run_command_trains_random_on_simulated_families(tmp_path, overrides, task_dir):
    assert main([*overrides, "algo=random", "budget=200", "eval_every=100", f"results_dir={tmp_path}", *FAST]) == 0
    family = overrides[0].split("=")[1]
    out = run_dir(tmp_path, task=task_dir, family=family)  # the fields that change the spaces label the path
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 200 and summary["eval_episodes"] == 4
    assert "policy_probs" not in summary  # not a single-state task
    assert pd.read_csv(out / "eval.csv")["env_steps"].tolist() == [0, 100, 200]


def test_two_variants_of_one_task_land_in_two_directories(tmp_path):
    from harness.layout import variant_label

    for variant in (["env.continuous_actions=false"], []):
        assert main(["env=mpe", "task=simple_spread", *variant, "algo=random", "budget=20", "eval_every=20",
                     f"results_dir={tmp_path}", *FAST]) == 0
    assert sorted(p.name for p in (tmp_path / "adhoc" / "mpe").iterdir()) == ["simple_spread", "simple_spread-discrete"]
    assert variant_label(("discrete",), "") == "discrete"
    assert variant_label(("discrete",), "alpha0.2") == "discrete-alpha0.2"
    assert variant_label(("discrete",), "discrete-alpha0.2") == "discrete-alpha0.2"  # the suites' labels stay
    assert variant_label((), "auto") == "auto" and variant_label((), "") == ""


def test_run_path_builds_parses_and_finds_the_same_directory(tmp_path):
    from harness.layout import RunPath, task_dir

    path = RunPath.build(tmp_path, "quick", "smac", task_dir("3m", "", "smax"), "hasac", 4)
    assert path.dir == tmp_path / "quick" / "smac" / "3m@smax" / "hasac" / "seed_4"
    parsed = RunPath(path.dir)
    assert (parsed.suite, parsed.family, parsed.task, parsed.algo, parsed.seed) == ("quick", "smac", "3m@smax", "hasac", 4)
    assert parsed.substitute == "smax" and parsed == path
    assert RunPath.build(tmp_path, "s", "mpe", task_dir("simple_spread", "discrete"), "qmix", 0).task == "simple_spread-discrete"
    assert RunPath.build(tmp_path, "s", "mpe", "simple_spread-discrete", "qmix", 0).substitute is None
    assert path.state == "new" and not path.done
    path.checkpoint.parent.mkdir(parents=True)
    path.checkpoint.write_bytes(b"")
    assert path.state == "resume"
    path.done_marker.write_text("")
    assert path.state == "skip" and path.done
    (tmp_path / ".submitit" / "a" / "b" / "c" / "seed_0").mkdir(parents=True)  # Submitit's folder is no run
    assert RunPath.find(tmp_path) == [path] == RunPath.find(tmp_path / "quick")


def test_a_suite_reaching_a_family_runs_its_preload_before_torch(tmp_path, monkeypatch):
    import envs.dexhands
    import harness.suites
    from harness.run import preload_simulators
    from harness.suites import families_named

    assert {"mpe", "matrix"} == families_named(["env=mpe,matrix"])
    assert "dexhands" in families_named(["suite=full"]) and "dexhands" in families_named(["suite=paper_dexhands"])
    (tmp_path / "hands.yaml").write_text("runs:\n  - {env: dexhands, task: Over, budget: 10}\n")
    monkeypatch.setattr(harness.suites, "SUITE_DIR", tmp_path)  # a new suite, named nowhere in the code
    called = []
    monkeypatch.setattr(envs.dexhands, "preload", lambda argv: called.append(("dexhands", tuple(argv))))
    preload_simulators(["suite=hands", "algo=hasac"])
    assert called == [("dexhands", ("suite=hands", "algo=hasac"))]  # the family decides from the command line
    preload_simulators(["suite=nope", "env=matrix"])  # an unknown suite is left for composition to refuse
    assert len(called) == 1


class CountingAlgo:
    """A test double of the algorithm interface: records the loop's calls in order; owes one
    update every 8 env steps; its third update's loss is NaN when asked."""

    def __init__(self, nan_at: int | None = None):
        self.calls, self.nan_at, self.updates = [], nan_at, 0

    def act(self, step, explore=True):
        self.calls.append("act")
        return [np.zeros(step.n_envs, int), np.zeros(step.n_envs, int)]

    def observe(self, step, actions, nxt):
        self.calls.append("observe")

    def ready(self, env_steps):
        return self.updates < env_steps // 8

    def update(self):
        self.updates += 1
        self.calls.append("update")
        return {"loss/critic": float("nan") if self.updates == self.nan_at else 1.0}


def test_the_loop_acts_steps_observes_and_pays_every_owed_update():
    import envs
    from harness.loop import TrainingDiverged, rounds

    env = envs.make("matrix", "climbing", n_envs=4, seed=0)
    algo = CountingAlgo()
    stream = rounds(algo, env, env.reset(0))
    seen = [next(stream) for _ in range(4)]
    assert [r.env_steps for r in seen] == [4, 8, 12, 16]
    assert [len(r.metrics) for r in seen] == [0, 1, 0, 1]
    assert algo.calls == ["act", "observe", "act", "observe", "update", "act", "observe", "act", "observe", "update"]
    assert all(len(r.step.info["episodes"]) == 4 for r in seen)  # one-step game: every copy ends each step
    algo = CountingAlgo(nan_at=3)
    stream = rounds(algo, env, env.reset(0), env_steps=16)  # resumes at 16: two updates owed at once
    assert len(next(stream).metrics) == 2
    with pytest.raises(TrainingDiverged, match="non-finite metric at env step 24"):
        next(stream)
    assert algo.updates == 3  # stopped at the update that made the NaN


def test_csv_rows_are_appended_new_columns_rewrite_and_a_torn_line_is_dropped(tmp_path):
    from harness.records import CsvTable, read_rows_up_to

    path = tmp_path / "train.csv"
    table = CsvTable(path)
    table.add({"env_steps": 10, "episodes": 1})
    table.add({"env_steps": 20, "episodes": 2})
    inode = path.stat().st_ino
    table.add({"env_steps": 30, "episodes": 3})
    assert path.stat().st_ino == inode  # appended in place, not rewritten
    table.add({"env_steps": 40, "episodes": 4, "loss/critic": 0.5})  # a new column: one atomic rewrite
    assert path.stat().st_ino != inode
    table.add({"env_steps": 50, "episodes": 5, "loss/critic": 0.25})
    rows = pd.read_csv(path)
    assert list(rows.columns) == ["env_steps", "episodes", "loss/critic"] and rows["env_steps"].tolist() == [10, 20, 30, 40, 50]
    assert rows["loss/critic"].isna().tolist() == [True, True, True, False, False]
    with open(path, "a") as handle:
        handle.write("6")  # a crash in the middle of the next append
    assert [r["env_steps"] for r in read_rows_up_to(path, 10**9)] == [10, 20, 30, 40, 50]
    assert [r["env_steps"] for r in read_rows_up_to(path, 30)] == [10, 20, 30]
