"""The Bi-DexHands task table (the HASAC paper's nine tasks), the family `Config`, the
backend choice and validation; nothing here imports a simulator."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

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
BACKENDS = ("auto", "isaacgym", "isaaclab")
ISAACLAB_TASKS = ("Over",)  # the tasks Isaac Lab has a port of (envs/dexhands/isaaclab_backend.py)
ISAACLAB_MODULES = ("isaacsim", "isaaclab", "isaaclab_tasks")


def installed(module: str) -> bool:
    """The module can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # already imported, without a spec
        return True


def detected_backend() -> str:
    """Isaac Lab where it is installed, else Isaac Gym (the paper's simulator)."""
    return "isaaclab" if all(installed(m) for m in ISAACLAB_MODULES) else "isaacgym"


@dataclass
class Config(FamilyConfig):
    backend: str = field(default_factory=detected_backend)
    """'isaacgym' (Bi-DexHands on Isaac Gym Preview 4: the paper's simulator, every task,
    Python 3.6-3.8), 'isaaclab' (Isaac Lab's port, task Over only, Python 3.11) or 'auto'
    (Isaac Lab where installed, else Isaac Gym). The default is that detection, made when
    the config is built, so config.yaml records the backend a run used."""
    sim_device: str = "cuda:0"
    """Physics device ('cuda:K' runs PhysX and the tensor pipeline on GPU K; 'cpu')."""
    rl_device: str = "cuda:0"
    """isaacgym only: where the task's output tensors are moved before we read them."""
    headless: bool = True
    """No viewer window (clusters); Isaac Lab starts its app headless."""
    episode_length: int | None = None
    """Steps per episode; None: the paper's value for the task (EPISODE_LENGTHS), on
    either backend (Isaac Lab's Over port would run 449 steps: 7.5 s at 60 Hz)."""
    clip_observations: float = 5.0
    """isaacgym only: bidexhands MultiVecTaskPython's observation clip (its default, as HARL)."""
    clip_actions: float = 1.0
    """Each agent's Box is [-clip_actions, clip_actions] (bidexhands' default; Isaac Lab
    maps [-1, 1] onto the joint ranges)."""
    physics_engine: str = "physx"
    """isaacgym only: 'physx' (every Bi-DexHands task) or 'flex'."""
    # The simulator batches inside one simulation: VecEnv's fields do not apply.
    vectorization: str = "simulator"
    """Fixed: the n_envs copies are the simulator's envs (Isaac Gym's numEnvs, Isaac Lab's
    num_envs) in one simulation."""

    def substitute(self) -> str | None:
        """Isaac Lab's port substitutes for the paper's Isaac Gym task."""
        return "isaaclab" if resolve_backend(self) == "isaaclab" else None


def resolve_backend(config: Config) -> str:
    if config.backend not in BACKENDS:
        raise ConfigError(f"env.backend must be one of {', '.join(BACKENDS)}, got {config.backend!r}")
    return detected_backend() if config.backend == "auto" else config.backend


def episode_length(task: str, config: Config) -> int:
    """Steps per episode: env.episode_length, else the paper's for the task."""
    return int(config.episode_length or EPISODE_LENGTHS[task])


def resolve_task(task: str) -> str:
    """Our task name from ours or Bi-DexHands' class name; ConfigError listing the valid ones."""
    name = task[len(PREFIX):] if task.startswith(PREFIX) else task
    if name not in EPISODE_LENGTHS:
        raise ConfigError(f"unknown dexhands task {task!r}; valid tasks: {', '.join(TASKS)}")
    return name


def validate(task: str, config: Config) -> tuple[str, str]:
    """Check names and fields without touching the simulator; (our task name, backend)."""
    name = resolve_task(task)
    backend = resolve_backend(config)
    if backend == "isaaclab" and name not in ISAACLAB_TASKS:
        raise ConfigError(
            f"dexhands task {name} has no Isaac Lab port (only {', '.join(ISAACLAB_TASKS)} has one): it runs on "
            "env.backend=isaacgym (Bi-DexHands on Isaac Gym Preview 4, Python 3.6-3.8, an NVIDIA GPU)"
        )
    if config.vectorization != "simulator":
        raise ConfigError("env.vectorization is fixed for dexhands: the simulator batches the envs in one simulation")
    if config.episode_length is not None and int(config.episode_length) < 1:
        raise ConfigError(f"env.episode_length must be >= 1, got {config.episode_length}")
    if config.physics_engine not in ("physx", "flex"):
        raise ConfigError(f"env.physics_engine must be 'physx' or 'flex', got {config.physics_engine!r}")
    if config.clip_actions <= 0 or config.clip_observations <= 0:
        raise ConfigError("env.clip_actions and env.clip_observations must be > 0")
    return name, backend
