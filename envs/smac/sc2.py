"""The sc2 backend of families `smac` and `smacv2`: StarCraft II through smacv2, one game
per `SingleEnv` copy (`VecEnv` batches them).

SMAC v1 maps use smacv2's `StarCraft2Env`; the procedurally generated SMACv2 scenarios its
`StarCraftCapabilityEnvWrapper` with HARL's smacv2 map configs (E12). Needs
StarCraft II 4.10 and the SMAC maps. The map's episode limit truncates, as HARL's
`bad_transition` (docs/fidelity.md E8): smacv2 ends a timed-out episode as terminated and
reports `episode_limit` only with `continuing_episode`, so a time-out is read, as HARL's
`smacv2_env.py` step does, from smacv2's `timeouts` counter, which grows in the
episode-limit branch only; won or lost episodes terminate.

On SMAC v1 maps the observation is HARL's (`env.obs_extras=official`, docs/fidelity.md
E10): smacv2's features with the last actions of the visible living allies and the agent's
own (smacv2's `obs_last_action`, the same code HARL's env forked), then a one-hot agent id,
set for a dead agent too (`harl/envs/smac/StarCraft2_Env.py` l.1240-1251). HARL orders an
observation's blocks ally, enemy, move, own where smacv2 orders them move, enemy, ally,
own: the same inputs in another order. The state is HARL's default, the feature-pruned
state, one per agent (`env.state_type=official`, O11/P6, envs/smac/harl_state.py
`agent_states`: `EnvSpec.agent_states`, the N states side by side); `ep` gives HARL's "EP"
global state (E11) and `smacv2` smacv2's `get_state`. SMACv2 scenarios keep smacv2's own
observation and state.
"""

from __future__ import annotations

import importlib
from functools import partial
from typing import Sequence

import numpy as np
from gymnasium import spaces

from envs.base import AgentView, EnvSpec, SingleEnv
from envs.errors import EnvUnavailable
from envs.smac import harl_state
from envs.smac.tasks import RACES, MapInfo

SC2_INSTALL = (
    "install StarCraft II 4.10 (Linux build), set SC2PATH to it, copy the SMAC maps into "
    "$SC2PATH/Maps/SMAC_Maps, and pip install smacv2 from its repository with 'protobuf<3.21' "
    "(README: SMAC); or use env.backend=smax"
)


def smacv2_map_config(info: MapInfo) -> dict:
    """Keyword arguments of smacv2's StarCraftCapabilityEnvWrapper for a race scenario: HARL's
    smacv2 map config (`harl/configs/envs_cfgs/smacv2_map_config/<race>_<n>_vs_<m>.yaml`
    [9eddb5d], the file HARL's `smacv2_env.py` passes whole; weighted teams, surrounded-and-
    reflect starts), less `difficulty`, which the caller passes."""
    race = RACES[info.race]
    team = {"dist_type": "weighted_teams", "unit_types": list(race.units), "weights": list(race.weights),
            "observe": True}
    if race.exceptions:
        team["exception_unit_types"] = list(race.exceptions)
    return {
        "continuing_episode": False, "game_version": None, "map_name": f"10gen_{info.race}", "move_amount": 2,
        "obs_all_health": True, "obs_instead_of_state": False, "obs_last_action": False, "obs_own_health": True,
        "obs_pathing_grid": False, "obs_terrain_height": False, "obs_timestep_number": False,
        "reward_death_value": 10, "reward_defeat": 0, "reward_negative_scale": 0.5, "reward_only_positive": True,
        "reward_scale": True, "reward_scale_rate": 20, "reward_sparse": False, "reward_win": 200,
        "replay_dir": "", "replay_prefix": "", "conic_fov": False, "use_unit_ranges": True, "min_attack_range": 2,
        "obs_own_pos": True, "num_fov_actions": 12,
        "capability_config": {
            "n_units": info.n_agents, "n_enemies": info.n_enemies, "team_gen": team,
            "start_positions": {"dist_type": "surrounded_and_reflect", "p": 0.5, "map_x": 32, "map_y": 32},
        },
        "state_last_action": True, "state_timestep_number": False, "step_mul": 8, "heuristic_ai": False,
        "debug": False,
    }


def import_smacv2():
    try:
        return importlib.import_module("smacv2.env")
    except ImportError as exc:
        raise EnvUnavailable(f"env=smac backend=sc2 needs smacv2 and StarCraft II: {SC2_INSTALL} ({exc})") from None


class Sc2Env(SingleEnv):
    """One smacv2 copy. Shapes come from `get_env_info()`, which works without the game;
    StarCraft II itself starts on the first reset."""

    def __init__(self, task: str, info: MapInfo, limit: int | None, difficulty: str, smacv2=None,
                 family: str = "smac", obs_extras: str = "official", state_type: str = "official"):
        smacv2 = smacv2 or import_smacv2()
        self._harl_obs = family == "smac" and obs_extras == "official"
        self._state = state_type if family == "smac" else "smacv2"  # official (FP), ep or smacv2
        if info.race is None:
            self._env = smacv2.StarCraft2Env(map_name=task, difficulty=difficulty, obs_last_action=self._harl_obs)
        else:
            self._env = smacv2.StarCraftCapabilityEnvWrapper(difficulty=difficulty, **smacv2_map_config(info))
        if limit is not None:  # env.episode_limit set: smacv2 reads the map's limit otherwise
            _inner(self._env).episode_limit = limit
        env_info = self._env.get_env_info()
        n, n_actions = env_info["n_agents"], env_info["n_actions"]
        box = partial(spaces.Box, -np.inf, np.inf, dtype=np.float32)
        if self._state == "official":
            state_size = n * harl_state.agent_state_size(_inner(self._env))
        elif self._state == "ep":
            state_size = harl_state.state_size(_inner(self._env))
        else:
            state_size = env_info["state_shape"]
        self.spec = EnvSpec(
            family=family,
            task=task,
            n_agents=n,
            obs_spaces=tuple(box((env_info["obs_shape"] + n * self._harl_obs,)) for _ in range(n)),
            state_space=box((state_size,)),
            action_spaces=tuple(spaces.Discrete(n_actions) for _ in range(n)),
            episode_limit=env_info["episode_limit"],
            has_avail_actions=True,
            success_metric="win_rate",
            agent_states=self._state == "official",
        )
        self._started = False

    def reset(self, seed: int | None) -> AgentView:
        if seed is not None and not self._started:
            _inner(self._env)._seed = int(seed)  # SC2's own seed is fixed when the game launches
        try:
            self._env.reset()
        except Exception as exc:  # FileNotFoundError, pysc2's SC2LaunchError, ...
            if self._started or not _is_launch_error(exc):
                raise
            raise EnvUnavailable(f"env=smac backend=sc2 could not start StarCraft II: {SC2_INSTALL} "
                                 f"({type(exc).__name__}: {exc})") from None
        self._started = True
        return self._view()

    def step(self, actions: Sequence[np.ndarray]):
        timeouts = _inner(self._env).timeouts
        reward, terminated, info = self._env.step([int(np.asarray(a).reshape(-1)[0]) for a in actions])
        timeout = _inner(self._env).timeouts > timeouts
        ep_info = {"win": bool(info.get("battle_won", False))} if terminated else {}
        return self._view(), float(reward), bool(terminated) and not timeout, timeout, ep_info

    def close(self) -> None:
        self._env.close()

    def _view(self) -> AgentView:
        env = self._env
        avail = [np.asarray(a, bool) for a in env.get_avail_actions()]
        alive = np.array([not a[0] for a in avail])  # SMAC: the no-op is available only to the dead
        obs = [np.asarray(o, np.float32) for o in env.get_obs()]
        if self._harl_obs:
            ids = np.eye(len(obs), dtype=np.float32)
            obs = [np.concatenate([o, ids[i]]) for i, o in enumerate(obs)]
        if self._state == "official":
            state = harl_state.agent_states(_inner(env)).reshape(-1)
        elif self._state == "ep":
            state = harl_state.global_state(_inner(env))
        else:
            state = np.asarray(env.get_state(), np.float32)
        return AgentView(obs=obs, state=state, avail_actions=avail, alive=alive)


def _inner(env):
    """The StarCraft2Env under smacv2's capability wrapper (or the env itself)."""
    return getattr(env, "env", env)


def _is_launch_error(exc: Exception) -> bool:
    return isinstance(exc, (FileNotFoundError, OSError)) or type(exc).__name__ in ("SC2LaunchError", "SC2MapError")
