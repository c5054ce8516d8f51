"""TensorBoard and W&B loggers: what they hold, read back with TensorBoard's own event reader
and from W&B's offline run files, is exactly train.csv / eval.csv, for a short run and for a
run killed and resumed; a missing package stops a run before it writes anything."""

from __future__ import annotations

import math
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
        frame = pd.read_csv(run_dir / f"{table}.csv")
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
