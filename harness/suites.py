"""The command line and the suites, before anything is composed: Hydra's override parser
splits swept keys from plain ones, and `conf/suite/<name>.yaml` files list runs (env, task,
budget, eval_every, variant, overrides, per-algorithm `algo_overrides`, and the run's own
`algos` and `seeds`), the suite's default `algos` and `seeds`, per-algorithm
`algo_overrides`, and `include` of other suites. Light on imports (no torch): the entry point reads the families
a command line reaches from here before anything imports torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from envs.errors import ConfigError

SUITE_DIR = Path(__file__).resolve().parent / "conf" / "suite"
ADHOC = "adhoc"
"""The suite of runs given on the command line alone."""
LIST_KEYS = ("logger",)
"""Keys whose `key=a,b` is one list value (`logger=csv,tensorboard`), never a sweep."""


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def read_suite(name: str) -> dict[str, Any]:
    """conf/suite/<name>.yaml with its `include:`d suites' runs appended."""
    path = SUITE_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown suite {name!r}; valid: {', '.join(available_suites())}")
    suite = yaml.safe_load(path.read_text()) or {}
    runs = list(suite.get("runs", []))
    algo_overrides = dict(suite.get("algo_overrides", {}))
    for included in suite.get("include", []):
        inner = read_suite(included)
        runs += inner["runs"]
        algo_overrides = inner.get("algo_overrides", {}) | algo_overrides
    return {**suite, "runs": runs, "algo_overrides": algo_overrides}


def load_suite(name: str) -> dict[str, Any]:
    """The suite's runs, default algos and per-algorithm overrides; `adhoc` is the command
    line alone."""
    if name == ADHOC:
        return {"runs": [{}], "algos": None, "algo_overrides": {}}
    return read_suite(name)


def entry_overrides(entry: dict[str, Any]) -> list[str]:
    """A suite run as command-line overrides (placed before the user's, which win)."""
    out = []
    for key in ("env", "task", "budget", "eval_every", "variant"):
        if key in entry:
            out.append(f"{key}={entry[key]}")
    out += [str(o) for o in entry.get("overrides", [])]
    return out


def split_overrides(argv: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(plain overrides, {key: swept values}) by Hydra's own override parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(argv)
    except Exception as exc:  # Hydra's OverrideParseException and friends
        raise ConfigError(f"cannot parse overrides: {str(exc).splitlines()[0]}") from None
    plain, swept = [], {}
    for override in parsed:
        key = override.key_or_group
        if key in LIST_KEYS and not isinstance(override.value(), list):
            values = override.sweep_string_iterator() if override.is_sweep_override() else [override.value()]
            plain.append(f"{key}=[{','.join(str(v) for v in values)}]")
        elif override.is_sweep_override():
            swept[override.key_or_group] = list(override.sweep_string_iterator())
        else:
            plain.append(override.input_line)
    return plain, swept


def families_named(argv: list[str]) -> set[str]:
    """Every env family a command line can reach: `env=` values and the suite's runs.
    Unknown names are left for composition to refuse."""
    plain, swept = split_overrides(argv)
    values = dict(o.split("=", 1) for o in plain if "=" in o) | {k: ",".join(v) for k, v in swept.items()}
    families = set(values.get("env", "").split(",")) - {""}
    for suite in values.get("suite", ADHOC).split(","):
        try:
            families |= {str(run["env"]) for run in load_suite(suite)["runs"] if "env" in run}
        except ConfigError:
            continue
    return families
