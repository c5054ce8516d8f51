"""`python -m harness.bench.rates [--seconds S] [--out PATH] <harness.run overrides>`: the rates
behind a sweep's cost estimate (harness/estimate.py), measured for each distinct job kind of
the sweep — (family, task directory, algorithm, device) — with that job's own composed config.

For each kind, one job (its lowest seed) is prepared as the sweep would run it and driven
by the training loop (harness/loop.py): untimed until its first update (replay warm-up, a full rollout,
enough episodes; at most WARMUP_CAP_S), then timed over whole update rounds (from just
after a step with updates to just after a later one) for at least S seconds. Then one
greedy evaluation of eval_n_envs episodes is timed, after an untimed one (JIT compiles,
lazy allocations). Rows go to PATH (default `<results_dir>/rates.json`, the calibration the
dry run of the same results_dir uses; `--out harness/rates.json` refreshes the shipped
table), merged with the rows already there, with the machine they came from: host, CPU
model, cores, torch version and threads, and the load average before and after, since the
figures of a busy machine are slow.

    python -m harness.bench.rates suite=full algo=hasac,hatd3 --out harness/rates.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from envs.errors import UserError
from harness.estimate import LOCAL_NAME, Key

WARMUP_CAP_S = 120.0
"""Untimed steps before timing stop after this long even without an update: an algorithm
that never updates (random) is timed as it is."""
ROUND_CAP_S = 600.0
"""Timing ends after this long even inside a round (a very slow kind is timed partially)."""


def machine(command: str) -> dict[str, Any]:
    """The bench's machine record (host, CPU model, cores, torch, threads, load average)."""
    from harness.bench import machine as bench_machine

    return bench_machine() | {"created": datetime.datetime.now().isoformat(timespec="seconds"), "command": command}


def measure(settings, seconds: float) -> dict[str, float]:
    """Training env steps/s over whole update rounds after the first update, and the
    seconds of one greedy evaluation episode."""
    from harness.evaluate import evaluate
    from harness.loop import rounds
    from harness.quiet import captured
    from harness.train import EVAL_SEED_OFFSET, prepare

    with captured():
        prepared = prepare(dataclasses.replace(settings, progress=False))
    try:
        stream = rounds(prepared.algo, prepared.env, prepared.env.reset(settings.seed))
        start, done = time.perf_counter(), next(stream)
        while not done.metrics and time.perf_counter() - start < WARMUP_CAP_S:
            done = next(stream)
        updates, first, start = bool(done.metrics), done.env_steps, time.perf_counter()
        timed_updates = 0
        while True:
            done = next(stream)
            timed_updates += len(done.metrics)
            elapsed = time.perf_counter() - start
            round_ended = bool(done.metrics) or not updates  # an algorithm that never updated: any step
            if (round_ended and elapsed >= seconds) or elapsed >= ROUND_CAP_S:
                break
        rate = (done.env_steps - first) / elapsed
        episodes = prepared.eval_env.n_envs
        evaluate(prepared.algo, prepared.eval_env, episodes, settings.seed)  # warm-up: lazy allocations, JIT compiles
        start = time.perf_counter()
        evaluate(prepared.algo, prepared.eval_env, episodes, settings.seed + EVAL_SEED_OFFSET)
        eval_seconds = (time.perf_counter() - start) / episodes
    finally:
        prepared.close()
    return {"steps_per_s": rate, "eval_s_per_episode": eval_seconds, "timed_steps": done.env_steps - first,
            "timed_updates": timed_updates}


def kinds(argv: list[str]) -> tuple[Any, dict[Key, Any]]:
    """(base config, {kind: settings of its lowest-seed runnable job}) of a sweep."""
    from harness.config import load_settings
    from harness.sweep import prepare_jobs

    base, jobs, _ = prepare_jobs([*argv, "dry_run=true"])  # classified, nothing launched
    first: dict[Key, Any] = {}
    for job in sorted((j for j in jobs if j.runnable), key=lambda j: j.seed):
        first.setdefault(job.cost.key, job)
    return base, {key: load_settings(job.overrides)[0] for key, job in first.items()}


def merge(path: Path, rows: list[dict[str, Any]], machine_id: str, machine_info: dict[str, Any]) -> None:
    """Replace the rows of the same kinds in the JSON at `path` (kept: the other rows and
    the machines they cite)."""
    from harness.records import atomic_write_json

    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    fresh = {(r["family"], r["task"], r["algo"], r["device"]) for r in rows}
    kept = [r for r in table.get("rates", []) if (r["family"], r["task"], r["algo"], r["device"]) not in fresh]
    machines = table.get("machines", {}) | {machine_id: machine_info}
    used = {r["machine"] for r in kept + rows}
    table = {"about": __doc__.split("\n\n")[0].replace("\n", " "), "machines": {k: v for k, v in machines.items() if k in used},
             "rates": sorted(kept + rows, key=lambda r: (r["family"], r["task"], r["algo"], r["device"]))}
    atomic_write_json(path, table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="least timed training seconds per kind (whole rounds)")
    parser.add_argument("--out", default=None, help=f"JSON to merge the rates into (default: <results_dir>/{LOCAL_NAME})")
    parser.add_argument("--only-missing", action="store_true", help="skip kinds that already have a row in --out")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        base, found = kinds(overrides)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(base.results_dir) / LOCAL_NAME
    if args.only_missing and out.exists():
        have = {(r["family"], r["task"], r["algo"], r["device"]) for r in json.loads(out.read_text()).get("rates", [])}
        found = {k: v for k, v in found.items() if k not in have}
    info = machine(" ".join(["python -m harness.bench.rates", *(sys.argv[1:] if argv is None else argv)]))
    machine_id = f"{info['host']} {datetime.datetime.now().isoformat(timespec='microseconds')}"  # one per measurement
    rows = []
    for n, (key, settings) in enumerate(found.items(), 1):
        figures = measure(settings, args.seconds)
        rows.append(dict(zip(("family", "task", "algo", "device"), key)) | figures
                    | {"n_envs": settings.n_envs, "torch_threads": settings.torch_threads, "machine": machine_id})
        print(f"[{n}/{len(found)}] {key[0]}/{key[1]} {key[2]} {key[3]}: {figures['steps_per_s']:,.0f} steps/s, "
              f"{figures['eval_s_per_episode']:.2f} s per eval episode", flush=True)
        info["loadavg_end"] = list(os.getloadavg())
        merge(out, rows, machine_id, info)  # after every kind: an interrupted measurement keeps what it has
    print(f"{len(rows)} kinds measured; written {out} (load average {info['loadavg_start'][0]:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end, {info['cpu_count']} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
