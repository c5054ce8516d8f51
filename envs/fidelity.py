"""Fidelity switches: where this code can differ from the official code, by name.

The official code's behaviour is every default (HARL at d539bad for HASAC, HATD3, HAPPO,
MAPPO; PyMARL for QMIX; PettingZoo 1.22 and HARL's MaMuJoCo wrapper for the environments).
Each deviation we keep is a string field of an algorithm's or a family's config whose
default is "official"; the config class lists it in its ClassVar `fidelity`
(field -> `Switch`), and docs/fidelity.md holds one row per switch with the official file
and line and the measured effect.

`check_switches` refuses an unknown value, and a non-official value where the switch has
no effect (the switch "does not apply"): both are one-line `ConfigError`s before anything
is built. `differing` lists the switches away from their official value; the harness
records them with each run (config.yaml, summary.json) and the report names them.

Where the official code's own setting depends on the algorithm and task (HARL's tuned files
pick SMAC's state per algorithm and map, PyMARL's QMIX keeps SMAC's own inputs), the
harness's tuned table names that value (harness/tuned/<algo>.yaml, `env:`); it is the
official value of that run, passed to `differing` as `official`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from envs.errors import ConfigError

OFFICIAL = "official"


def always(*context: Any) -> bool:
    return True


@dataclass(frozen=True)
class Switch:
    """One fidelity switch: its non-official values and where it has an effect."""

    alternatives: tuple[str, ...]
    """Accepted values besides "official"."""
    applies_to: str = "every task"
    """Where the switch has an effect, for the error message (e.g. "Box action spaces")."""
    applies: Callable[..., bool] = always
    """Predicate over the context the config is checked in (algorithms: (spec, config);
    families: (task, config)); a non-official value where it is False is an error."""

    @property
    def values(self) -> tuple[str, ...]:
        return (OFFICIAL, *self.alternatives)


def switches(config: Any) -> dict[str, Switch]:
    """The fidelity switches a config class declares ({} when none)."""
    return dict(getattr(type(config), "fidelity", {}))


def check_switches(config: Any, prefix: str, *context: Any) -> None:
    """ConfigError (one line) for an unknown switch value, or for a non-official value of a
    switch that does not apply in `context`; `prefix` names the config ("algo", "env")."""
    for name, switch in switches(config).items():
        value = getattr(config, name)
        if value not in switch.values:
            raise ConfigError(f"{prefix}.{name} must be one of {', '.join(switch.values)}; got {value!r}")
        if value != OFFICIAL and not switch.applies(*context, config):
            raise ConfigError(f"{prefix}.{name}={value} does not apply here: it only affects {switch.applies_to}")


def applies(config: Any, name: str, *context: Any) -> bool:
    """Whether switch `name` of `config` has an effect in `context` (False for a field that
    is not a declared switch)."""
    switch = switches(config).get(name)
    return switch is not None and bool(switch.applies(*context, config))


def switch_fields(config: Any) -> list[str]:
    """The names of a config's fidelity switches: every field whose default is "official"
    (the declared ones and any other, so that recording never depends on the declaration)."""
    return [f.name for f in dataclasses.fields(config) if f.default == OFFICIAL]


def differing(config: Any, prefix: str, official: dict[str, str] | None = None) -> dict[str, str]:
    """{"<prefix>.<field>": value} for every switch away from its official value: "official",
    or `official[field]` where the official code's setting for this run is another value."""
    official = official or {}
    return {f"{prefix}.{name}": getattr(config, name) for name in switch_fields(config)
            if getattr(config, name) != official.get(name, OFFICIAL)}
