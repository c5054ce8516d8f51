"""The bench's packed-seed figures (`python -m harness.bench --pack 1 4 10`, docs/speed.md):
per task, packable algorithm, device and precision, the aggregate training rate of K seeds
trained together (run key pack=K: harness/loop.py pack_rounds over whole training cycles,
as the algorithm rows' train steps/s) against one lone run on the same device and threads:

- aggregate steps/s: K × each seed's env steps/s; `vs pack 1`: over the lone run's rate,
  so K would be perfect scaling (the GPU target: >= 5 at K = 10);
- mode: `batched` (one batched computation, the GPU default) or `in turn` (the lone
  learners one after another, the CPU default); on a CPU both are measured;
- on a CPU also K separate processes, each with max(1, threads // K) threads, running lone
  runs at the same time (started together, measured over the same window): `vs separate`
  is the pack's aggregate over theirs (the CPU target: >= 1, packing loses nothing). The
  threads are equal only where --threads >= K (`separate threads` says how many they held);
- `--pack-compile MODE` adds rows with the batched networks under torch.compile(mode=MODE),
  e.g. reduce-overhead (CUDA graphs), to see whether they pay.
Memory: K replay buffers of `--memory-capacity` transitions, stated = measured.
"""

from __future__ import annotations

import multiprocessing as mp

import torch

from algos.common.packed import InTurn, make_pack
from algos.common.registry import check_compatible, config_class
from envs.errors import ConfigError
from harness.bench.algos import pack_train_rate, prepare_for_bench
from harness.bench.timing import task_spec


def prepare_seeds(name: str, algo: str, device: str, n_envs: int, tiny: bool, k: int, extra: tuple[str, ...]) -> list:
    """K seeds' envs and learners; warm-up shortened to one batch (the rate after warm-up does
    not depend on its length, and K seeds' official 10k-step warm-ups would take longer
    than the measurement)."""
    prepared = []
    for seed in range(k):
        p = prepare_for_bench(name, algo, device, n_envs, tiny, (f"seed={seed}", *extra))
        config = p.algo.config
        config.warmup_steps = min(config.warmup_steps, -(-config.batch_size // n_envs) * n_envs)
        prepared.append(p)
    return prepared


def packed_rate(name: str, algo: str, device: str, n_envs: int, tiny: bool, k: int, batched: bool, seconds: float,
                extra: tuple[str, ...] = (), compile_mode: str | None = None) -> dict:
    """Each seed's train steps/s with K seeds trained together."""
    prepared = prepare_seeds(name, algo, device, n_envs, tiny, k, extra)
    try:
        pack = make_pack([p.algo for p in prepared], batched)
        if compile_mode:
            pack.compile(compile_mode)
        return pack_train_rate(pack, prepared, seconds)
    finally:
        for p in prepared:
            p.close()


def lone_process(name: str, algo: str, n_envs: int, tiny: bool, seed: int, threads: int, seconds: float, extra: tuple,
                 barrier, results) -> None:
    """One of the separate processes: a lone run on the CPU, timed after all have warmed up."""
    torch.set_num_threads(threads)
    [prepared] = prepare_seeds(name, algo, "cpu", n_envs, tiny, 1, (*extra, f"seed={seed}", f"torch_threads={threads}"))
    pack = InTurn([prepared.algo])
    pack_train_rate(pack, [prepared], 0.0)  # warm-up: the first update
    barrier.wait()
    results.put(pack_train_rate(pack, [prepared], seconds)["train steps/s"])
    prepared.close()


def separate_rate(name: str, algo: str, n_envs: int, tiny: bool, k: int, threads: int, seconds: float, extra: tuple) -> float:
    """Aggregate train steps/s of K lone runs in K processes at the same time."""
    ctx = mp.get_context("forkserver")
    barrier, results = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=lone_process, args=(name, algo, n_envs, tiny, seed, max(1, threads // k), seconds, extra,
                                                    barrier, results)) for seed in range(k)]
    for proc in procs:
        proc.start()
    rates = [results.get(timeout=600 + 10 * seconds) for _ in procs]
    for proc in procs:
        proc.join()
    return float(sum(rates))


def pack_rows(name: str, algo: str, device: str, n_envs: int, sizes: list[int], seconds: float, precisions: list[str],
              tiny: bool, compile_mode: str | None) -> list[dict]:
    """Rows for one (task, algorithm, device): per precision, mode and pack size."""
    rows = []
    modes = {"cpu": [False, True]}.get(torch.device(device).type, [True])
    for precision in precisions:
        extra = ("algo.bf16=true",) if precision == "bf16" else ()
        lone = packed_rate(name, algo, device, n_envs, tiny, 1, False, seconds, extra)
        base = {"task": name, "algo": algo, "device": device, "precision": precision, "threads": torch.get_num_threads()}
        rows.append(base | {"seeds": 1, "mode": "lone", "aggregate steps/s": lone["train steps/s"], "vs pack 1": 1.0,
                            "updates per 1k steps": lone["updates per 1k steps"]})
        for k in (k for k in sizes if k > 1):
            sized = []
            for batched, mode in [(b, m) for b in modes for m in ([None, compile_mode] if b and compile_mode else [None])]:
                label = ("batched" if batched else "in turn") + (f" + compile {mode}" if mode else "")
                try:
                    rate = packed_rate(name, algo, device, n_envs, tiny, k, batched, seconds, extra, mode)
                except Exception as exc:  # an experiment (torch.compile) that fails is a row saying why
                    if not mode:
                        raise
                    sized.append(base | {"seeds": k, "mode": label, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
                    continue
                sized.append(base | {"seeds": k, "mode": label, "aggregate steps/s": k * rate["train steps/s"],
                                     "vs pack 1": k * rate["train steps/s"] / lone["train steps/s"],
                                     "updates per 1k steps": rate["updates per 1k steps"]})
            if torch.device(device).type == "cpu":
                threads = torch.get_num_threads()
                separate = separate_rate(name, algo, n_envs, tiny, k, threads, seconds, extra)
                for row in (r for r in sized if "error" not in r):  # equal threads only where threads >= K
                    row |= {"separate steps/s": separate, "separate threads": k * max(1, threads // k),
                            "vs separate": row["aggregate steps/s"] / separate}
            rows += sized
    return rows


def bench_packs(names: list[str], algos: list[str], devices: list[str], n_envs: int, sizes: list[int], seconds: float,
                precisions: list[str], tiny: bool, compile_mode: str | None = None) -> list[dict]:
    """pack_rows for every compatible (task, packable algorithm, device)."""
    rows = []
    for name in names:
        spec = task_spec(name)
        for algo in algos:
            if config_class(algo).packed is None:
                continue
            try:
                check_compatible(algo, spec)
            except ConfigError:
                continue
            for device in devices:
                rows += pack_rows(name, algo, device, n_envs, sizes, seconds, precisions, tiny, compile_mode)
    return rows

