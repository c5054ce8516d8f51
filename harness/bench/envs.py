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
from harness.bench.timing import env_fields, split_name, timed_rate, vec_rate
from harness.layout import RunPath
from harness.records import RunRecord
from harness.settings import Settings
from harness.train import prepare, train

VEC_SIZES = (1, 20)  # one copy, and the official 20


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
            vec.append(vec_rate(family, task, n_envs, seconds / 2, fields))
            loop.append(loop_rate(family, task, n_envs, seconds / 2, vec[-1], fields))
        rows.append({"task": name, "what": "VecEnv", "n_envs": n_envs, "steps/s": np.mean(vec), "ratio": np.mean(vec) / raw,
                     "ratio_to": "raw"})
        rows.append({"task": name, "what": "train loop (random)", "n_envs": n_envs, "steps/s": np.mean(loop),
                     "ratio": np.mean(loop) / np.mean(vec), "ratio_to": "VecEnv"})
    return rows


