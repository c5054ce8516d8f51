"""StarCraft Multi-Agent Challenge (SMAC v1 maps; SMACv2 scenarios as family smacv2,
envs/smacv2.py, which shares this module), two backends.

`env.backend=sc2` drives the real game through smacv2 (`StarCraft2Env` for v1 maps, its
`StarCraftCapabilityEnvWrapper` for the procedurally generated v2 scenarios); it needs
StarCraft II 4.10 and the SMAC maps. `env.backend=smax` runs JaxMARL's SMAX, a JAX
re-implementation with simplified units and a heuristic enemy, on CPU, every copy stepped
in one `jax.vmap`-ed call. The default (or `auto`) picks sc2 when StarCraft II is
installed, smax otherwise. SMAX is a substitute: its returns are not SMAC's and its win rates are
comparable only qualitatively, so the backend is part of the task label (`3m[smax]`) that
every SMAX EnvSpec carries.

Both backends present SMAC's action layout, so a policy sees the same action meanings on
either: 0 no-op (available only to dead units), 1 stop, 2-5 move north/south/east/west,
6+k attack enemy k. Death masks come from that rule (alive = no-op unavailable).
Episodes won or lost terminate; the map's episode limit truncates (SMAC's `episode_limit`
info, HARL's `bad_transition`).

The feature-pruned per-agent state (HARL's `state_type: FP`) is not offered: our Step holds
one state per env copy, and FP is one state per agent.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
from gymnasium import spaces

from envs.base import AgentView, EnvSpec, FamilyConfig, SingleEnv, Step
from envs.errors import ConfigError, EnvUnavailable

# SMAX unit type indices (jaxmarl's unit_type_names order).
MARINE, MARAUDER, STALKER, ZEALOT, ZERGLING, HYDRALISK = range(6)


class MapInfo(NamedTuple):
    """One task. `allies`/`enemies` are SMAX unit types (None: SMAX cannot represent the
    map); `limit` is SMAC's episode limit; `race` marks a SMACv2 scenario."""

    n_agents: int
    n_enemies: int
    limit: int
    allies: tuple[int, ...] | None
    enemies: tuple[int, ...] | None
    race: str | None = None


def _units(*groups: tuple[int, int]) -> tuple[int, ...]:
    return tuple(kind for count, kind in groups for _ in range(count))


def _v1(limit: int, allies: tuple[int, ...] | None, enemies: tuple[int, ...] | None, n=None) -> MapInfo:
    n_agents, n_enemies = n if n else (len(allies), len(enemies))
    return MapInfo(n_agents, n_enemies, limit, allies, enemies)


def _v2(race: str, n_agents: int, n_enemies: int) -> MapInfo:
    return MapInfo(n_agents, n_enemies, 200, None, None, race)


# Episode limits are SMAC's map table (smac/env/starcraft2/maps/smac_maps.py).
MAPS: dict[str, MapInfo] = {
    "3m": _v1(60, _units((3, MARINE)), _units((3, MARINE))),
    "8m": _v1(120, _units((8, MARINE)), _units((8, MARINE))),
    "25m": _v1(150, _units((25, MARINE)), _units((25, MARINE))),
    "5m_vs_6m": _v1(70, _units((5, MARINE)), _units((6, MARINE))),
    "8m_vs_9m": _v1(120, _units((8, MARINE)), _units((9, MARINE))),
    "10m_vs_11m": _v1(150, _units((10, MARINE)), _units((11, MARINE))),
    "27m_vs_30m": _v1(180, _units((27, MARINE)), _units((30, MARINE))),
    "2s3z": _v1(120, _units((2, STALKER), (3, ZEALOT)), _units((2, STALKER), (3, ZEALOT))),
    "3s5z": _v1(150, _units((3, STALKER), (5, ZEALOT)), _units((3, STALKER), (5, ZEALOT))),
    "3s5z_vs_3s6z": _v1(170, _units((3, STALKER), (5, ZEALOT)), _units((3, STALKER), (6, ZEALOT))),
    "3s_vs_3z": _v1(150, _units((3, STALKER)), _units((3, ZEALOT))),
    "3s_vs_4z": _v1(200, _units((3, STALKER)), _units((4, ZEALOT))),
    "3s_vs_5z": _v1(250, _units((3, STALKER)), _units((5, ZEALOT))),
    "2m_vs_1z": _v1(150, _units((2, MARINE)), _units((1, ZEALOT))),
    "6h_vs_8z": _v1(150, _units((6, HYDRALISK)), _units((8, ZEALOT))),
    # SMAX has no medivac and no terrain: sc2 only.
    "MMM2": _v1(180, None, None, n=(10, 12)),
    "corridor": _v1(400, None, None, n=(6, 24)),
    # SMAX's own SMACv2-style scenarios: all six unit types, surrounded-and-reflect starts.
    "smacv2_5_units": MapInfo(5, 5, 200, None, None, "any"),
    "smacv2_10_units": MapInfo(10, 10, 200, None, None, "any"),
    "smacv2_20_units": MapInfo(20, 20, 200, None, None, "any"),
    # SMACv2 scenarios (HARL's smacv2 map configs).
    "protoss_5_vs_5": _v2("protoss", 5, 5),
    "terran_5_vs_5": _v2("terran", 5, 5),
    "zerg_5_vs_5": _v2("zerg", 5, 5),
    "protoss_10_vs_10": _v2("protoss", 10, 10),
    "terran_10_vs_10": _v2("terran", 10, 10),
    "zerg_10_vs_10": _v2("zerg", 10, 10),
    "zerg_10_vs_11": _v2("zerg", 10, 11),
}
# Family "smac": the v1 maps; family "smacv2" (envs/smacv2.py): the SMACv2-style scenarios.
FAMILY_TASKS = {
    "smac": tuple(t for t, i in MAPS.items() if i.race is None),
    "smacv2": tuple(t for t, i in MAPS.items() if i.race is not None),
}
TASKS = FAMILY_TASKS["smac"]
BACKENDS = ("auto", "smax", "sc2")

# SMACv2 unit mixes (smacv2's 10gen configs): weights 0.45/0.45/0.1, and the third unit
# may not make up a whole team (its exception_unit_types). SMAX lacks colossus, medivac and
# baneling; its race approximation draws the two shared types 50/50 (see RaceUnitTypes).
RACES = {
    "protoss": (("stalker", "zealot", "colossus"), (STALKER, ZEALOT)),
    "terran": (("marine", "marauder", "medivac"), (MARINE, MARAUDER)),
    "zerg": (("zergling", "hydralisk", "baneling"), (ZERGLING, HYDRALISK)),
}


def sc2_installed() -> bool:
    """StarCraft II's Versions folder exists where pysc2 looks (SC2PATH or ~/StarCraftII)."""
    root = Path(os.environ.get("SC2PATH", Path.home() / "StarCraftII"))
    return (root / "Versions").is_dir()


def detected_backend() -> str:
    return "sc2" if sc2_installed() else "smax"


@dataclass
class Config(FamilyConfig):
    backend: str = field(default_factory=detected_backend)
    """'smax' (JaxMARL SMAX on CPU JAX), 'sc2' (StarCraft II via smacv2) or 'auto'. The
    default is detected when the config is built (sc2 where StarCraft II is installed, else
    smax), so config.yaml records the backend a run used, never 'auto'."""
    episode_limit: int | None = None
    """Steps before truncation; None = SMAC's limit for the map."""
    difficulty: str = "7"
    """sc2 only: the built-in AI's difficulty (SMAC: '7', very hard)."""

    def substitute(self) -> str | None:
        return None if self.backend == "sc2" else self.backend


SC2_INSTALL = (
    "install StarCraft II 4.10 (Linux build), set SC2PATH to it, copy the SMAC maps into "
    "$SC2PATH/Maps/SMAC_Maps, and pip install smacv2 from its repository with 'protobuf<3.21' "
    "(README: SMAC); or use env.backend=smax"
)


def resolve_backend(config: Config) -> str:
    if config.backend not in BACKENDS:
        raise ConfigError(f"env.backend must be one of {', '.join(BACKENDS)}, got {config.backend!r}")
    if config.backend == "auto":
        return detected_backend()
    return config.backend


def _check(family: str, task: str, config: Config) -> tuple[MapInfo, str, int]:
    """Validate names and fields; (map, backend, episode limit)."""
    if task not in FAMILY_TASKS[family]:
        raise ConfigError(f"unknown {family} task {task!r}; valid tasks: {', '.join(FAMILY_TASKS[family])}")
    backend = resolve_backend(config)
    info = MAPS[task]
    limit = info.limit if config.episode_limit is None else int(config.episode_limit)
    if limit < 1:
        raise ConfigError(f"env.episode_limit must be >= 1, got {config.episode_limit}")
    if backend == "smax" and info.allies is None and info.race is None:
        raise ConfigError(
            f"{family} task {task} cannot run on SMAX (no medivacs/terrain in SMAX); use env.backend=sc2 with StarCraft II"
        )
    if backend == "sc2" and info.race == "any":
        raise ConfigError(f"{family} task {task} is a SMAX scenario; use env.backend=smax")
    return info, backend, limit


# ---------------------------------------------------------------------------------------
# SMAC action layout <-> SMAX
# ---------------------------------------------------------------------------------------
# SMAX discrete actions: 0 north, 1 east, 2 south, 3 west, 4 stop, 5+k attack k.
SMAC_TO_SMAX_MOVES = np.array([4, 4, 0, 2, 1, 3])  # SMAC 0 no-op, 1 stop, 2 N, 3 S, 4 E, 5 W


def smac_actions_to_smax(actions: np.ndarray) -> np.ndarray:
    """[..., N] SMAC indices -> SMAX indices (no-op and stop both become SMAX's stop)."""
    actions = np.asarray(actions, np.int64)
    return np.where(actions >= 6, actions - 1, SMAC_TO_SMAX_MOVES[np.minimum(actions, 5)])


def smax_avail_to_smac(avail, alive, xp=np):
    """[..., N, 5+K] SMAX masks -> [..., N, 6+K] SMAC masks: no-op only for the dead, stop
    and moves only for the living (SMAX lets the dead 'stop')."""
    alive = alive[..., None]
    noop = ~alive
    stop = avail[..., 4:5].astype(bool) & alive
    moves = avail[..., [0, 2, 1, 3]].astype(bool)
    attacks = avail[..., 5:].astype(bool)
    return xp.concatenate([noop, stop, moves, attacks], axis=-1)


# ---------------------------------------------------------------------------------------
# SMAX backend: one vmapped batch of copies
# ---------------------------------------------------------------------------------------
def _import_jax():
    try:
        jax = importlib.import_module("jax")
        smax = importlib.import_module("jaxmarl.environments.smax")
    except ImportError as exc:
        raise EnvUnavailable(
            f"env=smac/smacv2 backend=smax needs JaxMARL SMAX: pip install 'hasac-bench[smax]' ({exc})"
        ) from None
    return jax, smax


class RaceUnitTypes:
    """SMACv2-like unit draw for one race in SMAX: each ally type drawn 50/50 from the race's
    two SMAX-representable types, enemies mirror the allies, extra enemies drawn alike.
    Replaces jaxmarl's generator (which draws from all six types) on race tasks."""

    def __init__(self, n_agents: int, n_enemies: int, kinds: tuple[int, int]):
        self.n_agents, self.n_enemies, self.kinds = n_agents, n_enemies, kinds

    def generate(self, key):
        import jax
        import jax.numpy as jnp

        kinds = jnp.asarray(self.kinds, jnp.uint8)
        ally_key, enemy_key = jax.random.split(key)
        allies = kinds[jax.random.randint(ally_key, (self.n_agents,), 0, 2)]
        extra = kinds[jax.random.randint(enemy_key, (max(self.n_enemies - self.n_agents, 0),), 0, 2)]
        enemies = jnp.concatenate([allies[: self.n_enemies], extra])
        return jnp.concatenate([allies, enemies]).astype(jnp.uint8)


def _smax_env(task: str, info: MapInfo, limit: int):
    """A HeuristicEnemySMAX for the task (enemies = jaxmarl's built-in heuristic)."""
    jax, smax = _import_jax()
    import jax.numpy as jnp
    from jaxmarl.environments.smax import HeuristicEnemySMAX

    if info.race is None:
        types = jnp.asarray(info.allies + info.enemies, jnp.uint8)
        scenario = smax.Scenario(types, info.n_agents, info.n_enemies, False, False)
    else:
        n = info.n_agents + info.n_enemies
        scenario = smax.Scenario(jnp.zeros((n,), jnp.uint8), info.n_agents, info.n_enemies, True, True)
    env = HeuristicEnemySMAX(scenario=scenario, max_steps=limit)
    if info.race in RACES:
        env._env.unit_type_generator = RaceUnitTypes(info.n_agents, info.n_enemies, RACES[info.race][1])
    return env


_COMPILED: dict = {}


def _compile(jax, env, n: int):
    """(env, batched reset, batched step), jitted; both return the SMAC-layout view of every
    copy. States leave both as strongly typed arrays, so step never recompiles for the
    weak types a fresh reset has."""
    import jax.numpy as jnp

    agents = env.agents
    strong = lambda tree: jax.tree.map(lambda x: jnp.asarray(x).astype(jnp.asarray(x).dtype), tree)  # noqa: E731

    def view(state, obs):
        alive = state.state.unit_alive[:n]
        avail = env.get_avail_actions(state)
        avail = jnp.stack([avail[a] for a in agents])
        return {
            "obs": jnp.stack([obs[a] for a in agents]),
            "state": obs["world_state"],
            "avail": smax_avail_to_smac(avail, alive, jnp),
            "alive": alive,
        }

    def reset_one(key):
        key, sub = jax.random.split(key)
        obs, state = env.reset(sub)
        return key, strong(state), view(state, obs)

    def step_one(key, state, actions):
        key, step_key, reset_key = jax.random.split(key, 3)
        obs, new, rewards, dones, _ = env.step_env(step_key, state, {a: actions[i] for i, a in enumerate(agents)})
        final = view(new, obs)
        units = new.state.unit_alive
        allies_dead = ~jnp.any(units[:n])
        enemies_dead = ~jnp.any(units[n:])
        terminated = allies_dead | enemies_dead
        done = dones["__all__"]
        truncated = done & ~terminated
        won = enemies_dead & ~allies_dead
        obs_r, state_r = env.reset(reset_key)
        pick = lambda a, b: jax.tree.map(lambda x, y: jnp.where(done, x, y), a, b)  # noqa: E731
        state = strong(pick(state_r, new))
        current = pick(view(state_r, obs_r), final)
        reward = rewards[agents[0]]  # SMAX gives every ally the team reward
        return key, state, current, final, reward, terminated, truncated, won

    return env, jax.jit(jax.vmap(reset_one)), jax.jit(jax.vmap(step_one))


class SmaxVecEnv:
    """n_envs SMAX copies stepped by one jitted, vmapped function (same public API as
    envs.base.VecEnv). Each copy has its own PRNG key; the key, the game state and the
    running episode statistics are all a snapshot needs."""

    def __init__(self, family: str, task: str, info: MapInfo, limit: int, n_envs: int, seed: int | None):
        if n_envs < 1:
            raise ConfigError(f"n_envs must be >= 1, got {n_envs}")
        self._jax, _ = _import_jax()
        self.n_envs, self.seed = n_envs, seed
        key = (task, limit)
        if key not in _COMPILED:  # shared by every batch of this task: jit compiles once per shape
            _COMPILED[key] = _compile(self._jax, _smax_env(task, info, limit), info.n_agents)
        self._env, self._reset_fn, self._step_fn = _COMPILED[key]
        env = self._env
        n, k = info.n_agents, info.n_enemies
        obs_dim, state_dim = env.obs_size, env.state_size
        box = partial(spaces.Box, dtype=np.float32)
        self.spec = EnvSpec(
            family=family,
            task=f"{task}[smax]",  # the backend label: SMAX results must never pass for SMAC
            n_agents=n,
            obs_spaces=tuple(box(-np.inf, np.inf, (obs_dim,)) for _ in range(n)),
            state_space=box(-np.inf, np.inf, (state_dim,)),
            action_spaces=tuple(spaces.Discrete(6 + k) for _ in range(n)),
            episode_limit=limit,
            has_avail_actions=True,
            success_metric="win_rate",
        )
        self._keys = self._states = None
        self._label = f"{family}/{self.spec.task}"
        self._returns = np.zeros(n_envs, np.float64)
        self._lengths = np.zeros(n_envs, np.int64)
        self._closed = False

    # -- public API (envs.base.VecEnv's) ----------------------------------------------------
    def reset(self, seed: int | None = None) -> Step:
        """Copy k starts from PRNGKey(seed + k); without a seed, the seed given to make()
        (or, with neither, the copies' own keys continue)."""
        jax = self._jax
        seed = self.seed if seed is None else seed
        if seed is not None:
            keys = jax.numpy.stack([jax.random.PRNGKey(int(seed) + k) for k in range(self.n_envs)])
        elif self._keys is not None:
            keys = self._keys
        else:
            keys = jax.numpy.stack([jax.random.PRNGKey(np.random.SeedSequence().entropy % 2**31 + k)
                                    for k in range(self.n_envs)])
        self._keys, self._states, current = self._reset_fn(keys)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        zeros = np.zeros(self.n_envs, bool)
        step = self._to_step(current, np.zeros(self.n_envs, np.float32), zeros, zeros.copy())
        step.info.update(self._finals(step))
        step.info["episodes"] = []
        return step

    def step(self, actions: Sequence[np.ndarray]) -> Step:
        """`actions`: N × [E] SMAC action indices."""
        if self._states is None:
            raise RuntimeError("SmaxVecEnv.step before reset")
        joint = np.stack([np.asarray(a).reshape(self.n_envs) for a in actions], axis=1)
        n_actions = self.spec.action_spaces[0].n
        if joint.min() < 0 or joint.max() >= n_actions:
            raise ValueError(f"actions must lie in [0, {n_actions}), got {joint.min()}..{joint.max()}")
        out = self._step_fn(self._keys, self._states, self._jax.numpy.asarray(smac_actions_to_smax(joint), "int32"))
        self._keys, self._states, current, final, reward, terminated, truncated, won = out
        reward = np.asarray(reward, np.float32)
        terminated, truncated, won = (np.asarray(x, bool) for x in (terminated, truncated, won))
        step = self._to_step(current, reward, terminated, truncated)
        self._returns += reward
        self._lengths += 1
        episodes = []
        for k in np.flatnonzero(step.done):
            episodes.append({"return": float(self._returns[k]), "length": int(self._lengths[k]),
                             "win": bool(won[k]), "env_index": int(k)})
            self._returns[k], self._lengths[k] = 0.0, 0
        step.info.update(self._finals(step, final))
        step.info["episodes"] = episodes
        return step

    def get_state(self) -> list:
        """One snapshot per copy: its PRNG key, its game state (numpy leaves) and its
        running episode return/length."""
        jax = self._jax
        keys = np.asarray(self._keys)
        leaves, _ = jax.tree.flatten(self._states)
        leaves = [np.asarray(x) for x in leaves]
        return [{
            "task": self._label,
            "key": keys[k].copy(),
            "leaves": [x[k].copy() for x in leaves],
            "episode_return": float(self._returns[k]),
            "episode_length": int(self._lengths[k]),
        } for k in range(self.n_envs)]

    def set_state(self, states: Sequence) -> None:
        jax = self._jax
        if len(states) != self.n_envs:
            raise ValueError(f"{len(states)} env states for {self.n_envs} env copies")
        for s in states:
            if s["task"] != self._label:
                raise ValueError(f"snapshot of {s['task']} cannot restore a {self._label} env")
        if self._states is None:  # the tree's structure comes from one reset
            self.reset(0)
        _, treedef = jax.tree.flatten(self._states)
        leaves = [jax.numpy.asarray(np.stack([s["leaves"][i] for s in states]))
                  for i in range(len(states[0]["leaves"]))]
        self._states = jax.tree.unflatten(treedef, leaves)
        self._keys = jax.numpy.asarray(np.stack([s["key"] for s in states]))
        self._returns = np.array([s["episode_return"] for s in states], np.float64)
        self._lengths = np.array([s["episode_length"] for s in states], np.int64)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> "SmaxVecEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- conversion ---------------------------------------------------------------------------
    def _to_step(self, view: dict, reward, terminated, truncated) -> Step:
        obs, state, avail, alive = (np.asarray(view[k]) for k in ("obs", "state", "avail", "alive"))
        n = self.spec.n_agents
        return Step(
            obs=[obs[:, i].astype(np.float32) for i in range(n)],
            state=state.astype(np.float32),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            avail_actions=[avail[:, i].astype(bool) for i in range(n)],
            alive=alive.astype(bool),
            info={},
        )

    def _finals(self, step: Step, final: dict | None = None) -> dict[str, Any]:
        """info["final_*"]: the step's arrays, with the finished episodes' last views in
        their rows."""
        if final is None or not step.done.any():
            return {"final_obs": step.obs, "final_state": step.state,
                    "final_avail_actions": step.avail_actions, "final_alive": step.alive}
        last = self._to_step(final, step.reward, step.terminated, step.truncated)
        rows = step.done
        pick = lambda a, b: np.where(rows.reshape(-1, *[1] * (a.ndim - 1)), a, b)  # noqa: E731
        return {
            "final_obs": [pick(a, b) for a, b in zip(last.obs, step.obs)],
            "final_state": pick(last.state, step.state),
            "final_avail_actions": [pick(a, b) for a, b in zip(last.avail_actions, step.avail_actions)],
            "final_alive": pick(last.alive, step.alive),
        }


# ---------------------------------------------------------------------------------------
# SC2 backend: smacv2 over StarCraft II, one copy per SingleEnv
# ---------------------------------------------------------------------------------------
def smacv2_map_config(info: MapInfo) -> dict:
    """Keyword arguments of smacv2's StarCraftCapabilityEnvWrapper for a race scenario, the
    settings of smacv2's 10gen configs (weighted teams, surrounded-and-reflect starts)."""
    names = RACES[info.race][0]
    return {
        "map_name": f"10gen_{info.race}",
        "capability_config": {
            "n_units": info.n_agents,
            "n_enemies": info.n_enemies,
            "team_gen": {"dist_type": "weighted_teams", "unit_types": list(names), "weights": [0.45, 0.45, 0.1],
                         "exception_unit_types": [names[2]], "observe": True},
            "start_positions": {"dist_type": "surrounded_and_reflect", "p": 0.5,
                                "n_enemies": info.n_enemies, "map_x": 32, "map_y": 32},
        },
        "obs_own_pos": True, "obs_starcraft": True, "conic_fov": False, "use_unit_ranges": True,
        "min_attack_range": 2, "num_fov_actions": 12, "fully_observable": False,
        "kill_unit_step_mul": 2, "change_fov_with_move": False, "obs_own_health": True,
        "obs_all_health": True, "obs_last_action": False, "obs_pathing_grid": False,
        "obs_terrain_height": False, "state_last_action": True, "state_timestep_number": False,
        "reward_only_positive": True, "reward_death_value": 10, "reward_win": 200,
        "reward_defeat": 0, "reward_negative_scale": 0.5, "reward_scale": True,
        "reward_scale_rate": 20, "continuing_episode": False, "heuristic_ai": False,
        "heuristic_rest": False, "move_amount": 2, "step_mul": 8,
    }


def _import_smacv2():
    try:
        return importlib.import_module("smacv2.env")
    except ImportError as exc:
        raise EnvUnavailable(f"env=smac backend=sc2 needs smacv2 and StarCraft II: {SC2_INSTALL} ({exc})") from None


class Sc2Env(SingleEnv):
    """One smacv2 copy. Shapes come from `get_env_info()`, which works without the game;
    StarCraft II itself starts on the first reset."""

    def __init__(self, task: str, info: MapInfo, limit: int | None, difficulty: str, smacv2=None,
                 family: str = "smac"):
        smacv2 = smacv2 or _import_smacv2()
        if info.race is None:
            self._env = smacv2.StarCraft2Env(map_name=task, difficulty=difficulty)
        else:
            self._env = smacv2.StarCraftCapabilityEnvWrapper(difficulty=difficulty, **smacv2_map_config(info))
        if limit is not None:  # env.episode_limit set: smacv2 reads the map's limit otherwise
            _inner(self._env).episode_limit = limit
        env_info = self._env.get_env_info()
        n, n_actions = env_info["n_agents"], env_info["n_actions"]
        box = partial(spaces.Box, -np.inf, np.inf, dtype=np.float32)
        self.spec = EnvSpec(
            family=family,
            task=task,
            n_agents=n,
            obs_spaces=tuple(box((env_info["obs_shape"],)) for _ in range(n)),
            state_space=box((env_info["state_shape"],)),
            action_spaces=tuple(spaces.Discrete(n_actions) for _ in range(n)),
            episode_limit=env_info["episode_limit"],
            has_avail_actions=True,
            success_metric="win_rate",
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
        reward, terminated, info = self._env.step([int(np.asarray(a).reshape(-1)[0]) for a in actions])
        timeout = bool(info.get("episode_limit", False))
        ep_info = {"win": bool(info.get("battle_won", False))} if terminated else {}
        return self._view(), float(reward), bool(terminated) and not timeout, timeout, ep_info

    def close(self) -> None:
        self._env.close()

    def _view(self) -> AgentView:
        env = self._env
        avail = [np.asarray(a, bool) for a in env.get_avail_actions()]
        alive = np.array([not a[0] for a in avail])  # SMAC: the no-op is available only to the dead
        return AgentView(obs=[np.asarray(o, np.float32) for o in env.get_obs()],
                         state=np.asarray(env.get_state(), np.float32), avail_actions=avail, alive=alive)


def _inner(env):
    """The StarCraft2Env under smacv2's capability wrapper (or the env itself)."""
    return getattr(env, "env", env)


def _is_launch_error(exc: Exception) -> bool:
    return isinstance(exc, (FileNotFoundError, OSError)) or type(exc).__name__ in ("SC2LaunchError", "SC2MapError")


# ---------------------------------------------------------------------------------------
# Registry hooks (envs/__init__.py)
# ---------------------------------------------------------------------------------------
def make_vec(task: str, config: Config, n_envs: int, seed: int | None, family: str = "smac"):
    """envs.make's hook: the vmapped SMAX batch, or None for the per-copy sc2 VecEnv."""
    info, backend, limit = _check(family, task, config)
    if backend != "smax":
        return None
    return SmaxVecEnv(family, task, info, limit, n_envs, seed)


def env_factory(task: str, config: Config, family: str = "smac"):
    """Validate now; build sc2 copies later (SMAX copies are built by make_vec)."""
    info, backend, limit = _check(family, task, config)
    if backend == "smax":
        raise ConfigError(f"env={family} backend=smax is one vectorised env; build it with envs.make")
    _import_smacv2()
    if not sc2_installed():  # fail before a run writes anything, not at the first reset
        raise EnvUnavailable(f"env={family} backend=sc2 found no StarCraft II: {SC2_INSTALL}")
    return partial(Sc2Env, task, info, config.episode_limit, str(config.difficulty), family=family)
