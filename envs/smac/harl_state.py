"""HARL's "EP" global state (docs/fidelity.md E11), computed from a running smacv2
`StarCraft2Env`, for the sc2 backend on SMAC v1 maps (`env.state_type=official`).

HARL runs its own SMAC env; every tuned SMAC file but the FP maps selects `state_type: EP`
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

smacv2's env (a fork of the same SMAC code) holds every quantity; only the layout is HARL's.
"""

from __future__ import annotations

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
    row = [unit.health / unit.health_max]
    if ally:
        medivac = env.map_type == "MMM" and unit.unit_type == env.medivac_id
        row.append((unit.energy if medivac else unit.weapon_cooldown) / env.unit_max_cooldown(unit))
    row += [(unit.pos.x - env.map_x / 2) / env.max_distance_x, (unit.pos.y - env.map_y / 2) / env.max_distance_y]
    if env.shield_bits_ally if ally else env.shield_bits_enemy:
        row.append(unit.shield / env.unit_max_shield(unit))
    if env.unit_type_bits:
        types = [0.0] * env.unit_type_bits
        # an ally's type as HARL counts it (offset from the map's first custom type); an
        # enemy's by smacv2's per-map table, the same as HARL's
        types[unit.unit_type - env._min_unit_type if ally else env.get_unit_type_id(unit, False)] = 1.0
        row += types
    return row


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
