"""Bi-DexHands: two Shadow hands as two heterogeneous agents, E parallel envs simulated in
one GPU simulation.

- `tasks.py`: the HASAC paper's nine tasks (CatchAbreast, CatchOver2Underarm,
  DoorCloseInward, DoorOpenInward, DoorOpenOutward, LiftUnderarm, Over, Pen,
  TwoCatchUnderarm; episode lengths from the official tuned configs), `Config`, validation.
  Bi-DexHands' class names (`ShadowHandCatchAbreast`, ...) are accepted as aliases.
- `isaacgym_backend.py`: `env.backend=isaacgym`, PKU-MARL/DexterousHands on NVIDIA Isaac
  Gym Preview 4, the paper's simulator (Python 3.6-3.8 only), every task.
- `isaaclab_backend.py`: `env.backend=isaaclab`, Isaac Lab's `DirectMARLEnv` port of Over
  (`Isaac-Shadow-Hand-Over-Direct-v0`, Python 3.11), labelled `Over[isaaclab]`.
- `convert.py`: the tensor ↔ numpy conversion the backends share.

Each backend is a `BatchedEnv` (envs/base.py) built by `make_vec`: the simulator batches
the copies itself, `n_envs` is its number of envs.
"""

from __future__ import annotations

from typing import Sequence

from envs.dexhands.tasks import (EPISODE_LENGTHS, ISAACLAB_MODULES, ISAACLAB_TASKS, TASKS, Config, detected_backend,
                                 installed, resolve_task, validate)
from envs.errors import ConfigError, EnvUnavailable

__all__ = ["EPISODE_LENGTHS", "TASKS", "Config", "env_factory", "make_vec", "preload", "resolve_task"]


def preload(argv: Sequence[str] = ()) -> None:
    """Start what must come before torch, for a command line that names env=dexhands:
    Isaac Gym's import (it refuses to load after torch) when the run's backend is Isaac
    Gym, Isaac Lab's app (AppLauncher, headless) when it is Isaac Lab: named with
    env.backend=..., or else the detected default. Nothing else starts the app."""
    from envs.dexhands import isaacgym_backend, isaaclab_backend

    named = [a.split("=", 1)[1] for a in argv if a.startswith("env.backend=")]
    backends = {detected_backend() if b == "auto" else b for b in (named[-1].split(",") if named else ["auto"])}
    if "isaacgym" in backends:
        isaacgym_backend.preload()
    if "isaaclab" in backends and all(installed(m) for m in ISAACLAB_MODULES):
        isaaclab_backend.start_app(headless=True)  # missing: the env's build says what to install


def make_vec(task: str, config: Config, n_envs: int, seed: int | None = None):
    """envs.make's hook: `n_envs` envs of `task` in one simulation of the chosen backend."""
    from envs.dexhands import isaacgym_backend, isaaclab_backend

    name, backend = validate(task, config)
    if n_envs < 1:
        raise ConfigError(f"n_envs must be >= 1, got {n_envs}")
    if backend == "isaaclab":
        return isaaclab_backend.make(name, config, n_envs, seed)
    try:
        return isaacgym_backend.make(name, config, n_envs, seed)
    except EnvUnavailable as exc:
        if name not in ISAACLAB_TASKS:
            raise
        raise EnvUnavailable(f"{exc}; {name} also runs on Isaac Lab's port with env.backend=isaaclab "
                             "(Python 3.11; README: Bi-DexHands on a GPU node)") from None


def env_factory(task: str, config: Config):
    """Never reached through envs.make (make_vec always answers); a direct call validates
    and says that the envs are batched inside the simulator."""
    name, _ = validate(task, config)
    raise ConfigError(f"dexhands/{name} is batched inside the simulator: build it with envs.make")
