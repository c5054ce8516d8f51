"""What every bench figure is measured with: a timed rate, rates measured in alternation,
task names with env overrides, and VecEnv's own rate (env steps per second: one step of one
copy = one env step)."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
import yaml

import envs
from algos.common.spaces import uniform_actions


def timed_rate(step_once: Callable[[], int], seconds: float) -> float:
    """Call `step_once` (returns env steps done) until `seconds` pass; env steps / s."""
    step_once()  # warm-up: first calls pay for lazy allocations
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        steps += step_once()
    return steps / elapsed


def interleaved(functions: dict[str, Callable[[], int]], seconds: float, rounds: int = 3) -> dict[str, float]:
    """Rates of several workloads measured in alternation (rounds × seconds/rounds each),
    median per workload: a load change on a shared machine affects all of them alike."""
    rates: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            rates[name].append(timed_rate(function, seconds / rounds))
    return {name: float(np.median(values)) for name, values in rates.items()}


def synchronize(device: torch.device) -> None:
    """GPU kernels are asynchronous: wait for them before reading the clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def split_name(name: str) -> tuple[str, str, list[str]]:
    """'family/task[@env.k=v@...]' → (family, task, overrides): e.g.
    mpe/simple_spread@env.continuous_actions=false for the discrete variant."""
    head, *overrides = name.split("@")
    family, task = head.split("/", 1)
    return family, task, overrides


def env_fields(overrides: list[str]) -> dict:
    """The `env.` overrides as envs.make keyword arguments (YAML-typed values)."""
    return {k.removeprefix("env."): yaml.safe_load(v) for k, v in (o.split("=", 1) for o in overrides)
            if k.startswith("env.")}


def task_spec(name: str) -> envs.EnvSpec:
    """The spec of a bench task name (one copy built and closed)."""
    family, task, overrides = split_name(name)
    probe = envs.make(family, task, n_envs=1, seed=0, **env_fields(overrides))
    spec = probe.spec
    probe.close()
    return spec


def vec_rate(family: str, task: str, n_envs: int, seconds: float, fields: dict | None = None) -> float:
    """VecEnv at `n_envs` copies stepped with 16 pre-drawn uniform actions."""
    env = envs.make(family, task, n_envs=n_envs, seed=0, **dict(fields or {}))
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
