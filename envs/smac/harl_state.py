"""HARL's two SMAC states, computed from a running smacv2 `StarCraft2Env`, for the sc2
backend on SMAC v1 maps: the feature-pruned per-agent state "FP" (`agent_states`, HARL's
default, `env.state_type=official`; docs/fidelity.md O11, P6) and the "EP" global state
(`global_state`, `env.state_type=ep`; E11). smacv2's env (a fork of the same SMAC code)
holds every quantity; only the layouts are HARL's.

FP (`harl/configs/envs_cfgs/smac_state_config/FP.yaml`: use_state_agent, use_mustalive,
add_center_xy, state_last_action; no pathing, terrain or time step) makes
`get_state_agent` (`harl/envs/smac/StarCraft2_Env.py` l.1613 ff.) agent i's state. Its
blocks, flattened in this order, for a living agent i at (x, y) with sight range r:

- the other allies in id order (zero for the dead): visible (distance < r), distance, dx,
  dy over r, weapon cooldown (a medivac's energy on MMM maps) over its maximum, health,
  shield (Protoss), x and y from the map centre over the playable width and height, type
  one-hot, last action one-hot;
- every enemy (zero for the dead, seen or not): attack available to i, distance, dx, dy
  over r, visible, health, shield, type one-hot, x and y from the centre (type before
  position, the other way round from the allies);
- i's four move actions' availability;
- its own: 1, 0, 0, 0, health, shield, x and y from the centre, type one-hot, last action;
- a one-hot agent id. A dead agent's state is zero but for its id (use_mustalive).

EP: every tuned HAPPO SMAC file on 25m, 3s5z, 8m_vs_9m and MMM2 selects `state_type: EP`
(`harl/configs/envs_cfgs/smac_state_config/EP.yaml`: centre-relative positions, last
actions, the move state with pathing and terrain, the time step, the map information),
which makes `get_global_state` (`harl/envs/smac/StarCraft2_Env.py` l.1476 ff.) the critic's
input. Its blocks, flattened in this order:

- allies, one row each (zero for the dead): health, weapon cooldown (a medivac's energy on
  MMM maps), x and y from the map centre over the playable width and height, shield
  (Protoss), unit-type one-hot, last action one-hot;
- enemies, one row each (zero for the dead): health, x and y from the centre, shield, type;
- moves, one row per agent: its available actions, 8 pathing and 9 terrain-height cells
  around it (smacv2's `get_surrounding_pathing` / `get_surrounding_height`);
- the time step over the episode limit;
- map x size, map y size, playable width, playable height, agent 0's sight range.
"""

from __future__ import annotations

import math

import numpy as np

N_PATHING, N_HEIGHT, N_INFO = 8, 9, 5


def ally_width(env) -> int:
    return 4 + env.shield_bits_ally + env.unit_type_bits + env.n_actions


def enemy_width(env) -> int:
    return 3 + env.shield_bits_enemy + env.unit_type_bits


def state_size(env) -> int:
    """Known before the game starts: it depends on the map's teams and unit types only."""
    return (env.n_agents * ally_width(env) + env.n_enemies * enemy_width(env)
            + env.n_agents * (env.n_actions + N_PATHING + N_HEIGHT) + 1 + N_INFO)


def _unit_rows(env, unit, ally: bool) -> list[float]:
    """Health, [cooldown,] centre-relative x and y, [shield,] type one-hot of a living unit."""
    health, centre, types = _body(env, unit, ally)
    cooldown = [_cooldown(env, unit)] if ally else []
    return health[:1] + cooldown + centre + health[1:] + types


def global_state(env) -> np.ndarray:
    """HARL's EP state of smacv2 env `env` (float32, `state_size(env)` values)."""
    n, k, a = env.n_agents, env.n_enemies, env.n_actions
    allies = np.zeros((n, ally_width(env)), np.float32)
    enemies = np.zeros((k, enemy_width(env)), np.float32)
    moves = np.zeros((n, a + N_PATHING + N_HEIGHT), np.float32)
    for i in range(n):
        unit = env.get_unit_by_id(i)
        if unit.health > 0:
            row = _unit_rows(env, unit, ally=True)
            allies[i, :len(row)] = row
            allies[i, len(row):] = env.last_action[i]
        moves[i, :a] = env.get_avail_agent_actions(i)
        moves[i, a:a + N_PATHING] = env.get_surrounding_pathing(unit)
        moves[i, a + N_PATHING:] = env.get_surrounding_height(unit)
    for e, unit in env.enemies.items():
        if unit.health > 0:
            enemies[e] = _unit_rows(env, unit, ally=False)
    time = [env._episode_steps / env.episode_limit]
    info = [env.map_x, env.map_y, env.max_distance_x, env.max_distance_y, env.unit_sight_range(0)]
    return np.concatenate([allies.ravel(), enemies.ravel(), moves.ravel(), time, info]).astype(np.float32)


def fp_widths(env) -> tuple[int, int, int]:
    """Values of an FP ally row, enemy row and own block."""
    return (8 + env.shield_bits_ally + env.unit_type_bits + env.n_actions,
            8 + env.shield_bits_enemy + env.unit_type_bits,
            7 + env.shield_bits_ally + env.unit_type_bits + env.n_actions)


def agent_state_size(env) -> int:
    """Values of one agent's FP state, known before the game starts."""
    ally, enemy, own = fp_widths(env)
    return (env.n_agents - 1) * ally + env.n_enemies * enemy + 4 + own + env.n_agents


def _cooldown(env, unit) -> float:
    """An ally's weapon cooldown (a medivac's energy on MMM maps) over its maximum."""
    medivac = env.map_type == "MMM" and unit.unit_type == env.medivac_id
    return (unit.energy if medivac else unit.weapon_cooldown) / env.unit_max_cooldown(unit)


def _body(env, unit, ally: bool) -> tuple[list[float], list[float], list[float]]:
    """(health [and shield], centre-relative x and y, type one-hot) of a living unit."""
    health = [unit.health / unit.health_max]
    if env.shield_bits_ally if ally else env.shield_bits_enemy:
        health.append(unit.shield / env.unit_max_shield(unit))
    centre = [(unit.pos.x - env.map_x / 2) / env.max_distance_x, (unit.pos.y - env.map_y / 2) / env.max_distance_y]
    types = [0.0] * env.unit_type_bits
    if types:
        types[unit.unit_type - env._min_unit_type if ally else env.get_unit_type_id(unit, False)] = 1.0
    return health, centre, types


def _relative(agent, unit, sight: float) -> tuple[float, list[float]]:
    """(distance, [distance, dx, dy] over the sight range) from `agent` to `unit`."""
    dx, dy = unit.pos.x - agent.pos.x, unit.pos.y - agent.pos.y
    dist = math.hypot(dx, dy)
    return dist, [dist / sight, dx / sight, dy / sight]


def agent_states(env) -> np.ndarray:
    """HARL's FP state of every agent of smacv2 env `env`, [N, agent_state_size(env)]."""
    n = env.n_agents
    states = np.zeros((n, agent_state_size(env)), np.float32)
    for i in range(n):
        unit = env.get_unit_by_id(i)
        if unit.health > 0:
            states[i, :-n] = _living_agent_state(env, i, unit)
        states[i, -n + i] = 1.0
    return states


def _living_agent_state(env, i: int, unit) -> list[float]:
    sight = env.unit_sight_range(i)
    avail = env.get_avail_agent_actions(i)
    ally_zeros, enemy_zeros = ([0.0] * width for width in fp_widths(env)[:2])
    allies: list[float] = []
    for j in (j for j in range(env.n_agents) if j != i):
        other = env.get_unit_by_id(j)
        if other.health <= 0:
            allies += ally_zeros
            continue
        dist, scaled = _relative(unit, other, sight)
        health, centre, types = _body(env, other, ally=True)
        allies += [float(dist < sight), *scaled, _cooldown(env, other), *health, *centre, *types, *env.last_action[j]]
    enemies: list[float] = []
    for e, foe in sorted(env.enemies.items()):
        if foe.health <= 0:
            enemies += enemy_zeros
            continue
        dist, scaled = _relative(unit, foe, sight)
        health, centre, types = _body(env, foe, ally=False)
        enemies += [float(avail[env.n_actions_no_attack + e]), *scaled, float(dist < sight), *health, *types, *centre]
    health, centre, types = _body(env, unit, ally=True)
    own = [1.0, 0.0, 0.0, 0.0, *health, *centre, *types, *env.last_action[i]]
    return allies + enemies + [float(a) for a in avail[2:6]] + own
