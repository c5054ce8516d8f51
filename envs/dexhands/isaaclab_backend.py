"""The Isaac Lab backend of family `dexhands`: Isaac Lab's port of Bi-DexHands' Over task,
`Isaac-Shadow-Hand-Over-Direct-v0` (isaac-sim/IsaacLab,
source/isaaclab_tasks/isaaclab_tasks/direct/shadow_hand_over/), a `DirectMARLEnv` with the
agents `right_hand` and `left_hand`, on Isaac Sim's PhysX. It runs on Python 3.11 from
PyPI, where the Isaac Gym backend needs Python 3.6-3.8. Only Over has a port.

The port is not the paper's task: its observations, reward, object and episode length
differ (docs/envs.md lists what the sources show), so every spec is labelled
`Over[isaaclab]`, carries a `results_note`, and its results are filed as `Over@isaaclab`
(never compared with the paper's Isaac Gym numbers).

What it converts (the `DirectMARLEnv` API; facts from direct_marl_env.py):
- `reset()` → (obs dict, extras); `step(action dict)` → (obs, reward, terminated,
  time_out, extras), every value a dict keyed by agent of [num_envs, ...] tensors on
  `env.device`; `state()` → the [num_envs, state_dim] central state.
- A sub-env resets inside `step` when all agents are terminated or all timed out: our
  row is `terminated` when every agent terminated, else `truncated` when every agent timed
  out. The team reward is the first agent's (the two are equal in Over).
- The reset happens before `step` computes its observations, so the returned view of an
  ended row is the new episode's first one. The adapter wraps the env's `_reset_idx` (the
  direct workflow's reset hook) to compute the observations and state of the rows about to
  restart just before they do: `info["final_*"]` is the true last view, as on every family.
- Agent i is `possible_agents[i]` (right hand, then left hand); actions are clipped to
  ±`clip_actions` (the task maps [-1, 1] onto each joint's range).
- One device→host copy per step (observations, state, reward and flags packed on the
  device first), one more on steps where an episode ended (its final view).
- One simulation per process (Isaac Lab refuses a second simulation context): `make`
  builds the first in this process and any other while it is open (the harness's
  evaluation env) in a worker process (`envs.base.ProcessBatchedEnv`).
- Seeds: `DirectMARLEnv.seed` reseeds torch, numpy and random process-wide, so the seed
  goes into the env config once, when the simulation is built; `reset(seed)` restarts
  every env without reseeding. Isaac Sim cannot snapshot its simulation: `set_state`
  restarts every env (resume keeps the learner exact, not the episodes in flight).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any, Sequence

import numpy as np

from envs.base import BatchedEnv, EnvSpec, EpisodeStats, ProcessBatchedEnv, Step, final_views
from envs.dexhands import tasks
from envs.dexhands.convert import RestartSnapshots, device_actions, float32_box, host
from envs.dexhands.tasks import ISAACLAB_MODULES, Config, episode_length
from envs.errors import ConfigError, EnvUnavailable

# our task -> Isaac Lab's gym id (its only Bi-DexHands port)
TASK_IDS = {"Over": "Isaac-Shadow-Hand-Over-Direct-v0"}
INSTALL = (
    "env.backend=isaaclab needs Isaac Lab 2.3 with Isaac Sim 5.1 (Python 3.11, Linux x86_64 with GLIBC 2.35+, "
    "an NVIDIA RTX GPU and its driver): pip install 'isaaclab[isaacsim,all]==2.3.2.post1' "
    "--extra-index-url https://pypi.nvidia.com (README: Bi-DexHands)"
)
RESULTS_NOTE = ("Isaac Lab's port of Bi-DexHands Over (Isaac Sim PhysX; its own observations, reward "
                "2·exp(−20·d) and ball), not the paper's Isaac Gym task (docs/envs.md)")
ONE_SIMULATION = "env.backend=isaaclab: Isaac Lab runs one simulation per process and one is open in this process"
_APP: list = []  # the one Isaac Sim app of this process (Isaac Sim allows one per process)
_OPEN: list = []  # the envs whose simulation this process holds (at most one)


def import_simulator() -> None:
    """EnvUnavailable with the install line unless isaacsim, isaaclab and isaaclab_tasks
    are importable (checked without importing them: that needs the app running)."""
    missing = [name for name in ISAACLAB_MODULES if not tasks.installed(name)]
    if missing:
        version = f"this is Python {sys.version_info[0]}.{sys.version_info[1]}"
        raise EnvUnavailable(f"{INSTALL} ({version}; not installed: {', '.join(missing)})")


def start_app(headless: bool = True) -> Any:
    """Isaac Sim's app, started once per process (AppLauncher, headless unless asked).
    Isaac Lab's modules import only once it runs, and it should start before torch."""
    if not _APP:
        import_simulator()
        from isaaclab.app import AppLauncher

        _APP.append(AppLauncher(headless=headless).app)
    return _APP[0]


def make(task: str, config: Config, n_envs: int, seed: int | None) -> BatchedEnv:
    """`n_envs` envs of the port of `task` in one Isaac Lab simulation on `sim_device`: in
    this process, or in a worker process when this one already holds a simulation (the
    harness's evaluation env beside its training env)."""
    if _OPEN:
        return ProcessBatchedEnv(partial(build, task, config, n_envs, seed))
    return build(task, config, n_envs, seed)


def build(task: str, config: Config, n_envs: int, seed: int | None) -> IsaacLabVecEnv:
    """The port of `task` in this process's simulation (the app starts if it has not)."""
    start_app(config.headless)
    import gymnasium as gym
    import isaaclab_tasks  # noqa: F401  (registers the Isaac-* gym ids)
    from isaaclab_tasks.utils import parse_env_cfg

    cfg = parse_env_cfg(TASK_IDS[task], device=config.sim_device, num_envs=n_envs)
    cfg.seed = seed
    limit = episode_length(task, config)
    # Over times out when episode_length_buf >= max_episode_length - 1, where
    # max_episode_length = ceil(episode_length_s / step_dt): (limit + 0.5) steps of time
    # give max_episode_length = limit + 1, so episodes last `limit` steps.
    cfg.episode_length_s = (limit + 0.5) * cfg.sim.dt * cfg.decimation
    try:
        env = gym.make(TASK_IDS[task], cfg=cfg).unwrapped
    except RuntimeError as exc:
        if "already exists" not in str(exc):
            raise
        raise ConfigError(ONE_SIMULATION) from None
    return IsaacLabVecEnv(env, task, limit, config.clip_actions, owns_simulation=True)


class IsaacLabVecEnv(RestartSnapshots):
    """E envs of one `DirectMARLEnv` simulation (an envs.base.BatchedEnv). `marl_env` is
    the unwrapped Isaac Lab env (or anything with its API)."""

    vectorization = "simulator"

    def __init__(self, marl_env: Any, task: str, episode_limit: int, clip_actions: float = 1.0,
                 owns_simulation: bool = False):
        import torch

        self._torch = torch
        self._env = marl_env
        self._agents = list(marl_env.possible_agents)
        self.n_envs = int(marl_env.num_envs)
        self._obs_dims = [int(np.prod(marl_env.observation_spaces[a].shape)) for a in self._agents]
        self._action_spaces = tuple(float32_box(marl_env.action_spaces[a].shape, clip_actions) for a in self._agents)
        self.spec = EnvSpec(
            family="dexhands",
            task=f"{task}[isaaclab]",  # the backend label: a port must never pass for the paper's task
            n_agents=len(self._agents),
            obs_spaces=tuple(float32_box((d,), np.inf) for d in self._obs_dims),
            state_space=float32_box(marl_env.state_space.shape, np.inf),
            action_spaces=self._action_spaces,
            episode_limit=int(episode_limit),
            results_note=RESULTS_NOTE,
        )
        self._stats = EpisodeStats(self.n_envs)
        self._ending: tuple | None = None  # (obs dict, state) of every row, captured before a reset
        self._stepping = False
        self._capture_resets(marl_env)
        self._closed = False
        if owns_simulation:
            _OPEN.append(self)

    # -- BatchedEnv API ----------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> Step:
        """Restart every env (the seed was fixed when the simulation was built)."""
        obs, _ = self._env.reset()
        self._stats.reset()
        zeros = self._torch.zeros(self.n_envs, device=self._env.device)
        step = self._to_step(obs, self._env.state(), zeros, zeros.bool(), zeros.bool())
        step.info.update(final_views(step, np.array([], int)))
        step.info["episodes"] = []
        return step

    def step(self, actions: Sequence[np.ndarray]) -> Step:
        """`actions`: N × [E, A_i] in agent order; clipped to each agent's Box on the device."""
        torch = self._torch
        joint = device_actions(torch, actions, self._action_spaces, self.n_envs, self._env.device)
        self._ending, self._stepping = None, True
        try:
            obs, reward, terminated, time_out, _ = self._env.step(dict(zip(self._agents, joint)))
        finally:
            self._stepping = False
        all_terminated = torch.stack([terminated[a] for a in self._agents]).all(0)
        all_timed_out = torch.stack([time_out[a] for a in self._agents]).all(0) & ~all_terminated
        step = self._to_step(obs, self._env.state(), reward[self._agents[0]], all_terminated, all_timed_out)
        rows = np.flatnonzero(step.done)
        step.info.update(final_views(step, rows, self._final_rows(rows)))
        step.info["episodes"] = self._stats.add(step.reward, step.done)
        return step

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._env.close()  # the app stays: Isaac Sim starts once per process
            if self in _OPEN:
                _OPEN.remove(self)

    # -- conversion ----------------------------------------------------------------------------
    def _capture_resets(self, marl_env: Any) -> None:
        """Wrap the env's `_reset_idx` so that, inside `step`, the observations and state of
        every row are computed once more just before the ended rows restart (a full `reset`
        needs no last view)."""
        restart = marl_env._reset_idx

        def reset_idx(env_ids, *args, **kwargs):
            if self._stepping and self._ending is None:
                self._ending = (marl_env._get_observations(), marl_env.state())
            return restart(env_ids, *args, **kwargs)

        marl_env._reset_idx = reset_idx

    def _to_step(self, obs: dict, state, reward, terminated, truncated) -> Step:
        """One device→host copy: every agent's observation, the state, reward and flags
        packed into one [E, ·] float32 tensor, split on the host."""
        torch = self._torch
        parts = [obs[a].reshape(self.n_envs, -1) for a in self._agents]
        parts += [state.reshape(self.n_envs, -1), reward.reshape(-1, 1), terminated.reshape(-1, 1), truncated.reshape(-1, 1)]
        packed = host(torch.cat([p.float() for p in parts], dim=1))
        cuts = np.cumsum([p.shape[1] for p in parts])[:-1]
        *agent_obs, state_h, reward_h, term_h, trunc_h = np.split(packed, cuts, axis=1)
        alive = np.ones((self.n_envs, self.spec.n_agents), bool)
        return Step([o.copy() for o in agent_obs], state_h.copy(), reward_h[:, 0].copy(), term_h[:, 0] > 0.5,
                    trunc_h[:, 0] > 0.5, None, alive, {})

    def _final_rows(self, rows: np.ndarray) -> tuple | None:
        """(obs, state, None, alive) of the ended `rows` from the view captured before their
        reset, for final_views; None when no row ended."""
        if not len(rows) or self._ending is None:
            return None
        obs, state = self._ending
        idx = self._torch.as_tensor(rows, device=state.device)
        parts = [obs[a][idx].reshape(len(rows), -1) for a in self._agents] + [state[idx].reshape(len(rows), -1)]
        packed = host(self._torch.cat([p.float() for p in parts], dim=1))
        *last_obs, last_state = np.split(packed, np.cumsum(self._obs_dims), axis=1)
        return last_obs, last_state, None, np.ones((len(rows), self.spec.n_agents), bool)
