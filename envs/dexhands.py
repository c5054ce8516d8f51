"""Bi-DexHands (PKU-MARL/DexterousHands on NVIDIA Isaac Gym): two Shadow hands as two
heterogeneous agents, E parallel envs simulated in one Isaac Gym process on the GPU.

Tasks (the HASAC paper's, from the official tuned configs; episode lengths as in
algorithms_and_paper.md §3): CatchAbreast, CatchOver2Underarm, DoorCloseInward,
DoorOpenInward, DoorOpenOutward, LiftUnderarm, Over, Pen, TwoCatchUnderarm. Bi-DexHands'
class names (`ShadowHandCatchAbreast`, ...) are accepted as aliases.

Why a batched class, not a SingleEnv per copy: Isaac Gym simulates all E envs in one
simulation with shared GPU tensors (one `task.step` advances every env), and a process
holds one such simulation. A per-copy SingleEnv inside `VecEnv` would need one Isaac Gym
process per copy. So `DexHandsVecEnv` speaks `VecEnv`'s public API (spec, n_envs, reset,
step, get_state, set_state, close) itself, `n_envs` is Isaac Gym's `numEnvs`, and
`make_vec` builds it; `envs.make` must call `make_vec` for families that define it
(not wired yet: envs/__init__.py is shared).

What it converts (the bidexhands multi-agent API, `MultiVecTaskPython`):
- `step(actions)`: actions N × [E, A_i] tensors → (obs [E, N, D], state [E, N, S],
  reward [E, N, 1], done [E, N], info, None); `reset()` → (obs, state, None).
- Each agent observes its own hand block plus the shared object block; the state is the
  whole (clipped) observation buffer, repeated per agent — we take agent 0's copy.
- Reward and done are the same for both agents: the team reward is agent 0's.
- The tensors live on the sim device. `Step` holds numpy (the algorithms' buffers are
  numpy), so each step makes one device→host transfer per tensor (obs, state, reward,
  done); the per-agent split and `final_obs` are views of those arrays, no further copy.
Isaac Gym conventions this keeps (documented deviations from DESIGN's auto-reset):
- Finished envs reset lazily at the start of the NEXT step (the task's pre-physics
  reset), so at a done row `Step.obs` is the episode's last observation (equal to
  `info["final_obs"]`) and the next action is applied to the freshly reset env, as in
  every Isaac Gym RL library and in HARL.
- Time-limit ends are `truncated` (the task's `progress_buf` reached
  `max_episode_length`); other resets (object dropped, success) are `terminated`.
- Seeds are fixed when the simulation is built (`seed` of `envs.make`); `reset(seed)`
  restarts every env but cannot reseed Isaac Gym. Snapshots are not exact: `set_state`
  restarts every env (resume keeps the learner exact, not the episodes in flight).
"""

from __future__ import annotations

import importlib
import importlib.resources
import importlib.util
import re
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from gymnasium import spaces

from envs.base import EnvSpec, FamilyConfig, Step
from envs.errors import ConfigError, EnvUnavailable

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

INSTALL = (
    "env=dexhands needs NVIDIA Isaac Gym Preview 4 (manual download: developer.nvidia.com/isaac-gym, "
    "then pip install -e isaacgym/python) and Bi-DexHands from source "
    "(git clone https://github.com/PKU-MARL/DexterousHands && pip install -e DexterousHands), "
    "on Python 3.6-3.8 with an NVIDIA GPU; the PyPI 'bidexhands' package is an empty placeholder"
)


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
    # Isaac Gym batches inside one simulation: these VecEnv fields do not apply.
    vectorization: str = "isaacgym"
    """Fixed: the n_envs copies are Isaac Gym's numEnvs in one simulation."""


def resolve_task(task: str) -> str:
    """Our task name from ours or Bi-DexHands' class name; ConfigError listing the valid ones."""
    name = task[len(PREFIX):] if task.startswith(PREFIX) else task
    if name not in EPISODE_LENGTHS:
        raise ConfigError(f"unknown dexhands task {task!r}; valid tasks: {', '.join(TASKS)}")
    return name


def validate(task: str, config: Config) -> str:
    """Check names and fields without touching the simulator; returns our task name."""
    name = resolve_task(task)
    if config.vectorization != "isaacgym":
        raise ConfigError("env.vectorization is fixed for dexhands: Isaac Gym batches the envs in one simulation")
    if config.episode_length is not None and int(config.episode_length) < 1:
        raise ConfigError(f"env.episode_length must be >= 1, got {config.episode_length}")
    if config.physics_engine not in ("physx", "flex"):
        raise ConfigError(f"env.physics_engine must be 'physx' or 'flex', got {config.physics_engine!r}")
    if config.clip_actions <= 0 or config.clip_observations <= 0:
        raise ConfigError("env.clip_actions and env.clip_observations must be > 0")
    return name


def _import_simulator():
    """(isaacgym.gymapi, bidexhands) or EnvUnavailable with the one line of what to install.
    Isaac Gym refuses to load after torch: that case gets its own line."""
    try:
        from isaacgym import gymapi
    except ImportError as exc:
        if "before isaacgym" in str(exc):
            raise EnvUnavailable(
                "env=dexhands: isaacgym must be imported before torch; call envs.dexhands.preload() first"
            ) from None
        version = f"this is Python {sys.version_info[0]}.{sys.version_info[1]}"
        raise EnvUnavailable(f"{INSTALL} ({version}; {exc})") from None
    try:
        import bidexhands
    except ImportError as exc:
        raise EnvUnavailable(f"{INSTALL} ({exc})") from None
    if not hasattr(bidexhands, "__path__") or importlib.util.find_spec("bidexhands.tasks") is None:
        raise EnvUnavailable(f"{INSTALL} (bidexhands has no tasks: the PyPI placeholder is installed)")
    return gymapi, bidexhands


def preload() -> None:
    """Import Isaac Gym before anything imports torch (Isaac Gym refuses otherwise); a
    harness entry point calls this first for env=dexhands."""
    try:
        import isaacgym  # noqa: F401
    except ImportError:
        pass  # the clear error comes from _import_simulator when an env is built


class DexHandsVecEnv:
    """E Bi-DexHands envs in one Isaac Gym simulation behind `VecEnv`'s public API.
    `marl_env` is a bidexhands `MultiVecTaskPython` (or anything with its API)."""

    vectorization = "isaacgym"

    def __init__(self, marl_env: Any, task: str, clip_actions: float = 1.0):
        import torch  # here, not at module level: Isaac Gym must be imported before torch

        self._torch = torch
        self._env = marl_env
        self._task = marl_env.task
        self.n_envs = int(marl_env.num_envs)
        n_agents = int(marl_env.num_agents)
        obs_spaces = tuple(_float32_box(s.shape, np.inf) for s in marl_env.observation_space)
        self._action_spaces = tuple(_float32_box(s.shape, clip_actions) for s in marl_env.action_space)
        state_space = _float32_box(marl_env.share_observation_space[0].shape, np.inf)
        self.spec = EnvSpec(
            family="dexhands",
            task=task,
            n_agents=n_agents,
            obs_spaces=obs_spaces,
            state_space=state_space,
            action_spaces=self._action_spaces,
            episode_limit=int(self._task.max_episode_length),
        )
        self._device = self._task.reset_buf.device
        self._return = np.zeros(self.n_envs, np.float64)
        self._length = np.zeros(self.n_envs, np.int64)
        self._closed = False

    # -- VecEnv API -------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> Step:
        """Restart every env (Isaac Gym's seed is fixed at build time; see module doc)."""
        self._task.reset_buf[:] = 1  # the task resets flagged envs in its next pre-physics step
        obs_all, state_all, _ = self._env.reset()
        self._return[:], self._length[:] = 0.0, 0
        zeros = np.zeros(self.n_envs, bool)
        step = self._convert(obs_all, state_all, np.zeros(self.n_envs, np.float32), zeros, zeros.copy())
        step.info["episodes"] = []
        return step

    def step(self, actions: Sequence[np.ndarray]) -> Step:
        """`actions`: N × [E, A_i]; clipped to each agent's Box on the sim device."""
        torch = self._torch
        joint = []
        for a, space in zip(actions, self._action_spaces):
            tensor = torch.as_tensor(np.asarray(a, np.float32), device=self._device)
            joint.append(tensor.reshape(self.n_envs, *space.shape).clamp(float(space.low[0]), float(space.high[0])))
        obs_all, state_all, reward_all, done_all, _, _ = self._env.step(joint)
        # Read the counters before the next step's pre-physics reset zeroes them.
        done = _host(done_all[:, 0]).astype(bool)
        timeout = _host(self._task.progress_buf >= self._task.max_episode_length).astype(bool)
        reward = _host(reward_all[:, 0, 0]).astype(np.float32)
        truncated = done & timeout
        step = self._convert(obs_all, state_all, reward, done & ~truncated, truncated)
        self._return += reward
        self._length += 1
        step.info["episodes"] = [
            {"return": float(self._return[k]), "length": int(self._length[k]), "env_index": int(k)}
            for k in np.flatnonzero(done)
        ]
        self._return[done], self._length[done] = 0.0, 0
        return step

    def get_state(self) -> list:
        """Isaac Gym cannot snapshot its simulation: a marker per env (see set_state)."""
        return [{"task": f"dexhands/{self.spec.task}", "exact": False}] * self.n_envs

    def set_state(self, states: Sequence) -> None:
        """Not exact: every env restarts (the learner's state resumes exactly)."""
        if len(states) != self.n_envs:
            raise ValueError(f"{len(states)} env states for {self.n_envs} env copies")
        self.reset()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self._task, "close", None) or getattr(self._env, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "DexHandsVecEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- conversion -------------------------------------------------------------------------
    def _convert(self, obs_all, state_all, reward, terminated, truncated) -> Step:
        """[E, N, D] tensors → per-agent numpy views; one device→host copy per tensor."""
        obs_host = _host(obs_all)  # [E, N, D]: both agents have the same obs size in bidexhands
        obs = [obs_host[:, i] for i in range(self.spec.n_agents)]
        state = _host(state_all[:, 0])
        alive = np.ones((self.n_envs, self.spec.n_agents), bool)
        step = Step(obs, state, reward, terminated, truncated, None, alive, {})
        # Lazy reset: the returned observation of a done row IS that episode's last one.
        step.info.update(final_obs=obs, final_state=state, final_avail_actions=None, final_alive=alive)
        return step


def _host(tensor) -> np.ndarray:
    """A float32/bool numpy array of a (possibly GPU) tensor: the one transfer per tensor."""
    array = tensor.detach().cpu().numpy()
    return array.astype(np.float32, copy=False) if array.dtype.kind == "f" else array


def _float32_box(shape: tuple[int, ...], bound: float) -> spaces.Box:
    return spaces.Box(-bound, bound, shape=tuple(shape), dtype=np.float32)


def _snake(name: str) -> str:
    """ShadowHandCatchOver2Underarm -> shadow_hand_catch_over2underarm (bidexhands' module
    and cfg file names)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


def _build_marl_env(task: str, config: Config, n_envs: int, seed: int | None):
    """The bidexhands `MultiVecTaskPython` for `task` with `n_envs` Isaac Gym envs.
    Needs Isaac Gym and Bi-DexHands; not exercised by this repo's tests (no Isaac Gym here)."""
    import yaml

    gymapi, bidexhands = _import_simulator()
    from bidexhands.tasks.hand_base.multi_vec_task import MultiVecTaskPython

    cls_name = PREFIX + task
    module = importlib.import_module(f"bidexhands.tasks.{_snake(cls_name)}")
    cfg_path = importlib.resources.files(bidexhands) / "cfg" / f"{_snake(cls_name)}.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["seed"] = -1 if seed is None else int(seed)
    cfg["env"]["seed"] = cfg["seed"]
    cfg["env"]["numEnvs"] = int(n_envs)
    cfg["env"]["episodeLength"] = int(config.episode_length or EPISODE_LENGTHS[task])
    sim_params = _sim_params(gymapi, cfg.get("sim", {}), config)
    device_type, _, device_id = config.sim_device.partition(":")
    task_obj = getattr(module, cls_name)(
        cfg=cfg,
        sim_params=sim_params,
        physics_engine=gymapi.SIM_PHYSX if config.physics_engine == "physx" else gymapi.SIM_FLEX,
        device_type=device_type,
        device_id=int(device_id or 0),
        headless=config.headless,
        agent_index=[[[0, 1, 2, 3, 4, 5]], [[0, 1, 2, 3, 4, 5]]],  # one agent per hand
        is_multi_agent=True,
    )
    return MultiVecTaskPython(task_obj, config.rl_device, config.clip_observations, config.clip_actions)


def _sim_params(gymapi, sim_cfg: dict, config: Config):
    """Isaac Gym SimParams from the task yaml's `sim` block, GPU pipeline on a CUDA device."""
    params = gymapi.SimParams()
    params.dt = float(sim_cfg.get("dt", 1.0 / 60.0))
    params.substeps = int(sim_cfg.get("substeps", 2))
    params.up_axis = gymapi.UP_AXIS_Z
    params.gravity = gymapi.Vec3(*sim_cfg.get("gravity", [0.0, 0.0, -9.81]))
    on_gpu = config.sim_device.startswith("cuda")
    params.use_gpu_pipeline = on_gpu
    physx = sim_cfg.get("physx", {})
    for key, value in physx.items():
        if hasattr(params.physx, key):
            setattr(params.physx, key, value)
    params.physx.use_gpu = on_gpu
    return params


def make_vec(task: str, config: Config, n_envs: int, seed: int | None = None) -> DexHandsVecEnv:
    """`n_envs` Bi-DexHands envs in one Isaac Gym simulation (what `envs.make` returns)."""
    name = validate(task, config)
    if n_envs < 1:
        raise ConfigError(f"n_envs must be >= 1, got {n_envs}")
    marl_env = _build_marl_env(name, config, n_envs, seed)
    return DexHandsVecEnv(marl_env, name, config.clip_actions)


def env_factory(task: str, config: Config):
    """Validate names and fields, then the simulator (EnvUnavailable without Isaac Gym).
    There is no per-copy factory (Isaac Gym batches the envs): `envs.make` must route
    families that define `make_vec` to it; until it does, say so in one line."""
    name = validate(task, config)
    _import_simulator()
    raise ConfigError(f"dexhands/{name} is batched inside Isaac Gym: build it with envs.dexhands.make_vec "
                      "(envs.make does not route to it yet)")
