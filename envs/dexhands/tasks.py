"""The Bi-DexHands task table (the HASAC paper's nine tasks), the family `Config`, and its
validation; nothing here imports a simulator."""

from __future__ import annotations

from dataclasses import dataclass

from envs.base import FamilyConfig
from envs.errors import ConfigError

# task -> episode length (the paper's, HARL's dexhands env configs)
EPISODE_LENGTHS = {
    "CatchAbreast": 150,
    "CatchOver2Underarm": 75,
    "DoorCloseInward": 250,
    "DoorOpenInward": 250,
    "DoorOpenOutward": 250,
    "LiftUnderarm": 500,
    "Over": 75,
    "Pen": 125,
    "TwoCatchUnderarm": 75,
}
TASKS = tuple(EPISODE_LENGTHS)
PREFIX = "ShadowHand"  # Bi-DexHands' class names: ShadowHand<Task>


@dataclass
class Config(FamilyConfig):
    sim_device: str = "cuda:0"
    """Isaac Gym physics device ('cuda:K' runs PhysX and the tensor pipeline on GPU K; 'cpu')."""
    rl_device: str = "cuda:0"
    """Where the task's output tensors are moved before we read them (bidexhands rl_device)."""
    headless: bool = True
    """No viewer window (clusters); otherwise Bi-DexHands renders on the sim GPU."""
    episode_length: int | None = None
    """Steps per episode; None: the paper's value for the task (EPISODE_LENGTHS)."""
    clip_observations: float = 5.0
    """bidexhands MultiVecTaskPython's observation clip (its default, as HARL)."""
    clip_actions: float = 1.0
    """Each agent's Box is [-clip_actions, clip_actions] (bidexhands' default)."""
    physics_engine: str = "physx"
    """'physx' (every Bi-DexHands task) or 'flex'."""
    # The simulator batches inside one simulation: VecEnv's fields do not apply.
    vectorization: str = "simulator"
    """Fixed: the n_envs copies are the simulator's envs (Isaac Gym's numEnvs) in one simulation."""


def resolve_task(task: str) -> str:
    """Our task name from ours or Bi-DexHands' class name; ConfigError listing the valid ones."""
    name = task[len(PREFIX):] if task.startswith(PREFIX) else task
    if name not in EPISODE_LENGTHS:
        raise ConfigError(f"unknown dexhands task {task!r}; valid tasks: {', '.join(TASKS)}")
    return name


def validate(task: str, config: Config) -> str:
    """Check names and fields without touching the simulator; returns our task name."""
    name = resolve_task(task)
    if config.vectorization != "simulator":
        raise ConfigError("env.vectorization is fixed for dexhands: the simulator batches the envs in one simulation")
    if config.episode_length is not None and int(config.episode_length) < 1:
        raise ConfigError(f"env.episode_length must be >= 1, got {config.episode_length}")
    if config.physics_engine not in ("physx", "flex"):
        raise ConfigError(f"env.physics_engine must be 'physx' or 'flex', got {config.physics_engine!r}")
    if config.clip_actions <= 0 or config.clip_observations <= 0:
        raise ConfigError("env.clip_actions and env.clip_observations must be > 0")
    return name
