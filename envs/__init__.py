"""Environment families behind one CTDE interface: `envs.make(family, task, ...)`.

The family table below is data: a new family is one module and one line here. Family
modules import their simulator only when an env is built, so `import envs` works with no
simulator installed.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

from envs.base import AgentView, EnvSpec, FamilyConfig, SingleEnv, Step, VecEnv
from envs.errors import ConfigError, EnvUnavailable, UserError

# family name -> module implementing it (module attributes: TASKS, Config, env_factory)
FAMILIES: dict[str, str] = {
    "matrix": "envs.matrix",
    "mpe": "envs.mpe",
    "mamujoco": "envs.mamujoco",
    "lag": "envs.lag",
    "dexhands": "envs.dexhands",
    "smac": "envs.smac",
    "smacv2": "envs.smacv2",
    "football": "envs.football",
}

__all__ = [
    "AgentView", "ConfigError", "EnvSpec", "EnvUnavailable", "FamilyConfig", "FAMILIES",
    "SingleEnv", "Step", "UserError", "VecEnv", "family_module", "make", "make_config",
]


def family_module(family: str) -> ModuleType:
    """The module of a family, or a ConfigError listing the valid family names."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown env family {family!r}; valid families: {', '.join(FAMILIES)}")
    return importlib.import_module(FAMILIES[family])


def make_config(family: str, **fields) -> FamilyConfig:
    """The family's typed config from `env.<field>` values; unknown fields are an error."""
    config_cls = family_module(family).Config
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(
            f"unknown field(s) {', '.join(unknown)} for env={family}; valid fields: {', '.join(sorted(known))}"
        )
    return config_cls(**fields)


def make(family: str, task: str, n_envs: int = 1, seed: int | None = None, **fields) -> VecEnv:
    """Build `n_envs` lock-step copies of `family/task`. Raises ConfigError for unknown
    names or bad fields and EnvUnavailable when the family's simulator is missing."""
    module = family_module(family)
    config = make_config(family, **fields)
    # Optional hook: a natively batched simulator (SMAX under jax.vmap) builds its own
    # VecEnv-compatible batch; None falls back to per-copy env_factory.
    if hasattr(module, "make_vec"):
        vec = module.make_vec(task, config, n_envs, seed)
        if vec is not None:
            return vec
    factory = module.env_factory(task, config)
    return VecEnv(factory, n_envs, config.vectorization, config.n_workers, seed=seed)
