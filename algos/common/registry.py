"""The one table of algorithms: name -> "module:Class". The Hydra schemas and the valid
`algo=` names (harness/config.py) come from it, and the shared algorithm tests iterate
it; a new algorithm is one file, one line here and one yaml in harness/conf/algo/."""

from __future__ import annotations

import importlib

from envs.base import EnvSpec
from envs.errors import ConfigError

ALGORITHMS: dict[str, str] = {
    "random": "algos.random_policy:RandomPolicy",
    "hasac": "algos.hasac:Hasac",
    "mehaml_kl": "algos.mehaml_kl:MehamlKl",
    "hatd3": "algos.hatd3:Hatd3",
    "qmix": "algos.qmix:Qmix",
    "happo": "algos.happo:Happo",
    "mappo": "algos.mappo:Mappo",
}


def algorithm_class(name: str):
    """The Algorithm subclass registered under `name`, imported on demand."""
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}; valid algorithms: {', '.join(ALGORITHMS)}")
    module, cls = ALGORITHMS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def config_class(name: str):
    """The config dataclass (Hydra schema) of algorithm `name`."""
    return algorithm_class(name).Config


def check_compatible(name: str, spec: EnvSpec) -> None:
    """Refuse, once and before anything is built, an algorithm that cannot handle the
    task's action space or its per-agent states; the message names the algorithms that can."""
    supported = config_class(name).action_spaces
    if spec.agent_states and not config_class(name).agent_states:
        can = [n for n in ALGORITHMS if config_class(n).agent_states and n != "random"]
        raise ConfigError(f"{name} does not take one state per agent (HARL's FP state, docs/fidelity.md O11/P6), which "
                          f"{spec.family}/{spec.task} has here — try algo={'|'.join(can)}, or the env's single state")
    if spec.action_kind in supported:
        return
    can = [n for n in ALGORITHMS if spec.action_kind in config_class(n).action_spaces and n != "random"]
    kind = {"box": "Box", "discrete": "Discrete", "mixed": "mixed"}[spec.action_kind]
    needs = " or ".join(sorted(k.capitalize() if k != "box" else "Box" for k in supported))
    hint = f" — try algo={'|'.join(can)}" if can else ""
    raise ConfigError(f"{name} needs {needs} actions; {spec.family}/{spec.task} has {kind} actions{hint}")
