"""Speed, measured side by side: `python -m harness.bench [--tiny] [--name NAME]` prints
tables and writes reports/bench/<NAME>.json (docs/speed.md). Rates are env steps per
second (one step of one copy = one env step) unless said otherwise.

Environments, per task:
- raw: the simulator's own step rate (one env, its native API, pre-drawn random actions);
- VecEnv at n_envs = E with the same pre-drawn actions, as a ratio to raw;
- train loop (random) at E: the whole training loop (harness/train.py) driving `random`,
  as a ratio to VecEnv at E — the loop's own overhead (target ≥ 0.9). Measured alternately
  with VecEnv so that a load change on a shared machine hits both.

Algorithms (harness/bench_algos.py), per task, algorithm and device, at the official
settings (tuned config, --n-envs 20): update/s, the floor of the network passes an update
must do and update/floor, training env-steps/s over whole rounds at the official
update-to-data ratio and its ratio to VecEnv, bf16/fp32, CPU vs GPU where a GPU is present.
Memory: bytes per transition of a 1M replay buffer (HalfCheetah-2x3, SMAX 3m), checked
against the measured resident-set growth. Targets: issue 13's, each with met / not met.
The JSON records the load average at the start and the end: on a shared machine read the
ratios, which are measured within one run, rather than the absolute figures.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

import envs
from envs.errors import ConfigError
from algos.common.registry import config_class
from algos.common.spaces import uniform_actions
from harness.layout import RunPath
from harness.records import RunRecord
from harness.settings import Settings
from harness.train import prepare, train

DEFAULT_TASKS = ("mpe/simple_spread", "mamujoco/HalfCheetah-2x3")
SMAX_TASK = "smac/3m@env.backend=smax"
"""Benched where jaxmarl is installed (the smax extra)."""
DEFAULT_ALGOS = ("hasac", "hatd3", "happo", "mappo")
MEMORY_TASKS = ("mamujoco/HalfCheetah-2x3", SMAX_TASK)
VEC_SIZES = (1, 20)  # one copy, and the official 20


def timed_rate(step_once: Callable[[], int], seconds: float) -> float:
    """Call `step_once` (returns env steps done) until `seconds` pass; env steps / s."""
    step_once()  # warm-up: first calls pay for lazy allocations
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        steps += step_once()
    return steps / elapsed


def raw_mpe(task: str, seconds: float) -> float:
    """mpe2's unwrapped AEC env driven one full agent cycle per step (its fastest API)."""
    from envs.mpe import _import_task

    env = _import_task(task).raw_env(max_cycles=25, continuous_actions=True)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    agents = list(env.possible_agents)
    actions = [[rng.random(env.action_space(a).shape).astype(np.float32) for a in agents] for _ in range(64)]
    counter = iter(range(10**12))

    def step_once() -> int:
        for action in actions[next(counter) % 64]:
            env.step(action)
        if any(env.truncations.values()) or any(env.terminations.values()):
            env.reset()
        return 1

    return timed_rate(step_once, seconds)


def raw_mamujoco(task: str, seconds: float) -> float:
    """The underlying single-agent Gymnasium MuJoCo env (the physics floor under MaMuJoCo)."""
    from envs.mamujoco import Config, _build, resolve_task

    env = _build(*resolve_task(task), Config()).single_agent_env
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    space = env.action_space
    actions = [rng.uniform(space.low, space.high).astype(np.float32) for _ in range(64)]
    counter = iter(range(10**12))

    def step_once() -> int:
        obs, rew, term, trunc, info = env.step(actions[next(counter) % 64])
        if term or trunc:
            env.reset()
        return 1

    return timed_rate(step_once, seconds)


def raw_smac(task: str, seconds: float, n_envs: int = 32) -> float:
    """JaxMARL's own rate: HeuristicEnemySMAX.step (its auto-reset) jitted and vmapped over
    `n_envs` copies, driven from Python with pre-drawn available actions, as a torch
    harness drives it. Env steps/s (n_envs per call)."""
    import jax
    import jax.numpy as jnp

    from envs.smac import MAPS
    from envs.smac.smax import smax_env

    info = MAPS[task]
    env = smax_env(task, info, info.limit)
    keys = jax.random.split(jax.random.PRNGKey(0), n_envs)
    obs, state = jax.vmap(env.reset)(keys)
    avail = jax.vmap(env.get_avail_actions)(state)
    rng = np.random.default_rng(0)
    actions = [{a: jnp.asarray(np.array([rng.choice(np.flatnonzero(r)) for r in np.asarray(avail[a])]), jnp.int32)
                for a in env.agents} for _ in range(16)]

    @jax.jit
    def advance(keys, state, actions):
        keys, step_keys = jnp.split(jax.vmap(jax.random.split)(keys), 2, axis=1)
        _, state, reward, _, _ = jax.vmap(env.step)(step_keys[:, 0], state, actions)
        return keys[:, 0], state, reward

    counter = iter(range(10**12))

    def step_once() -> int:
        nonlocal keys, state
        keys, state, reward = advance(keys, state, actions[next(counter) % 16])
        jax.block_until_ready(reward)
        return n_envs

    for _ in range(3):  # compile, and recompile once for the state's weak types after the first step
        step_once()
    return timed_rate(step_once, seconds)


def raw_lag(task: str, seconds: float) -> float:
    """The FDM floor under one LAG env step: the task's trimmed JSBSim F-16s (4, or 1 for
    1-Heading) × 12 sub-steps at 60 Hz, controls held, no autopilot, obs or rewards."""
    from envs.lag import HEADING_TASK
    from envs.lag.combat import START, START_ALT, START_U
    from envs.lag.sim import SUBSTEPS, Aircraft

    starts = START[:1] if task == HEADING_TASK else START
    fleet = [Aircraft(n, lat, lon, START_ALT, hdg, START_U) for n, lat, lon, hdg in starts]

    def step_once() -> int:
        for ac in fleet:
            for _ in range(SUBSTEPS):
                ac.run()
        return 1

    return timed_rate(step_once, seconds)


def raw_football(task: str, seconds: float) -> float:
    """gfootball's own env as the official configs build it (simple115v2, the scenario's
    agents), old gym API, pre-drawn random actions, resets included."""
    from envs.football import AGENTS, N_ACTIONS, create_engine

    env = create_engine(task)
    env.reset()
    rng = np.random.default_rng(0)
    actions = [rng.integers(N_ACTIONS, size=AGENTS[task]).tolist() for _ in range(64)]
    counter = iter(range(10**12))

    def step_once() -> int:
        _, _, done, _ = env.step(actions[next(counter) % 64])
        if done:
            env.reset()
        return 1

    return timed_rate(step_once, seconds)


RAW = {"mpe": raw_mpe, "mamujoco": raw_mamujoco, "smac": raw_smac, "lag": raw_lag, "football": raw_football}
# What a family's raw rate measures (default: "raw simulator, 1 env").
RAW_LABEL = {"smac": "raw jaxmarl SMAX, vmap 32 envs", "lag": "raw JSBSim F-16s x 12 sub-steps"}
FAMILY_VEC_SIZES = {"smac": (1, 32, 128), "football": (1, 2, 4)}


def split_name(name: str) -> tuple[str, str, list[str]]:
    """'family/task[@env.k=v@...]' → (family, task, overrides): e.g.
    mpe/simple_spread@env.continuous_actions=false for the discrete variant."""
    head, *overrides = name.split("@")
    family, task = head.split("/", 1)
    return family, task, overrides


def env_fields(overrides: list[str]) -> dict:
    """The `env.` overrides as envs.make keyword arguments (YAML-typed values)."""
    import yaml

    return {k.removeprefix("env."): yaml.safe_load(v) for k, v in (o.split("=", 1) for o in overrides)
            if k.startswith("env.")}


def vec_rate(family: str, task: str, n_envs: int, seconds: float, vectorization: str | None,
             fields: dict | None = None) -> float:
    fields = dict(fields or {}) | ({} if vectorization is None else {"vectorization": vectorization})
    env = envs.make(family, task, n_envs=n_envs, seed=0, **fields)
    step = env.reset()
    rng = np.random.default_rng(0)
    actions = [uniform_actions(env.spec, n_envs, step.avail_actions, rng) for _ in range(16)]
    counter = iter(range(10**12))

    def step_once() -> int:
        env.step(actions[next(counter) % 16])
        return n_envs

    try:
        return timed_rate(step_once, seconds)
    finally:
        env.close()


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
    raw = RAW[family](task, seconds)
    rows = [{"task": name, "what": RAW_LABEL.get(family, "raw simulator, 1 env"), "n_envs": None, "steps/s": raw,
             "ratio": 1.0, "ratio_to": "raw"}]
    for n_envs in sizes or FAMILY_VEC_SIZES.get(family, VEC_SIZES):
        vec, loop = [], []
        for _ in range(2):
            vec.append(vec_rate(family, task, n_envs, seconds / 2, None, fields))
            loop.append(loop_rate(family, task, n_envs, seconds / 2, vec[-1], fields))
        rows.append({"task": name, "what": "VecEnv", "n_envs": n_envs, "steps/s": np.mean(vec), "ratio": np.mean(vec) / raw,
                     "ratio_to": "raw"})
        rows.append({"task": name, "what": "train loop (random)", "n_envs": n_envs, "steps/s": np.mean(loop),
                     "ratio": np.mean(loop) / np.mean(vec), "ratio_to": "VecEnv"})
    return rows


def bench_algos(names: list[str], algos: list[str], devices: list[str], n_envs: int, seconds: float, train_seconds: float,
                batch_sizes: list[int], bf16: bool, tiny: bool) -> list[dict]:
    """bench_algos.algo_rows for every compatible (task, algorithm, device)."""
    from algos.common.registry import check_compatible
    from harness.bench_algos import algo_rows

    rows = []
    for name in names:
        family, task, overrides = split_name(name)
        probe = envs.make(family, task, n_envs=1, seed=0, **env_fields(overrides))
        spec = probe.spec
        probe.close()
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


def targets(env_rows: list[dict], algo_rows: list[dict]) -> list[dict]:
    """Issue 13's targets, each with its figure and whether this run meets it."""
    from harness.bench_algos import OFFICIAL_TRAIN_RATE

    out = []
    for row in env_rows:
        if row["what"] == "train loop (random)":
            out.append({"target": f"loop (random) >= 0.9 x VecEnv, {row['task']} n_envs={row['n_envs']}",
                        "value": row["ratio"], "met": row["ratio"] >= 0.9})
    for row in algo_rows:
        where = f"{row['task']} {row['device']} batch={row['batch']}"
        if row["algo"] == "hasac" and "update/floor" in row:
            out.append({"target": f"HASAC update <= 1.2 x floor, {where}", "value": row["update/floor"], "met": row["update/floor"] <= 1.2})
        official = OFFICIAL_TRAIN_RATE.get((row["algo"], row["task"]))
        if official is not None:
            value = row["train steps/s"] / official[1]
            out.append({"target": f"HASAC train steps/s >= 1.5 x official {official[0]:g}-{official[1]:g} (ratio to {official[1]:g}), fp32, {where}",
                        "value": value, "met": value >= 1.5})
            if "bf16/fp32 update" in row:
                projected = projected_train_rate(row, row["bf16 update/s"])
                out.append({"target": f"HASAC train steps/s >= 2 x official with bf16 (projected from the bf16 update rate), {where}",
                            "value": projected / official[1], "met": projected / official[1] >= 2.0})
        if row["algo"] in ("happo", "mappo"):
            out.append({"target": f"{row['algo'].upper()} train >= 0.9 x VecEnv, {where}", "value": row["train/vec"],
                        "met": row["train/vec"] >= 0.9})
    return out


def projected_train_rate(row: dict, update_rate: float) -> float:
    """The training rate with the measured loop but updates at `update_rate`: the loop's
    time per env step minus its fp32 update time plus the new update time."""
    per_step_updates = row["updates per 1k steps"] / 1000
    seconds_per_step = 1 / row["train steps/s"] - per_step_updates / row["update/s"] + per_step_updates / update_rate
    return 1 / seconds_per_step if seconds_per_step > 0 else math.nan  # inconsistent figures (a very noisy run)


def bench_report(algos: int = 5, tasks: int = 50, seeds: int = 10, points: int = 50, reps: int = 2000) -> list[dict]:
    """Seconds to report a generated tree of algos × tasks × seeds eval.csv files: reading
    plus tables plus every bootstrap (figures=False), and with the figures."""
    from harness.report import write_report
    from harness.report.synthetic import synthetic_tree

    names = ["hasac", "hatd3", "happo", "mappo", "qmix"][:algos]
    task_names = [f"mamujoco/Synthetic-{k}" for k in range(tasks)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = synthetic_tree(Path(tmp), names, task_names, seeds, points)
        for figures in (False, True):
            start = time.perf_counter()
            write_report([root], Path(tmp) / f"report_{figures}", reps, 0, "observed", figures=figures)
            rows.append({"what": f"report {algos}x{tasks}x{seeds} runs, reps={reps}" + (" + figures" if figures else ""),
                         "seconds": time.perf_counter() - start})
    return rows


def machine() -> dict:
    """What the figures depend on: CPU, threads, torch, GPU, and the load average."""
    return {"host": platform.node(), "cpu_count": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "loadavg_start": list(os.getloadavg())}


def write_json(path: Path, payload: dict) -> None:
    """Atomic: a temporary file in the same directory, then rename. NaN/inf become null."""
    def clean(x):
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (np.floating, np.integer, np.bool_)):
            x = x.item()
        return None if isinstance(x, float) and not math.isfinite(x) else x

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(clean(payload), f, indent=1, allow_nan=False)
    os.replace(f.name, path)


def default_tasks() -> list[str]:
    return [*DEFAULT_TASKS, *([SMAX_TASK] if importlib.util.find_spec("jaxmarl") else [])]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=None, help="family/task[@env.k=v] names (default: simple_spread, "
                        "HalfCheetah-2x3, and SMAX 3m where jaxmarl is installed)")
    parser.add_argument("--algos", nargs="*", default=list(DEFAULT_ALGOS), help="algorithms to time (none: env figures only)")
    parser.add_argument("--devices", nargs="+", default=None, help="torch devices for the algorithms (default: cpu, and cuda if present)")
    parser.add_argument("--n-envs", type=int, default=20, help="env copies of the algorithm rows (official: 20)")
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=[], help="off-policy batch sizes to time (default: the tuned one)")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="skip the bf16 update figures")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    parser.add_argument("--train-seconds", type=float, default=20.0, help="least time the training loop runs (whole rounds, at least one)")
    parser.add_argument("--memory-capacity", type=int, default=1_000_000, help="transitions of the replay buffers whose memory is checked")
    parser.add_argument("--memory-tasks", nargs="*", default=None, help="tasks of the memory check (default: HalfCheetah-2x3 and "
                        "SMAX 3m, those of them among --tasks)")
    parser.add_argument("--skip-env", action="store_true", help="no raw / VecEnv / loop figures")
    parser.add_argument("--report", action="store_true", help="also time harness.report on a generated 5x50x10 tree")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run: simple_spread, tiny networks (tests)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the torch_threads run key; 1 is the "
                        "default, best when runs share cores)")
    parser.add_argument("--name", default="latest", help="writes reports/bench/<name>.json")
    parser.add_argument("--out-dir", default="reports/bench", help="directory of the JSON")
    args = parser.parse_args(argv)
    if args.tiny:
        args.tasks = args.tasks or ["mpe/simple_spread"]
        args.seconds, args.train_seconds, args.n_envs = 0.05, 0.0, 4
        args.memory_capacity, args.memory_tasks = 4000, args.memory_tasks if args.memory_tasks is not None else args.tasks
    tasks = args.tasks or default_tasks()
    devices = args.devices or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    memory_tasks = args.memory_tasks if args.memory_tasks is not None else [t for t in MEMORY_TASKS if t in tasks]
    torch.set_num_threads(args.threads)
    payload = {"name": args.name, "created": datetime.datetime.now().isoformat(timespec="seconds"), "argv": sys.argv[1:] if argv is None else argv,
               "tiny": args.tiny, "machine": machine()}
    env_rows = [] if args.skip_env else [row for name in tasks for row in bench_task(name, args.seconds, (args.n_envs,) if args.tiny else None)]
    algo_rows = bench_algos(tasks, args.algos, devices, args.n_envs, args.seconds, args.train_seconds, args.batch_sizes,
                            args.bf16, args.tiny) if args.algos else []
    from harness.bench_algos import replay_memory

    payload |= {"env": env_rows, "algos": algo_rows, "device_ratios": device_ratios(algo_rows),
                "memory": [replay_memory(name, args.memory_capacity, device) for name in memory_tasks for device in devices],
                "report": bench_report() if args.report else [],
                "targets": [] if args.tiny else targets(env_rows, algo_rows)}  # targets hold at the official settings only
    payload["machine"]["loadavg_end"] = list(os.getloadavg())
    path = Path(args.out_dir) / f"{args.name}.json"
    write_json(path, payload)
    print_tables(payload)
    print(f"\nload average {payload['machine']['loadavg_start']} -> {payload['machine']['loadavg_end']} on "
          f"{payload['machine']['cpu_count']} CPUs; written {path}")
    return path


def print_tables(payload: dict) -> None:
    with pd.option_context("display.float_format", "{:,.3g}".format, "display.width", 200, "display.max_columns", 30):
        for key in ("env", "algos", "device_ratios", "memory", "report", "targets"):
            if payload[key]:
                print(f"\n[{key}]\n" + pd.DataFrame(payload[key]).to_string(index=False))


if __name__ == "__main__":
    try:
        main()
    except ConfigError as exc:  # bad names or values: one line, exit status 2 (as harness.run)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
