"""SMACv2-style scenarios: the `smacv2` family, sharing the envs/smac package's task table
and two backends.

sc2: smacv2's capability wrapper on the 10gen maps (protoss/terran/zerg, procedurally drawn
teams and start positions). smax: SMAX's own `smacv2_{5,10,20}_units`, and the race tasks
approximated with each race's two SMAX unit types (envs/smac/smax.py, RaceUnitTypes).
"""

from __future__ import annotations

from envs import smac
from envs.smac.tasks import FAMILY_TASKS, Config

TASKS = FAMILY_TASKS["smacv2"]
__all__ = ["TASKS", "Config", "env_factory", "make_vec"]


def make_vec(task: str, config: Config, n_envs: int, seed: int | None):
    return smac.make_vec(task, config, n_envs, seed, family="smacv2")


def env_factory(task: str, config: Config):
    return smac.env_factory(task, config, family="smacv2")
