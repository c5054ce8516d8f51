"""TensorBoard and W&B loggers: what they hold, read back with TensorBoard's own event reader
and from W&B's offline run files, is exactly train.csv / eval.csv, for a short run and for a
run killed and resumed; a missing package stops a run before it writes anything."""

from __future__ import annotations

import math
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envs.errors import ConfigError
from harness import loggers

WANDB_BLOCK = 32768  # W&B's transaction log is LevelDB's log format: 32 KiB blocks
WANDB_HEADER = 7  # ":W&B", a 2-byte magic number, a version byte


def wandb_records(path: Path):
    """The protobuf records of a W&B offline run file (run-<id>.wandb)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = WANDB_HEADER, b""
    while pos + 7 <= len(data):
        room = WANDB_BLOCK - pos % WANDB_BLOCK
        if room < 7:  # a block's tail too short for a record header is padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            pos += room
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_run(run_dir: Path) -> tuple[dict, dict[str, dict[int, float]]]:
    """(the run record's fields and config, {key: {step: value}}) of a run directory's one
    W&B offline run; repeated steps of a key would fail the test."""
    import json

    [offline] = (run_dir / "wandb").glob("offline-run-*")
    [log] = offline.glob("run-*.wandb")
    run, history = {}, {}
    for record in wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = {"id": record.run.run_id, "project": record.run.project, "group": record.run.run_group,
                   "name": record.run.display_name,
                   "config": {item.key: json.loads(item.value_json) for item in record.run.config.update}}
        elif kind == "history":
            items = {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item}
            step = int(items.pop("_step"))
            for key, value in items.items():
                if not key.startswith("_"):
                    assert step not in history.setdefault(key, {}), f"{key} logged twice at step {step}"
                    history[key][step] = value
    return run, history


def tensorboard_scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} through TensorBoard's own reader; a repeated step fails the test."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    out = {}
    for name in accumulator.Tags()["scalars"]:
        events = accumulator.Scalars(name)
        steps = [e.step for e in events]
        assert len(steps) == len(set(steps)), f"{name} has repeated steps"
        out[name] = {e.step: e.value for e in events}
    return out


def csv_points(run_dir: Path) -> dict[str, dict[int, float]]:
    """What the loggers must hold: every non-empty cell of train.csv and eval.csv."""
    out: dict[str, dict[int, float]] = {}
    for table in ("train", "eval"):
        frame = pd.read_csv(run_dir / f"{table}.csv", float_precision="round_trip")
        for column in frame.columns.drop("env_steps"):
            cells = frame[["env_steps", column]].dropna()
            out[loggers.tag(table, column)] = dict(zip(cells["env_steps"].astype(int), cells[column].astype(float)))
    return {k: v for k, v in out.items() if v}


def assert_same_points(logged: dict, expected: dict, as_float32: bool) -> None:
    assert sorted(logged) == sorted(expected)
    for name, points in expected.items():
        assert sorted(logged[name]) == sorted(points), name
        for step, value in points.items():
            want = float(np.float32(value)) if as_float32 else value  # TensorBoard scalars are float32
            assert logged[name][step] == want, (name, step)


def test_logger_names_always_include_csv_and_refuse_unknown_ones():
    assert loggers.logger_names("tensorboard,wandb") == ["csv", "tensorboard", "wandb"]
    assert loggers.logger_names(["csv", "wandb", "wandb"]) == ["csv", "wandb"]
    with pytest.raises(ConfigError, match="unknown logger 'tb'; valid: csv, tensorboard, wandb"):
        loggers.logger_names("csv,tb")


@pytest.mark.parametrize("package", ["tensorboard", "wandb"])
def test_a_missing_package_names_its_extra(monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # what find_spec reports for an absent package
    with pytest.raises(ConfigError) as error:
        loggers.check_loggers(f"csv,{package}")
    assert str(error.value) == f"logger={package} needs the {package} package: pip install 'hasac-bench[{package}]'"
    assert loggers.check_loggers("csv") == ["csv"]


def test_rows_are_logged_in_the_loops_order_without_empty_cells():
    train = [{"env_steps": 100, "loss/critic": 0.5}, {"env_steps": 200, "loss/critic": math.nan, "episodes": 3}]
    evals = [{"env_steps": 0, "eval_return_mean": -1.0}, {"env_steps": 200, "eval_return_mean": -0.5}]
    order = loggers.in_log_order(train, evals)
    assert [(table, row["env_steps"]) for table, row in order] == [("eval", 0), ("train", 100), ("train", 200),
                                                                 ("eval", 200)]
    assert loggers.scalars("train", train[1]) == {"train/episodes": 3.0}
    assert loggers.scalars("eval", evals[0]) == {"eval/eval_return_mean": -1.0}


ARGS = ["env=mpe", "task=simple_spread", "algo=hasac", "algo.warmup_steps=200", "algo.train_every=100",
        "algo.updates_per_train=2", "algo.batch_size=32", "algo.hidden_sizes=[32,32]", "budget=2000",
        "eval_every=500", "log_every=250", "n_envs=4", "eval_n_envs=2", "eval_episodes=2", "progress=false",
        "logger=csv,tensorboard,wandb"]
RUN = Path("adhoc/mpe/simple_spread/hasac/seed_0")
KILL_AFTER_ROW = 1252
"""The train row after which the killed run dies: past the checkpoint at 1000, before the next."""
KILLED_CHILD = f"""
import os, signal, sys
import harness.records
from harness.run import main
write = harness.records.RunRecord.add_train_row
def add_train_row(self, row):
    write(self, row)
    if row["env_steps"] >= {KILL_AFTER_ROW}:
        self.loggers.flush()
        os.kill(os.getpid(), signal.SIGKILL)
harness.records.RunRecord.add_train_row = add_train_row
main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """A short HASAC run (updates included) with every logger."""
    from harness.run import main

    root = tmp_path_factory.mktemp("straight")
    assert main([*ARGS, f"results_dir={root}"]) == 0
    return root / RUN


def test_loggers_hold_exactly_the_csv_rows_with_config_and_provenance(straight: Path):
    import json

    expected = csv_points(straight)
    assert {"loss/critic", "train/train_return_mean", "eval/eval_return_mean", "perf/sps"} <= set(expected)
    assert len(list(straight.glob("events.out.tfevents.*"))) == 1
    assert_same_points(tensorboard_scalars(straight), expected, as_float32=True)
    run, history = wandb_run(straight)
    assert_same_points(history, expected, as_float32=False)
    meta = json.loads((straight / "meta.json").read_text())
    assert run["id"] == (straight / "wandb" / "run_id").read_text().strip()
    assert (run["project"], run["group"], run["name"]) == (
        "hasac-bench-adhoc", "mpe/simple_spread/hasac", "mpe/simple_spread/hasac/seed_0")
    assert run["config"]["provenance"]["git"] == meta["git"]
    assert run["config"]["budget"] == 2000 and run["config"]["algo"]["batch_size"] == 32


def test_tensorboard_has_the_config_text(straight: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(straight))
    accumulator.Reload()
    [config] = accumulator.Tensors("config/text_summary")
    assert '"budget": 2000' in config.tensor_proto.string_val[0].decode()


def test_a_killed_and_resumed_run_logs_each_point_once(straight: Path, tmp_path: Path):
    import json
    import subprocess

    from harness.run import main

    run = tmp_path / RUN
    own_service = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}  # as a requeued job: its own wandb-core
    child = subprocess.run([sys.executable, "-c", KILLED_CHILD, *ARGS, f"results_dir={tmp_path}"], env=own_service,
                           capture_output=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    assert json.loads((run / "meta.json").read_text())["status"] == "running"
    killed = tensorboard_scalars(run)  # {tag: {step: value}}: points past the checkpoint at 1000
    assert max(killed["train/episodes"]) == KILL_AFTER_ROW and max(killed["eval/eval_return_mean"]) == 1000
    run_id = (run / "wandb" / "run_id").read_text().strip()
    [killed_wandb] = (run / "wandb").glob("offline-run-*")

    assert main([*ARGS, f"results_dir={tmp_path}"]) == 0
    assert json.loads((run / "summary.json").read_text())["resumed_from"] == 1000
    expected = csv_points(run)
    assert max(expected["train/episodes"]) == 2000
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    assert_same_points(tensorboard_scalars(run), expected, as_float32=True)
    resumed, history = wandb_run(run)  # one offline run left, under the same id
    assert resumed["id"] == run_id and not killed_wandb.exists()
    assert_same_points(history, expected, as_float32=False)
    for table in ("train.csv", "eval.csv"):  # and the loggers leave resume exact
        a, b = (pd.read_csv(d / table, float_precision="round_trip") for d in (straight, run))
        same = [c for c in a.columns if c != "perf/sps"]
        pd.testing.assert_frame_equal(a[same], b[same], check_exact=True)


def test_a_selected_logger_without_its_package_stops_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from harness.run import main

    monkeypatch.setitem(sys.modules, "wandb", None)
    assert main([*ARGS, f"results_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err == "error: logger=wandb needs the wandb package: pip install 'hasac-bench[wandb]'\n"
    assert list(tmp_path.iterdir()) == []
    assert main([*ARGS[:-1], "logger=csv,tensorbord", f"results_dir={tmp_path}"]) == 2
    assert "unknown logger 'tensorbord'" in capsys.readouterr().err


def test_each_seed_of_a_pack_has_its_own_loggers_holding_its_own_rows(tmp_path):
    """A pack holds one W&B run (reinit=create_new) and one TensorBoard writer per seed."""
    from harness.run import main

    assert main([*ARGS, "seeds=2", "pack=2", f"results_dir={tmp_path}"]) == 0
    ids = []
    for seed in (0, 1):
        run_dir = tmp_path / RUN.parent / f"seed_{seed}"
        expected = csv_points(run_dir)
        assert_same_points(tensorboard_scalars(run_dir), expected, as_float32=True)
        run, history = wandb_run(run_dir)
        assert_same_points(history, expected, as_float32=False)
        assert run["name"] == f"mpe/simple_spread/hasac/seed_{seed}"
        ids.append(run["id"])
    assert ids[0] != ids[1]
