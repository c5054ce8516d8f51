"""The bench's memory figure: a replay buffer of `capacity` transitions is allocated on each
device with every page written; the growth (resident set from /proc/self/statm on the CPU,
allocated memory on a GPU) is checked against the stated bytes per transition × capacity."""

from __future__ import annotations

import os

import torch

from algos.common.replay import ReplayBuffer
from harness.bench.timing import synchronize, task_spec


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def replay_memory(name: str, capacity: int, device: str = "cpu", n_envs: int = 20, copies: int = 1) -> dict:
    """Bytes per transition of the task's replay table, and the measured growth of `copies`
    buffers of `capacity` transitions (one per seed of a pack) with every page written
    (within 5 % + 16 MiB of the stated size = ok)."""
    spec = task_spec(name)
    used = resident_bytes if device == "cpu" else (lambda: torch.cuda.memory_allocated(device))
    before = used()
    buffers = [ReplayBuffer(spec, capacity, n_envs, 0.99, 1, device) for _ in range(copies)]
    for buffer in buffers:
        buffer.table.fill_(1.0)  # zeros() maps pages lazily: write them all
    synchronize(torch.device(device))
    grown = used() - before
    per_transition = buffers[0].layout.bytes_per_transition()
    stated = copies * per_transition * buffers[0].T * n_envs
    del buffers
    return {"task": name, "device": device, "capacity": capacity, "buffers": copies, "bytes/transition": per_transition,
            "stated MiB": stated / 2**20, "measured growth MiB": grown / 2**20, "ok": bool(grown <= 1.05 * stated + 16 * 2**20)}
