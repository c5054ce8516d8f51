"""Speed, measured side by side: `python -m harness.bench [--tiny] [--name NAME]` prints
tables and writes reports/bench/<NAME>.json (docs/speed.md). Rates are env steps per
second (one step of one copy = one env step) unless said otherwise.

- environments (harness/bench/envs.py): raw simulator, VecEnv and the training loop;
- algorithms (harness/bench/algos.py): training and update rates, bf16, CPU vs GPU;
- packed seeds (harness/bench/pack.py, `--pack 1 4 10`): the aggregate training rate of K
  seeds trained together against one lone run, and the memory of their K replay buffers;
- memory (harness/bench/memory.py): bytes per transition of a 1M replay buffer (HalfCheetah-2x3,
  SMAX 3m), checked against the measured growth;
- targets (harness/bench/targets.py), each with met / not met;
- `--report`: the time harness.report takes on a generated 5 × 50 × 10 tree.
The JSON records the load average at the start and the end: on a shared machine read the
ratios, which are measured within one run, rather than the absolute figures.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from envs.errors import ConfigError
from harness.bench.algos import bench_algos, device_ratios
from harness.bench.envs import bench_task
from harness.bench.memory import replay_memory
from harness.bench.pack import bench_packs
from harness.bench.targets import targets
from harness.records import atomic_write_json

DEFAULT_TASKS = ("mpe/simple_spread", "mamujoco/HalfCheetah-2x3")
SMAX_TASK = "smac/3m@env.backend=smax"
"""Benched where jaxmarl is installed (the smax extra)."""
DEFAULT_ALGOS = ("hasac", "hatd3", "happo", "mappo")
MEMORY_TASKS = ("mamujoco/HalfCheetah-2x3", SMAX_TASK)


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
    """Atomic (harness/records.py); NaN/inf become null."""
    def clean(x):
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (np.floating, np.integer, np.bool_)):
            x = x.item()
        return None if isinstance(x, float) and not math.isfinite(x) else x

    atomic_write_json(path, clean(payload))


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
    parser.add_argument("--pack", nargs="+", type=int, default=None, help="pack sizes K (e.g. 1 4 10): the packed-seed rows "
                        "of the packable algorithms instead of the algorithm rows")
    parser.add_argument("--precisions", nargs="+", default=None, choices=["fp32", "bf16"], help="precisions of the pack "
                        "rows (default: fp32 and bf16, fp32 only with --no-bf16)")
    parser.add_argument("--pack-compile", default=None, help="also time the batched packs under torch.compile(mode=...), "
                        "e.g. reduce-overhead")
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
                            args.bf16, args.tiny) if args.algos and not args.pack else []
    precisions = args.precisions or ["fp32", *(["bf16"] if args.bf16 else [])]
    pack_rows = bench_packs(tasks, args.algos, devices, args.n_envs, args.pack, args.train_seconds, precisions, args.tiny,
                            args.pack_compile) if args.pack else []
    copies = max(args.pack or [1])
    payload |= {"env": env_rows, "algos": algo_rows, "pack": pack_rows, "device_ratios": device_ratios(algo_rows),
                "memory": [replay_memory(name, args.memory_capacity, device, copies=copies)
                           for name in memory_tasks for device in devices],
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
        for key in ("env", "algos", "pack", "device_ratios", "memory", "report", "targets"):
            if payload[key]:
                print(f"\n[{key}]\n" + pd.DataFrame(payload[key]).to_string(index=False))


def run() -> int:
    try:
        main()
    except ConfigError as exc:  # bad names or values: one line, exit status 2 (as harness.run)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
