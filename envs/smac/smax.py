"""The SMAX backend of families `smac` and `smacv2`: JaxMARL's SMAX, a JAX
re-implementation of SMAC with simplified units and a heuristic enemy, on CPU, every copy
stepped in one `jax.vmap`-ed call.

SMAX is a substitute: its returns are not SMAC's and its win rates are comparable only
qualitatively, so the backend is part of the task label (`3m[smax]`) that every SMAX
EnvSpec carries. The policy sees SMAC's action layout (envs/smac/actions.py). Episodes won
or lost terminate; the episode limit truncates.
"""

from __future__ import annotations

import importlib
from functools import partial
from typing import Sequence

import numpy as np
from gymnasium import spaces

from envs.base import EnvSpec, EpisodeStats, Step, final_views
from envs.errors import ConfigError, EnvUnavailable
from envs.smac.actions import smac_actions_to_smax, smax_avail_to_smac
from envs.smac.tasks import RACES, MapInfo


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


def smax_env(task: str, info: MapInfo, limit: int):
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
        env._env.unit_type_generator = RaceUnitTypes(info.n_agents, info.n_enemies, RACES[info.race].smax)
    return env


_COMPILED: dict = {}


def harl_extras(env, state, last, n: int):
    """HARL's SMAC observation extras (docs/fidelity.md E10) for the n allies: [N, (N − 1)·A
    + A + N], per agent the last actions (one-hot, SMAC layout, A actions) of the other
    allies in id order, zero unless the ally is alive and within the agent's sight range;
    its own last action; a one-hot agent id. A dead agent sees only its id
    (`harl/envs/smac/StarCraft2_Env.py` l.1205-1206, l.1228-1229, l.1240-1251). `last`:
    [N, A] one-hot, zero at an episode start."""
    import jax.numpy as jnp

    units = state.state
    alive = units.unit_alive[:n]
    pos = units.unit_positions[:n]
    sight = env._env.unit_type_sight_ranges[units.unit_types[:n]]
    near = jnp.linalg.norm(pos[:, None] - pos[None, :], axis=-1) < sight[:, None]
    seen = near & alive[:, None] & alive[None, :]  # [agent, ally]
    others = np.array([[j for j in range(n) if j != i] for i in range(n)], int).reshape(n, n - 1)
    allies = jnp.where(seen[..., None], last[None], 0.0)[np.arange(n)[:, None], others]
    own = jnp.where(alive[:, None], last, 0.0)
    return jnp.concatenate([allies.reshape(n, -1), own, jnp.eye(n, dtype=last.dtype)], axis=1)


def harl_state_extras(state, last, avail, limit: int):
    """What HARL's "EP" state (docs/fidelity.md E11) holds beyond SMAX's world state, where
    SMAX can define it: the living allies' last actions (one-hot; zero for the dead), every
    agent's available actions (SMAC layout) and the time step over the episode limit
    (`harl/envs/smac/StarCraft2_Env.py` get_global_state, l.1476 ff.). SMAX has no pathing
    grid or terrain, and HARL's five map constants are left out. `avail`: [N, A] bool."""
    import jax.numpy as jnp

    n = last.shape[0]
    alive = state.state.unit_alive[:n]
    own_last = jnp.where(alive[:, None], last, 0.0)
    time = jnp.reshape(state.state.step / limit, (1,)).astype(last.dtype)
    return jnp.concatenate([own_last.reshape(-1), avail.astype(last.dtype).reshape(-1), time])


def type_table(info: MapInfo) -> tuple[int, ...]:
    """SMAX unit types one-hot encoded in HARL's FP state: the map's distinct types (a race
    task's two), none when the map has one type (HARL's unit_type_bits is 0 there)."""
    kinds = RACES[info.race].smax if info.race in RACES else sorted(set(info.allies or ()) | set(info.enemies or ()))
    return tuple(kinds) if len(kinds) > 1 else ()


def fp_width(n: int, k: int, n_actions: int, n_types: int) -> int:
    """Values of one agent's FP state: n − 1 ally rows, k enemy rows, 4 moves, own row, id."""
    return (n - 1) * (8 + n_types + n_actions) + k * (8 + n_types) + 4 + (7 + n_types + n_actions) + n


def harl_agent_states(env, state, last, avail, n: int, kinds: tuple[int, ...]):
    """HARL's feature-pruned state (docs/fidelity.md O11, P6), one row per ally [N, d], in
    the layout of `harl/envs/smac/StarCraft2_Env.py` get_state_agent (l.1613 ff., FP.yaml:
    use_state_agent, use_mustalive, state_last_action, add_center_xy), from SMAX's units:
    - the other allies in id order (zero if dead): visible (closer than the agent's sight
      range), distance, dx, dy over the sight range, weapon cooldown over its maximum,
      health over its maximum, x and y from the map centre over the map size, type
      one-hot, last action one-hot;
    - every enemy (zero if dead, seen or not): attack available, distance, dx, dy over the
      sight range, visible, health, type one-hot, x and y from the centre;
    - the agent's four move actions' availability;
    - its own: 1, 0, 0, 0, health, x and y from the centre, type one-hot, last action;
    then a one-hot agent id. A dead agent's row is zero but for its id (use_mustalive).
    SMAX has no shields; sight ranges, cooldowns and health maxima are SMAX's per-type
    values. `last` [N, A] one-hot last actions, `avail` [N, A] SMAC-layout masks."""
    import jax.numpy as jnp

    smax, units = env._env, state.state
    alive, pos, types = units.unit_alive, units.unit_positions, units.unit_types
    k = alive.shape[0] - n
    f32 = last.dtype
    size = jnp.asarray([smax.map_width, smax.map_height], f32)
    centre = (pos - size / 2) / size  # [U, 2]
    health = (units.unit_health / smax.unit_type_health[types])[:, None]
    cooldown = (units.unit_weapon_cooldowns / smax.unit_type_weapon_cooldowns[types])[:, None]
    kind = (types[:, None] == jnp.asarray(kinds, types.dtype)[None]).astype(f32) if kinds else jnp.zeros((len(types), 0), f32)
    sight = smax.unit_type_sight_ranges[types[:n]][:, None]  # [N, 1]
    rel = pos[None] - pos[:n, None]  # [N, U, 2]: unit − agent
    dist = jnp.linalg.norm(rel, axis=-1)  # [N, U]
    near = (dist < sight)[..., None].astype(f32)
    scaled = jnp.concatenate([dist[..., None], rel], -1) / sight[..., None]  # distance, dx, dy
    each = lambda x: jnp.broadcast_to(x[None], (n, *x.shape))  # noqa: E731  a per-unit column for every agent
    allies = jnp.concatenate([near[:, :n], scaled[:, :n], each(cooldown[:n]), each(health[:n]), each(centre[:n]),
                              each(kind[:n]), each(last)], -1) * alive[None, :n, None]
    others = np.array([[j for j in range(n) if j != i] for i in range(n)], int).reshape(n, n - 1)
    allies = allies[np.arange(n)[:, None], others]  # [N, N − 1, w]
    attack = avail[:, 6:6 + k, None].astype(f32)
    enemies = jnp.concatenate([attack, scaled[:, n:], near[:, n:], each(health[n:]), each(kind[n:]), each(centre[n:])],
                              -1) * alive[None, n:, None]
    own = jnp.concatenate([jnp.tile(jnp.asarray([1.0, 0.0, 0.0, 0.0], f32), (n, 1)), health[:n], centre[:n], kind[:n], last], -1)
    body = jnp.concatenate([allies.reshape(n, -1), enemies.reshape(n, -1), avail[:, 2:6].astype(f32), own], -1)
    return jnp.concatenate([body * alive[:n, None], jnp.eye(n, dtype=f32)], -1)


def _compile(jax, env, n: int, n_actions: int, harl_obs: bool, harl_state: bool, fp_kinds: tuple[int, ...] | None = None):
    """(env, batched reset, batched step), jitted; both return the SMAC-layout view of every
    copy, and step takes SMAC action indices. States leave both as strongly typed arrays, so
    step never recompiles for the weak types a fresh reset has. With `harl_obs` or
    `harl_state` a copy's state is (SMAX state, last actions one-hot), and observations carry
    `harl_extras`, the world state `harl_state_extras`. With `fp_kinds` (not None) the
    state is HARL's FP state instead, the N rows of `harl_agent_states` concatenated."""
    import jax.numpy as jnp

    track_last = harl_obs or harl_state or fp_kinds is not None

    agents = env.agents
    strong = lambda tree: jax.tree.map(lambda x: jnp.asarray(x).astype(jnp.asarray(x).dtype), tree)  # noqa: E731
    no_action = jnp.zeros((n, n_actions), jnp.float32)

    def view(state, obs, last):
        alive = state.state.unit_alive[:n]
        avail = env.get_avail_actions(state)
        avail = smax_avail_to_smac(jnp.stack([avail[a] for a in agents]), alive, jnp)
        own, world = jnp.stack([obs[a] for a in agents]), obs["world_state"]
        if harl_obs:
            own = jnp.concatenate([own, harl_extras(env, state, last, n)], axis=1)
        if harl_state:
            world = jnp.concatenate([world, harl_state_extras(state, last, avail, env._env.max_steps)])
        if fp_kinds is not None:
            world = harl_agent_states(env, state, last, avail, n, fp_kinds).reshape(-1)
        return {"obs": own, "state": world, "avail": avail, "alive": alive}

    def carried(state, last):
        return (strong(state), last) if track_last else strong(state)

    def reset_one(key):
        key, sub = jax.random.split(key)
        obs, state = env.reset(sub)
        return key, carried(state, no_action), view(state, obs, no_action)

    def step_one(key, state, actions):
        state = state[0] if track_last else state
        key, step_key, reset_key = jax.random.split(key, 3)
        smax_actions = smac_actions_to_smax(actions, jnp)
        obs, new, rewards, dones, _ = env.step_env(step_key, state, {a: smax_actions[i] for i, a in enumerate(agents)})
        last = jax.nn.one_hot(actions, n_actions, dtype=jnp.float32)
        final = view(new, obs, last)
        units = new.state.unit_alive
        allies_dead = ~jnp.any(units[:n])
        enemies_dead = ~jnp.any(units[n:])
        terminated = allies_dead | enemies_dead
        done = dones["__all__"]
        truncated = done & ~terminated
        won = enemies_dead & ~allies_dead
        obs_r, state_r = env.reset(reset_key)
        pick = lambda a, b: jax.tree.map(lambda x, y: jnp.where(done, x, y), a, b)  # noqa: E731
        state = pick(state_r, new)
        last = jnp.where(done, no_action, last)
        current = pick(view(state_r, obs_r, no_action), final)
        reward = rewards[agents[0]]  # SMAX gives every ally the team reward
        return key, carried(state, last), current, final, reward, terminated, truncated, won

    return env, jax.jit(jax.vmap(reset_one)), jax.jit(jax.vmap(step_one))


class SmaxVecEnv:
    """n_envs SMAX copies stepped by one jitted, vmapped function (an envs.base.BatchedEnv).
    Each copy has its own PRNG key; the key, the game state and the running episode
    statistics are all a snapshot needs."""

    def __init__(self, family: str, task: str, info: MapInfo, limit: int, n_envs: int, seed: int | None,
                 harl_obs: bool = False, harl_state: bool = False, fp_state: bool = False):
        if n_envs < 1:
            raise ConfigError(f"n_envs must be >= 1, got {n_envs}")
        self._jax, _ = _import_jax()
        self.n_envs, self.seed = n_envs, seed
        n, k = info.n_agents, info.n_enemies
        kinds = type_table(info)
        key = (task, limit, harl_obs, harl_state, fp_state)
        if key not in _COMPILED:  # shared by every batch of this task: jit compiles once per shape
            _COMPILED[key] = _compile(self._jax, smax_env(task, info, limit), n, 6 + k, harl_obs, harl_state,
                                      kinds if fp_state else None)
        self._env, self._reset_fn, self._step_fn = _COMPILED[key]
        env = self._env
        obs_dim = env.obs_size + (n * (6 + k) + n if harl_obs else 0)
        state_dim = env.state_size + (2 * n * (6 + k) + 1 if harl_state else 0)
        if fp_state:
            state_dim = n * fp_width(n, k, 6 + k, len(kinds))
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
            agent_states=fp_state,
        )
        self._keys = self._states = None
        self._label = f"{family}/{self.spec.task}" + "+harl_obs" * harl_obs + "+harl_state" * harl_state + "+fp_state" * fp_state
        self._stats = EpisodeStats(n_envs)
        self._closed = False

    # -- BatchedEnv API ----------------------------------------------------------------------
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
        self._stats.reset()
        zeros = np.zeros(self.n_envs, bool)
        step = self._to_step(current, np.zeros(self.n_envs, np.float32), zeros, zeros.copy())
        step.info.update(final_views(step, np.array([], int)))
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
        out = self._step_fn(self._keys, self._states, self._jax.numpy.asarray(joint, "int32"))
        self._keys, self._states, current, final, reward, terminated, truncated, won = out
        reward = np.asarray(reward, np.float32)
        terminated, truncated, won = (np.asarray(x, bool) for x in (terminated, truncated, won))
        step = self._to_step(current, reward, terminated, truncated)
        rows = np.flatnonzero(step.done)
        step.info.update(final_views(step, rows, self._rows_of(final, rows) if len(rows) else None))
        step.info["episodes"] = self._stats.add(reward, step.done, {int(k): {"win": bool(won[k])} for k in rows})
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
            **self._stats.snapshot(k),
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
        self._stats.restore(states)

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

    def _rows_of(self, view: dict, rows: np.ndarray) -> tuple:
        """(obs, state, avail, alive) of `rows` of a SMAC-layout view, for final_views."""
        obs, state, avail, alive = (np.asarray(view[k])[rows] for k in ("obs", "state", "avail", "alive"))
        n = self.spec.n_agents
        return ([obs[:, i] for i in range(n)], state, [avail[:, i] for i in range(n)], alive)
