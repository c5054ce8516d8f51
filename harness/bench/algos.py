"""The algorithm figures of the bench (docs/speed.md): per task, algorithm and device, at the
official settings (the task's tuned config, n_envs 20):

- train steps/s: env steps per second of the training loop itself (harness/loop.py) over
  whole training cycles — the env steps between two rounds that update, and those updates —
  after warm-up: the official update-to-data ratio, with the loop's own overhead;
- update/s: full updates (every agent, the tuned batch or --batch-sizes) on the warmed-up
  buffer; for on-policy algorithms one update is a whole PPO iteration on a full rollout;
- vec steps/s: VecEnv alone at the same n_envs with pre-drawn actions, and train/vec;
- bf16: update/s with `algo.bf16=true` on the same learner's state, as a ratio to fp32
  (for algorithms with a bf16 field), measured interleaved with the fp32 updates.
"""

from __future__ import annotations

import copy
import dataclasses
import time

import torch

from algos.base import Algorithm
from algos.common.packed import InTurn, Pack
from algos.common.registry import check_compatible, config_class
from envs.errors import ConfigError
from harness.bench.timing import env_fields, interleaved, split_name, synchronize, task_spec, vec_rate
from harness.config import load_settings
from harness.loop import pack_rounds
from harness.train import Prepared, prepare

TINY = {"hidden_sizes": "[16,16]", "batch_size": 32, "buffer_size": 4000, "warmup_steps": 64, "train_every": 32,
        "updates_per_train": 2, "episode_length": 4, "ppo_epoch": 1, "critic_epoch": 1}
"""--tiny: small networks and schedules, each where the algorithm's config has the field."""


def prepare_for_bench(name: str, algo: str, device: str, n_envs: int, tiny: bool, extra: tuple[str, ...] = ()) -> Prepared:
    family, task, env_overrides = split_name(name)
    overrides = [f"env={family}", f"task={task}", f"algo={algo}", f"device={device}", f"n_envs={n_envs}",
                 f"torch_threads={torch.get_num_threads()}", "progress=false", *env_overrides, *extra]
    if tiny:
        fields = {f.name for f in dataclasses.fields(config_class(algo))}
        overrides += [f"algo.{k}={v}" for k, v in TINY.items() if k in fields]
    return prepare(load_settings(overrides)[0])


def train_rate(prepared: Prepared, seconds: float) -> dict:
    """The loop's env steps/s over whole training cycles (at least one), after the first
    update (buffers full, lazy allocations done)."""
    return pack_train_rate(InTurn([prepared.algo]), [prepared], seconds)


def pack_train_rate(pack: Pack, prepared: list[Prepared], seconds: float) -> dict:
    """train_rate of the seeds of `pack` trained together (harness/loop.py pack_rounds): each
    seed's env steps/s (they move in lock-step)."""
    steps = [p.env.reset(p.settings.seed) for p in prepared]
    stream = pack_rounds(pack, [p.env for p in prepared], steps)
    done = next(stream)
    while not done.metrics[0]:  # warm-up: cycles start right after a round that updated
        done = next(stream)
    cycles, updates, first = 0, 0, done.env_steps
    synchronize(prepared[0].algo.device)
    start = time.perf_counter()
    while cycles == 0 or time.perf_counter() - start < seconds:
        done = next(stream)
        updates += len(done.metrics[0])
        cycles += bool(done.metrics[0])
    synchronize(prepared[0].algo.device)
    steps_done = done.env_steps - first
    return {"train steps/s": steps_done / (time.perf_counter() - start), "train rounds": cycles,
            "updates per 1k steps": 1000 * updates / steps_done}


def algo_rows(name: str, algo: str, device: str, n_envs: int, seconds: float, train_seconds: float,
              batch_sizes: list[int], bf16: bool, tiny: bool) -> list[dict]:
    """Rows for one (task, algorithm, device): one per batch size."""
    family, task, env_overrides = split_name(name)
    fields = env_fields(env_overrides)
    vec_before = vec_rate(family, task, n_envs, seconds / 2, fields)
    prepared = prepare_for_bench(name, algo, device, n_envs, tiny)
    try:
        learner = prepared.algo
        base = {"task": name, "algo": algo, "device": device, "n_envs": n_envs, **train_rate(prepared, train_seconds)}
        sizes = [None] if learner.config.on_policy else (batch_sizes or [learner.config.batch_size])
        rows = [base | {"batch": size} | update_rates(learner, size, seconds, bf16) for size in sizes]
    finally:
        prepared.close()
    vec = (vec_before + vec_rate(family, task, n_envs, seconds / 2, fields)) / 2  # before and after
    for row in rows:
        row |= {"vec steps/s": vec, "train/vec": row["train steps/s"] / vec}
    return rows


def with_config(learner: Algorithm, **changes) -> Algorithm:
    """The same learner (networks, buffer, optimisers shared) seen through a config with
    `changes`: what its update() does at another batch size or precision."""
    view = copy.copy(learner)
    view.config = dataclasses.replace(learner.config, **changes)
    return view


def update_rates(learner: Algorithm, batch_size: int | None, seconds: float, bf16: bool) -> dict:
    """update/s at `batch_size` (and in bf16 where the config has the switch)."""
    if learner.config.on_policy:
        saved = copy.deepcopy(learner.state_dict())

        def one_update() -> int:
            learner.load_state_dict(saved)  # the same full rollout again: the update only
            learner.update()
            synchronize(learner.device)
            return 1

        return {"update/s": interleaved({"update": one_update}, seconds)["update"]}
    precisions = {"update": with_config(learner, batch_size=batch_size)}
    if bf16 and "bf16" in {f.name for f in dataclasses.fields(learner.config)}:
        precisions["update bf16"] = with_config(learner, batch_size=batch_size, bf16=True)

    def timed(view: Algorithm):
        def run() -> int:
            view.update()
            synchronize(view.device)
            return 1
        return run

    rates = interleaved({name: timed(view) for name, view in precisions.items()}, seconds)
    row = {"update/s": rates["update"]}
    if "update bf16" in rates:
        row |= {"bf16 update/s": rates["update bf16"], "bf16/fp32 update": rates["update bf16"] / rates["update"]}
    return row


def bench_algos(names: list[str], algos: list[str], devices: list[str], n_envs: int, seconds: float, train_seconds: float,
                batch_sizes: list[int], bf16: bool, tiny: bool) -> list[dict]:
    """algo_rows for every compatible (task, algorithm, device)."""
    rows = []
    for name in names:
        spec = task_spec(name)
        for algo in algos:
            try:
                check_compatible(algo, spec)
            except ConfigError:
                continue  # e.g. QMIX on Box actions: no row rather than an error
            for device in devices:
                rows += algo_rows(name, algo, device, n_envs, seconds, train_seconds, batch_sizes, bf16, tiny)
    return rows


def device_ratios(rows: list[dict]) -> list[dict]:
    """GPU / CPU update and training rates for every (task, algorithm, batch) measured on both."""
    by_key = {(r["task"], r["algo"], r["batch"], r["device"]): r for r in rows}
    out = []
    for (task, algo, batch, device), row in by_key.items():
        cpu = by_key.get((task, algo, batch, "cpu"))
        if device != "cpu" and cpu is not None:
            out.append({"task": task, "algo": algo, "batch": batch, "device": device,
                        "update/s vs cpu": row["update/s"] / cpu["update/s"],
                        "train steps/s vs cpu": row["train steps/s"] / cpu["train steps/s"]})
    return out
