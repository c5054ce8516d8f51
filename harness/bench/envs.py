"""The environment figures of the bench, per task: the raw simulator's own rate (its native
API, pre-drawn random actions), VecEnv at each n_envs as a ratio to raw, and the whole
training loop (harness/train.py) driving `random` as a ratio to VecEnv — the loop's own
overhead (target >= 0.9). VecEnv and the loop are measured alternately, so that a load
change on a shared machine hits both."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from algos.common.registry import config_class
from envs.raw import BATCH_SIZES, raw_stepper
from harness.bench.timing import env_fields, split_name, timed_rate, vec_rate
from harness.layout import RunPath
from harness.records import RunRecord
from harness.settings import Settings
from harness.train import prepare, train

VEC_SIZES = (1, 20)  # one copy, and the official 20


def loop_rate(family: str, task: str, n_envs: int, seconds: float, base_rate: float, fields: dict | None = None) -> float:
    """The real train() with `random`; the rate comes from train.csv rows after the first."""
    budget = max(int(base_rate * seconds), 8 * n_envs)
    budget -= budget % n_envs
    algo_config = config_class("random")()
    settings = Settings(
        family=family, task=task, algo="random", algo_config=algo_config, env_fields=dict(fields or {}),
        budget=budget, n_envs=n_envs, eval_every=budget, eval_episodes=1, eval_n_envs=1,
        log_every=max(budget // 5 - (budget // 5) % n_envs, n_envs), progress=False,
    )
    prepared = prepare(settings)
    with tempfile.TemporaryDirectory() as tmp:
        record = RunRecord(RunPath(Path(tmp)))
        record.start("", "cpu")
        try:
            train(prepared, record)
        finally:
            prepared.close()
        rows = pd.read_csv(record.path.train_csv)
    return float(rows["perf/sps"].iloc[1:].mean()) if len(rows) > 1 else float(rows["perf/sps"].iloc[0])


def bench_task(name: str, seconds: float, sizes: tuple[int, ...] | None = None) -> list[dict]:
    """raw, then per n_envs the VecEnv and the loop with `random`, measured alternately (twice
    each, seconds/2 a time; means) so that the loop/VecEnv ratio survives a load change."""
    family, task, overrides = split_name(name)
    fields = env_fields(overrides)
    step_once, what = raw_stepper(family, task)
    raw = timed_rate(step_once, seconds)
    rows = [{"task": name, "what": what, "n_envs": None, "steps/s": raw,
             "ratio": 1.0, "ratio_to": "raw"}]
    for n_envs in sizes or BATCH_SIZES.get(family, VEC_SIZES):
        vec, loop = [], []
        for _ in range(2):
            vec.append(vec_rate(family, task, n_envs, seconds / 2, fields))
            loop.append(loop_rate(family, task, n_envs, seconds / 2, vec[-1], fields))
        rows.append({"task": name, "what": "VecEnv", "n_envs": n_envs, "steps/s": np.mean(vec), "ratio": np.mean(vec) / raw,
                     "ratio_to": "raw"})
        rows.append({"task": name, "what": "train loop (random)", "n_envs": n_envs, "steps/s": np.mean(loop),
                     "ratio": np.mean(loop) / np.mean(vec), "ratio_to": "VecEnv"})
    return rows


