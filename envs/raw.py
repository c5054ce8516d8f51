"""Each family's simulator driven through its own API, without our adapter: the floor the
bench (harness/bench/envs.py) compares `VecEnv` and the training loop against. A driver
takes a task and returns `step_once()`, which does one step with pre-drawn random actions
(resets included) and returns the env steps it did."""

from __future__ import annotations

from typing import Callable

import numpy as np

from envs.errors import ConfigError

Stepper = Callable[[], int]


def raw_mpe(task: str) -> Stepper:
    """mpe2's unwrapped AEC env driven one full agent cycle per step (its fastest API)."""
    from envs.mpe import import_task

    env = import_task(task).raw_env(max_cycles=25, continuous_actions=True)
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

    return step_once


def raw_mamujoco(task: str) -> Stepper:
    """The underlying single-agent Gymnasium MuJoCo env (the physics floor under MaMuJoCo)."""
    from envs.mamujoco import Config, build_env, resolve_task

    env = build_env(*resolve_task(task), Config()).single_agent_env
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

    return step_once


def raw_smac(task: str, n_envs: int = 32) -> Stepper:
    """JaxMARL's own rate: HeuristicEnemySMAX.step (its auto-reset) jitted and vmapped over
    `n_envs` copies, driven from Python with pre-drawn available actions, as a torch
    harness drives it (n_envs env steps per call; compiled before it is returned)."""
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
    return step_once


def raw_lag(task: str) -> Stepper:
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

    return step_once


def raw_football(task: str) -> Stepper:
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

    return step_once


DRIVERS: dict[str, tuple[Callable[[str], Stepper], str]] = {
    "mpe": (raw_mpe, "raw simulator, 1 env"),
    "mamujoco": (raw_mamujoco, "raw simulator, 1 env"),
    "smac": (raw_smac, "raw jaxmarl SMAX, vmap 32 envs"),
    "lag": (raw_lag, "raw JSBSim F-16s x 12 sub-steps"),
    "football": (raw_football, "raw simulator, 1 env"),
}
"""family -> (driver, what its rate measures)."""
BATCH_SIZES: dict[str, tuple[int, ...]] = {"smac": (1, 32, 128), "football": (1, 2, 4)}
"""The n_envs at which a family's batch is worth measuring, where not (1, 20): a vmapped
simulator gains from many copies, a heavy one is measured at few."""


def raw_stepper(family: str, task: str) -> tuple[Stepper, str]:
    """(step_once, what it measures) of a family's own simulator on `task`."""
    if family not in DRIVERS:
        raise ConfigError(f"no raw simulator driver for env={family}; drivers: {', '.join(DRIVERS)}")
    driver, label = DRIVERS[family]
    return driver(task), label
