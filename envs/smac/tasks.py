"""The task table of families `smac` and `smacv2`, their `Config`, and the backend choice.

Every map and scenario is one `MapInfo` row: team sizes, SMAC's episode limit, the SMAX
unit types where SMAX can represent the map, and the race of a SMACv2 scenario. Both
backends (envs/smac/sc2.py, envs/smac/smax.py) read this table; nothing here imports a
simulator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, NamedTuple

from envs.base import FamilyConfig
from envs.errors import ConfigError, TaskUnsupported
from envs.fidelity import Switch, check_switches

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
BACKENDS = ("auto", "smax", "sc2")

# SMACv2 unit mixes, as HARL's smacv2 map configs (harl/configs/envs_cfgs/smacv2_map_config/
# <race>_<n>_vs_<m>.yaml [9eddb5d]): smacv2's unit names in HARL's order, their weights, and
# the units that may not make up a whole team (exception_unit_types: none for protoss). SMAX
# lacks colossus, medivac and baneling; its race approximation draws the two shared types
# 50/50 (see RaceUnitTypes).
class Race(NamedTuple):
    """One SMACv2 race: `units`, `weights`, `exceptions` as smacv2's team_gen takes them, and
    `smax`, the two SMAX unit types that stand in for it."""

    units: tuple[str, ...]
    weights: tuple[float, ...]
    exceptions: tuple[str, ...]
    smax: tuple[int, int]


RACES = {
    "protoss": Race(("stalker", "zealot", "colossus"), (0.45, 0.45, 0.1), (), (STALKER, ZEALOT)),
    "terran": Race(("marine", "marauder", "medivac"), (0.45, 0.45, 0.1), ("medivac",), (MARINE, MARAUDER)),
    "zerg": Race(("zergling", "baneling", "hydralisk"), (0.45, 0.1, 0.45), ("baneling",), (ZERGLING, HYDRALISK)),
}


def sc2_installed() -> bool:
    """StarCraft II's Versions folder exists where pysc2 looks (SC2PATH or ~/StarCraftII)."""
    root = Path(os.environ.get("SC2PATH", Path.home() / "StarCraftII"))
    return (root / "Versions").is_dir()


def detected_backend() -> str:
    return "sc2" if sc2_installed() else "smax"


SC2_V1 = "env.backend=sc2 on SMAC v1 maps (family smac)"


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
    obs_extras: str = "official"
    """sc2, SMAC v1 maps: what an observation carries besides smacv2's features. 'official'
    = HARL's own SMAC env (docs/fidelity.md E10): the last actions (one-hot) of the visible
    living allies and the agent's own, and a one-hot agent id; 'none' = smacv2's observation
    alone, SMAC's own, which PyMARL's QMIX reads (`sc2.yaml`: obs_last_action False; its
    agent network adds the id and last action itself): harness/tuned/qmix.yaml sets it
    for QMIX. No effect on SMAX (its observation is its own, see `harl_obs`) or on SMACv2
    scenarios (HARL runs those through smacv2's own configs)."""
    state_type: str = "official"
    """sc2, SMAC v1 maps: the critic's state. 'official' = HARL's default, the feature-pruned
    state (FP, `harl/configs/envs_cfgs/smac.yaml` l.2; O11, P6): one state per agent
    (envs/smac/harl_state.py `agent_states`), so each agent has its own critic row; 'ep' =
    HARL's "EP" global state (E11, `global_state`), which HARL's HAPPO files select on 25m,
    3s5z, 8m_vs_9m and MMM2; 'smacv2' = smacv2's `get_state`, SMAC's own state, which
    PyMARL's QMIX reads. harness/tuned/<algo>.yaml sets the official code's value per
    algorithm and map ('ep' for those HAPPO maps, 'smacv2' for QMIX), so a run records a
    deviation only where it differs from that value. No effect on SMAX (see `harl_state`,
    `fp_state`) or on SMACv2 scenarios."""
    harl_obs: bool = False
    """smax, SMAC v1 maps: append HARL's observation extras (E10: the visible living allies'
    and the agent's own last actions, a one-hot agent id) to SMAX's own observation. Off by
    default: HARL does not run SMAX, and SMAX's observation is the substitute's definition;
    this measures what E10 changes on the substitute."""
    harl_state: bool = False
    """smax, SMAC v1 maps: append what HARL's "EP" state holds beyond SMAX's world state
    (E11: the living allies' last actions, every agent's available actions, the time step
    over the episode limit). Off by default, as `harl_obs`."""
    fp_state: bool = False
    """smax, SMAC v1 maps: HARL's feature-pruned state (O11, P6; HARL's default state type)
    instead of SMAX's world state: one state per agent, built from SMAX's units in the
    layout of HARL's get_state_agent (envs/smac/smax.py `harl_agent_states`), so HAPPO and
    MAPPO give each agent its own critic row. Off by default, as `harl_obs`; not with
    `harl_state`. Algorithms without per-agent critic rows refuse it."""

    fidelity: ClassVar[dict[str, Switch]] = {
        "obs_extras": Switch(("none",), SC2_V1, lambda family, task, c: family == "smac" and resolve_backend(c) == "sc2"),
        "state_type": Switch(("ep", "smacv2"), SC2_V1, lambda family, task, c: family == "smac" and resolve_backend(c) == "sc2"),
    }

    def substitute(self) -> str | None:
        """SMAX substitutes for StarCraft II."""
        return None if resolve_backend(self) == "sc2" else "smax"


def resolve_backend(config: Config) -> str:
    if config.backend not in BACKENDS:
        raise ConfigError(f"env.backend must be one of {', '.join(BACKENDS)}, got {config.backend!r}")
    if config.backend == "auto":
        return detected_backend()
    return config.backend


def check(family: str, task: str, config: Config) -> tuple[MapInfo, str, int]:
    """Validate names and fields; (map, backend, episode limit)."""
    if task not in FAMILY_TASKS[family]:
        raise ConfigError(f"unknown {family} task {task!r}; valid tasks: {', '.join(FAMILY_TASKS[family])}")
    backend = resolve_backend(config)
    info = MAPS[task]
    limit = info.limit if config.episode_limit is None else int(config.episode_limit)
    if limit < 1:
        raise ConfigError(f"env.episode_limit must be >= 1, got {config.episode_limit}")
    # The two lines below name no task: a sweep lists each once, with the tasks it covers.
    if backend == "smax" and info.allies is None and info.race is None:
        raise TaskUnsupported(
            "the task needs StarCraft II: SMAX has no medivacs or terrain; "
            + ("use env.backend=sc2" if sc2_installed() else "StarCraft II 4.10 and smacv2 are not installed here (README: SMAC)")
        )
    if backend == "sc2" and info.race == "any":
        raise TaskUnsupported("the task is a SMAX scenario: it runs on env.backend=smax only")
    check_switches(config, "env", family, task)
    for name, on_sc2 in (("harl_obs", "env.obs_extras"), ("harl_state", "env.state_type"), ("fp_state", "env.state_type")):
        value = getattr(config, name)
        if not isinstance(value, bool):
            raise ConfigError(f"env.{name} must be true or false, got {value!r}")
        if value and (backend != "smax" or family != "smac"):
            raise ConfigError(f"env.{name}=true does not apply here: it only affects env.backend=smax on SMAC v1 "
                              f"maps (family smac; on sc2, {on_sc2} gives HARL's)")
    if config.harl_state and config.fp_state:
        raise ConfigError("env.harl_state and env.fp_state are two different states: set one of them")
    return info, backend, limit
