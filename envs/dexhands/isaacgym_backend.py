"""The Isaac Gym backend of family `dexhands`: Bi-DexHands (PKU-MARL/DexterousHands) on
NVIDIA Isaac Gym Preview 4, the HASAC paper's simulator. Two Shadow hands are two
heterogeneous agents; E parallel envs are simulated in one Isaac Gym process on the GPU.

Why a batched class, not a SingleEnv per copy: Isaac Gym simulates all E envs in one
simulation with shared GPU tensors (one `task.step` advances every env), and a process
holds one such simulation. So `IsaacGymVecEnv` is a `BatchedEnv` and `n_envs` is Isaac
Gym's `numEnvs`.

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
from typing import Any, Sequence

import numpy as np

from envs.base import EnvSpec, EpisodeStats, Step, final_views
from envs.dexhands.convert import RestartSnapshots, device_actions, float32_box, host
from envs.dexhands.tasks import PREFIX, Config, episode_length
from envs.errors import EnvUnavailable

INSTALL = (
    "env=dexhands needs NVIDIA Isaac Gym Preview 4 (manual download: developer.nvidia.com/isaac-gym, "
    "then pip install -e isaacgym/python) and Bi-DexHands from source "
    "(git clone https://github.com/PKU-MARL/DexterousHands && pip install -e DexterousHands), "
    "on Python 3.6-3.8 with an NVIDIA GPU; the PyPI 'bidexhands' package is an empty placeholder"
)


def import_simulator():
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
        pass  # the clear error comes from import_simulator when an env is built


class IsaacGymVecEnv(RestartSnapshots):
    """E Bi-DexHands envs in one Isaac Gym simulation (an envs.base.BatchedEnv).
    `marl_env` is a bidexhands `MultiVecTaskPython` (or anything with its API)."""

    vectorization = "simulator"

    def __init__(self, marl_env: Any, task: str, clip_actions: float = 1.0):
        import torch  # here, not at module level: Isaac Gym must be imported before torch

        self._torch = torch
        self._env = marl_env
        self._task = marl_env.task
        self.n_envs = int(marl_env.num_envs)
        n_agents = int(marl_env.num_agents)
        obs_spaces = tuple(float32_box(s.shape, np.inf) for s in marl_env.observation_space)
        self._action_spaces = tuple(float32_box(s.shape, clip_actions) for s in marl_env.action_space)
        state_space = float32_box(marl_env.share_observation_space[0].shape, np.inf)
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
        self._stats = EpisodeStats(self.n_envs)
        self._closed = False

    # -- BatchedEnv API ----------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> Step:
        """Restart every env (Isaac Gym's seed is fixed at build time; see module doc)."""
        self._task.reset_buf[:] = 1  # the task resets flagged envs in its next pre-physics step
        obs_all, state_all, _ = self._env.reset()
        self._stats.reset()
        zeros = np.zeros(self.n_envs, bool)
        step = self._convert(obs_all, state_all, np.zeros(self.n_envs, np.float32), zeros, zeros.copy())
        step.info["episodes"] = []
        return step

    def step(self, actions: Sequence[np.ndarray]) -> Step:
        """`actions`: N × [E, A_i]; clipped to each agent's Box on the sim device."""
        joint = device_actions(self._torch, actions, self._action_spaces, self.n_envs, self._device)
        obs_all, state_all, reward_all, done_all, _, _ = self._env.step(joint)
        # Read the counters before the next step's pre-physics reset zeroes them.
        done = host(done_all[:, 0]).astype(bool)
        timeout = host(self._task.progress_buf >= self._task.max_episode_length).astype(bool)
        reward = host(reward_all[:, 0, 0]).astype(np.float32)
        truncated = done & timeout
        step = self._convert(obs_all, state_all, reward, done & ~truncated, truncated)
        step.info["episodes"] = self._stats.add(reward, done)
        return step

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self._task, "close", None) or getattr(self._env, "close", None)
        if close is not None:
            close()

    # -- conversion -------------------------------------------------------------------------
    def _convert(self, obs_all, state_all, reward, terminated, truncated) -> Step:
        """[E, N, D] tensors → per-agent numpy views; one device→host copy per tensor."""
        obs_host = host(obs_all)  # [E, N, D]: both agents have the same obs size in bidexhands
        obs = [obs_host[:, i] for i in range(self.spec.n_agents)]
        state = host(state_all[:, 0])
        alive = np.ones((self.n_envs, self.spec.n_agents), bool)
        step = Step(obs, state, reward, terminated, truncated, None, alive, {})
        # Lazy reset: the returned observation of a done row IS that episode's last one.
        step.info.update(final_views(step, np.flatnonzero(step.done), None))
        return step


def _snake(name: str) -> str:
    """ShadowHandCatchOver2Underarm -> shadow_hand_catch_over2underarm (bidexhands' task
    module names; its cfg files keep the class name, cfg/ShadowHandOver.yaml)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


def _build_marl_env(task: str, config: Config, n_envs: int, seed: int | None):
    """The bidexhands `MultiVecTaskPython` for `task` with `n_envs` Isaac Gym envs.
    Needs Isaac Gym and Bi-DexHands; not exercised by this repo's tests (no Isaac Gym here)."""
    import yaml

    gymapi, bidexhands = import_simulator()
    from bidexhands.tasks.hand_base.multi_vec_task import MultiVecTaskPython

    cls_name = PREFIX + task
    module = importlib.import_module(f"bidexhands.tasks.{_snake(cls_name)}")
    cfg_path = importlib.resources.files(bidexhands) / "cfg" / f"{cls_name}.yaml"  # cfg/ShadowHandOver.yaml
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["seed"] = -1 if seed is None else int(seed)
    cfg["env"]["seed"] = cfg["seed"]
    cfg["env"]["numEnvs"] = int(n_envs)
    cfg["env"]["episodeLength"] = episode_length(task, config)
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


def make(task: str, config: Config, n_envs: int, seed: int | None) -> IsaacGymVecEnv:
    """`n_envs` Bi-DexHands envs of our task `task` in one Isaac Gym simulation."""
    return IsaacGymVecEnv(_build_marl_env(task, config, n_envs, seed), task, config.clip_actions)
