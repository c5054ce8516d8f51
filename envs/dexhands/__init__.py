"""Bi-DexHands: two Shadow hands as two heterogeneous agents, E parallel envs simulated in
one GPU simulation.

- `tasks.py`: the HASAC paper's nine tasks (CatchAbreast, CatchOver2Underarm,
  DoorCloseInward, DoorOpenInward, DoorOpenOutward, LiftUnderarm, Over, Pen,
  TwoCatchUnderarm; episode lengths from the official tuned configs), `Config`, validation.
  Bi-DexHands' class names (`ShadowHandCatchAbreast`, ...) are accepted as aliases.
- `isaacgym_backend.py`: PKU-MARL/DexterousHands on NVIDIA Isaac Gym Preview 4, the
  paper's simulator (Python 3.6-3.8 only).
- `convert.py`: the tensor ↔ numpy conversion the backends share.

Each backend is a `BatchedEnv` (envs/base.py) built by `make_vec`: the simulator batches
the copies itself, `n_envs` is its number of envs.
"""

from __future__ import annotations

from envs.dexhands.tasks import EPISODE_LENGTHS, TASKS, Config, resolve_task, validate
from envs.errors import ConfigError

__all__ = ["EPISODE_LENGTHS", "TASKS", "Config", "env_factory", "make_vec", "preload", "resolve_task"]


def preload() -> None:
    """Load what must come before torch (Isaac Gym refuses to load after it); the harness
    calls this first for runs that name env=dexhands."""
    from envs.dexhands import isaacgym_backend

    isaacgym_backend.preload()


def make_vec(task: str, config: Config, n_envs: int, seed: int | None = None):
    """envs.make's hook: `n_envs` envs of `task` in one simulation."""
    from envs.dexhands import isaacgym_backend

    name = validate(task, config)
    if n_envs < 1:
        raise ConfigError(f"n_envs must be >= 1, got {n_envs}")
    return isaacgym_backend.make(name, config, n_envs, seed)


def env_factory(task: str, config: Config):
    """Never reached through envs.make (make_vec always answers); a direct call validates
    and says that the envs are batched inside the simulator."""
    name = validate(task, config)
    raise ConfigError(f"dexhands/{name} is batched inside the simulator: build it with envs.make")
