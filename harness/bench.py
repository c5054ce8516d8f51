"""Speed, measured as ratios: `python -m harness.bench [--seconds S] [--tasks mpe/simple_spread ...]`.

For each task it prints
- raw: the simulator's own step rate (one env, its native API, pre-drawn random actions);
- vec E: our VecEnv at n_envs = E, with the same pre-drawn actions, as a ratio to raw;
- loop E: the whole training loop (harness/train.py) driving `random`, as a ratio to vec E —
  the loop's own overhead (act, observe, bookkeeping) on top of the env.
Rates are env steps per second (one step of one copy = one env step).

With `--algos hasac hatd3 [--device cuda]` it also prints, per algorithm and task, with the
task's tuned config (conf/tuned) and the default n_envs:
- update/s: full updates (every agent, default batch) per second on a warmed-up buffer
  (off-policy algorithms; an on-policy update is one whole PPO iteration, seen in the next);
- train steps/s: env steps per second of the loop after warm-up at the default
  update-to-data ratio (train_every, updates_per_train), as a ratio to vec E for the same E:
  how much of the simulator's speed the learning leaves.
"""

from __future__ import annotations

import argparse
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
from harness.records import RunRecord
from harness.train import Settings, prepare, train

DEFAULT_TASKS = ("mpe/simple_spread", "mamujoco/HalfCheetah-2x3")
VEC_SIZES = (1, 8, 32)


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

    from envs.smac import MAPS, _smax_env

    info = MAPS[task]
    env = _smax_env(task, info, info.limit)
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


RAW = {"mpe": raw_mpe, "mamujoco": raw_mamujoco, "smac": raw_smac, "lag": raw_lag}
# What a family's raw rate measures (default: "raw simulator, 1 env").
RAW_LABEL = {"smac": "raw jaxmarl SMAX, vmap 32 envs", "lag": "raw JSBSim F-16s x 12 sub-steps"}
FAMILY_VEC_SIZES = {"smac": (1, 32, 128)}


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


def loop_rate(family: str, task: str, n_envs: int, seconds: float, base_rate: float) -> float:
    """The real train() with `random`; the rate comes from train.csv rows after the first."""
    budget = max(int(base_rate * seconds), 8 * n_envs)
    budget -= budget % n_envs
    algo_config = config_class("random")()
    settings = Settings(
        family=family, task=task, algo="random", algo_config=algo_config, env_fields={},
        budget=budget, n_envs=n_envs, eval_every=budget, eval_episodes=1, eval_n_envs=1,
        log_every=max(budget // 5 - (budget // 5) % n_envs, n_envs), progress=False,
    )
    prepared = prepare(settings)
    with tempfile.TemporaryDirectory() as tmp:
        record = RunRecord(Path(tmp))
        record.start("", "cpu")
        try:
            train(prepared, record)
        finally:
            prepared.close()
        rows = pd.read_csv(Path(tmp) / "train.csv")
    return float(rows["perf/sps"].iloc[1:].mean()) if len(rows) > 1 else float(rows["perf/sps"].iloc[0])


def bench_task(name: str, seconds: float) -> list[dict]:
    family, task = name.split("/", 1)
    raw = RAW[family](task, seconds)
    rows = [{"task": name, "what": RAW_LABEL.get(family, "raw simulator, 1 env"), "steps/s": raw, "ratio": 1.0,
             "ratio_to": "raw"}]
    for n_envs in FAMILY_VEC_SIZES.get(family, VEC_SIZES):
        vec = vec_rate(family, task, n_envs, seconds, None)
        rows.append({"task": name, "what": f"VecEnv n_envs={n_envs}", "steps/s": vec, "ratio": vec / raw, "ratio_to": "raw"})
        loop = loop_rate(family, task, n_envs, seconds, vec)
        rows.append({"task": name, "what": f"train loop (random) n_envs={n_envs}", "steps/s": loop,
                     "ratio": loop / vec, "ratio_to": f"VecEnv n_envs={n_envs}"})
    return rows


def algo_rates(name: str, algo: str, device: str, seconds: float, train_seconds: float) -> dict:
    """(update/s, training env-steps/s) for `algo` on `name` with its tuned config. The
    training rate is measured after warm-up over at least `train_seconds`, so it spans
    several update rounds; update/s (one full update: every agent, default batch) is
    timed on its own for off-policy algorithms, whose update() can be repeated freely."""
    from harness.run import load_settings

    family, task, overrides = split_name(name)
    settings, _ = load_settings([f"env={family}", f"task={task}", f"algo={algo}", f"device={device}", *overrides])
    prepared = prepare(settings)
    algo_obj, env, config = prepared.algo, prepared.env, settings.algo_config
    try:
        step, total, updates = env.reset(settings.seed), 0, 0

        def advance(env_steps: int) -> int:
            nonlocal step, total, updates
            end = total + env_steps
            while total < end:
                actions = algo_obj.act(step, explore=True)
                nxt = env.step(actions)
                total += env.n_envs
                algo_obj.observe(step, actions, nxt)
                while algo_obj.ready(total):
                    algo_obj.update()
                    updates += 1
                step = nxt
            return env_steps

        advance(getattr(config, "warmup_steps", 0) + env.n_envs)
        while updates == 0:  # until the first update: buffers are full, lazy allocations done
            advance(env.n_envs)
        before, updates_before = total, updates
        train_rate = timed_rate(lambda: advance(env.n_envs * 10), train_seconds)
        update_rate = (timed_rate(lambda: (algo_obj.update(), 1)[1], seconds)
                       if not config.on_policy else float("nan"))
    finally:
        prepared.close()
    return {"n_envs": settings.n_envs, "update/s": update_rate, "train steps/s": train_rate,
            "updates per 1k steps": 1000 * (updates - updates_before) / max(total - before, 1)}


def bench_algos(names: list[str], algos: list[str], device: str, seconds: float, train_seconds: float) -> list[dict]:
    from algos.common.registry import check_compatible

    rows = []
    for name in names:
        family, task, overrides = split_name(name)
        fields = env_fields(overrides)
        probe = envs.make(family, task, n_envs=1, seed=0, **fields)
        spec = probe.spec
        probe.close()
        for algo in algos:
            try:
                check_compatible(algo, spec)
            except ConfigError:
                continue  # e.g. QMIX on Box actions: no row rather than an error
            rates = algo_rates(name, algo, device, seconds, train_seconds)
            vec = vec_rate(family, task, rates["n_envs"], seconds, None, fields)
            rows.append({"task": name, "algo": algo, "device": device, **rates,
                         "ratio to VecEnv": rates["train steps/s"] / vec})
    return rows


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), help="family/task names")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    parser.add_argument("--algos", nargs="*", default=[], help="also time these algorithms' updates and training loop")
    parser.add_argument("--device", default="cpu", help="torch device for --algos (cpu, cuda)")
    parser.add_argument("--train-seconds", type=float, default=30.0, help="time the training loop runs after warm-up")
    parser.add_argument("--skip-env", action="store_true", help="only the --algos figures")
    parser.add_argument("--report", action="store_true", help="time harness.report on a generated 5x50x10 tree")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tables = []
    if not args.skip_env:
        tables.append(pd.DataFrame([row for name in args.tasks for row in bench_task(name, args.seconds)]))
    if args.report:
        tables.append(pd.DataFrame(bench_report()))
    if args.algos:
        tables.append(pd.DataFrame(bench_algos(args.tasks, args.algos, args.device, args.seconds, args.train_seconds)))
    with pd.option_context("display.float_format", "{:,.2f}".format, "display.width", 160):
        print("\n\n".join(table.to_string(index=False) for table in tables))


if __name__ == "__main__":
    main()
