"""Compose a run's config with Hydra and resolve it into typed `Settings` and a `RunPath`.

Hydra composes config.yaml with the groups env/, algo/, launcher/, suite/ in harness/conf,
typed by the dataclasses registered here (struct mode: unknown keys are errors). We call
Hydra's compose API rather than `@hydra.main` so that every bad input — an unknown name, an
unknown field, a malformed value — becomes one line (a ConfigError) instead of Hydra's
multi-line report with status 1.

Tuned per-task values (harness/tuned/<algo>.yaml, keyed "<family>/<task>", with
"<family>/*" for every task of a family) are applied before the command line, so explicit
`algo.<field>=` / `env.<field>=` overrides always win. An entry's `env:` values are the
official code's environment settings for that algorithm and task (HARL's tuned files'
`env_args`, PyMARL's SMAC inputs for QMIX): they are applied only where the switch has an
effect (a SMAC state on the sc2 backend, not on SMAX) and are the run's official values
when its fidelity switches are recorded (`official_env_values`).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from algos.common.registry import ALGORITHMS, config_class
from envs import FAMILIES, family_module, make_config
from envs.errors import ConfigError
from envs.fidelity import applies, differing, switches
from harness.layout import RunPath, task_dir, variant_label
from harness.loggers import check_loggers
from harness.settings import LAUNCHERS, LoopConfig, RunConfig, Settings
from harness.suites import available_suites

CONF_DIR = Path(__file__).resolve().parent / "conf"
# The tuned tables live outside CONF_DIR: Hydra takes a folder there for a config group, and
# `tuned=false` would then be a group choice.
TUNED_DIR = Path(__file__).resolve().parent / "tuned"
# Keys that say how or where to run, not what is computed: a rerun may change them freely;
# and `fidelity`, derived from the algo/env fields that are compared anyway.
VOLATILE_KEYS = ("progress", "launcher", "cluster", "dry_run", "report", "seeds", "pack", "pack_batched", "results_dir",
                 "torch_threads", "logger", "wandb_mode", "wandb_project", "wandb_entity", "fidelity")

# Fields added to a config after runs were recorded, with the value those runs computed with
# (a function of the old section): a config.yaml without the field is the same run as one
# with this value, so exact resume and committed results stay valid. HASAC had no ValueNorm
# before `use_valuenorm`; an on-policy critic was an MLP and HAPPO's factor chunked before
# `recurrent_critic`/`factor_hidden`, which only GRU actors notice. A SMAC run before
# `obs_extras`/`state_type`/`harl_obs`/`harl_state`/`fp_state` saw smacv2's observation and
# state on sc2, SMAX's own on smax.
ADDED_FIELDS: dict[tuple[str, str], Callable[[dict], Any]] = {
    ("algo", "use_valuenorm"): lambda algo: False,
    ("algo", "recurrent_critic"): lambda algo: "mlp" if algo.get("use_recurrent_policy") else "official",
    ("algo", "factor_hidden"): lambda algo: "chunks" if algo.get("use_recurrent_policy") else "official",
    ("env", "obs_extras"): lambda env: "none" if env.get("backend") == "sc2" else "official",
    ("env", "state_type"): lambda env: "smacv2" if env.get("backend") == "sc2" else "official",
    ("env", "harl_obs"): lambda env: False,
    ("env", "harl_state"): lambda env: False,
    ("env", "fp_state"): lambda env: False,
}


@functools.cache
def register_schemas() -> None:
    """Put every algorithm config, family config and launcher into Hydra's ConfigStore
    (once per process: the store is global)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
    for name, schema in LAUNCHERS.items():
        store.store(group="launcher", name=f"{name}_schema", node=schema)
    for name in ALGORITHMS:
        store.store(group="algo", name=f"{name}_schema", node=config_class(name))
    for family in FAMILIES:
        config_cls = family_module(family).Config
        schema = dataclasses.make_dataclass(
            f"{family}_schema", [("family", str, dataclasses.field(default=family))], bases=(config_cls,)
        )
        store.store(group="env", name=f"{family}_schema", node=schema)


def compose(overrides: list[str]) -> tuple[DictConfig, dict[str, str]]:
    """Compose config.yaml with `overrides`; returns (config, group choices)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    check_group_choices(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
    except Exception as exc:  # Hydra/OmegaConf raise many types for user mistakes
        raise ConfigError(_describe(exc)) from None
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.suite = choices["suite"]  # the runs are read by harness/sweep.py; the run keeps the name
    return cfg, choices


def tuned_overrides(algo: str, family: str, task: str, env_fields: dict[str, Any] | None = None) -> list[str]:
    """The per-task values of harness/tuned/<algo>.yaml as `algo.k=v` overrides, then
    its `env:` values as `env.k=v`: those that apply to the env config `env_fields` (every
    one when None, a first guess before the config is composed)."""
    values = _tuned_entry(algo, family, task)
    env_values = values.pop("env", {})
    if env_fields is not None:
        env_values = _applying(env_values, family, task, env_fields)
    return ([f"algo.{k}={_hydra_value(v)}" for k, v in values.items()]
            + [f"env.{k}={_hydra_value(v)}" for k, v in env_values.items()])


def official_env_values(algo: str, family: str, task: str, env_fields: dict[str, Any]) -> dict[str, str]:
    """The official code's env switch values for this algorithm and task where they are not
    "official" (the tuned table's `env:` values that apply to `env_fields`)."""
    return _applying(_tuned_entry(algo, family, task).get("env", {}), family, task, env_fields)


def _tuned_entry(algo: str, family: str, task: str) -> dict[str, Any]:
    """The "<family>/*" entry updated by the "<family>/<task>" one (`env:` merged too)."""
    table = _tuned_table(algo)
    common, own = table.get(f"{family}/*", {}), table.get(f"{family}/{task}", {})
    return {**common, **own, "env": {**common.get("env", {}), **own.get("env", {})}}


def _applying(env_values: dict[str, Any], family: str, task: str, env_fields: dict[str, Any]) -> dict[str, Any]:
    config = make_config(family, **{**env_fields, **env_values})
    for name in env_values:
        if name not in switches(config):  # a tuned env value is an official setting: a declared switch
            raise ConfigError(f"harness/tuned: env.{name} is not a fidelity switch of env={family}")
    return {k: v for k, v in env_values.items() if applies(config, k, family, task)}


@functools.cache
def _tuned_table(algo: str) -> dict[str, Any]:
    path = TUNED_DIR / f"{algo}.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def _named_tuned(overrides: list[str]) -> list[str]:
    """The tuned values of the algorithm, env and task the overrides name (the last of each),
    [] when one is not named: load_settings composes once when this guess is right."""
    named = dict(o.split("=", 1) for o in overrides if o.split("=", 1)[0] in ("algo", "env", "task"))
    if len(named) < 3 or "tuned=false" in overrides:
        return []
    return tuned_overrides(named["algo"], named["env"], named["task"])


def _hydra_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _describe(exc: BaseException) -> str:
    """One line from Hydra's multi-line composition errors (with their cause)."""
    line = first_line(exc).rstrip(".")
    if exc.__cause__ is not None:
        line += f": {first_line(exc.__cause__)}"
    return line


GROUP_OPTIONS: dict[str, Callable[[], list[str]]] = {
    "env": lambda: list(FAMILIES), "algo": lambda: list(ALGORITHMS),
    "launcher": lambda: list(LAUNCHERS), "suite": available_suites,
}
"""Each config group's valid names, from the registries (and conf/suite/)."""


def check_group_choices(overrides: list[str]) -> None:
    """An unknown `env=`, `algo=`, `launcher=` or `suite=` name is one line naming the valid
    ones, before Hydra composes anything."""
    for override in overrides:
        key, _, value = override.partition("=")
        options = GROUP_OPTIONS.get(key.lstrip("+~"))
        if options is not None and value not in options():
            raise ConfigError(f"unknown {key.lstrip('+~')} {value!r}; valid: {', '.join(options())}")


def load_settings(overrides: list[str]) -> tuple[Settings, DictConfig]:
    """Compose, apply tuned values, and return (Settings, resolved config)."""
    register_schemas()
    guess = _named_tuned(overrides)
    cfg, choices = compose(guess + overrides)
    algo = choices["algo"]
    tuned = tuned_overrides(algo, cfg.env.family, cfg.task, _env_fields(cfg)) if cfg.get("tuned", True) else []
    if tuned != guess:  # other names than the command line's, or env values that do not apply: compose again
        cfg, choices = compose(tuned + overrides)
    try:
        algo_config = OmegaConf.to_object(cfg.algo)
    except Exception as exc:
        raise ConfigError(first_line(exc)) from None
    env_fields = _env_fields(cfg)
    check_loggers(cfg.logger, cfg.wandb_mode)  # a missing package stops the run before it writes
    cfg.choices = {k: choices[k] for k in ("env", "algo")}  # which algo/env yaml was used: config.yaml alone identifies the run
    loop_keys = {f.name: cfg[f.name] for f in dataclasses.fields(LoopConfig)}
    settings = Settings(
        family=cfg.env.family, task=str(cfg.task), algo=algo, algo_config=algo_config, env_fields=env_fields,
        **loop_keys,
    )
    if cfg.get("tuned", True):
        settings.official_env = official_env_values(algo, settings.family, settings.task, env_fields)
    cfg.fidelity = fidelity_of(settings)
    return settings, cfg


def _env_fields(cfg: DictConfig) -> dict[str, Any]:
    try:
        fields = OmegaConf.to_container(cfg.env, resolve=True)
    except Exception as exc:
        raise ConfigError(first_line(exc)) from None
    fields.pop("family")
    return fields


def fidelity_of(settings: Settings) -> dict[str, str]:
    """The run's fidelity switches away from the official behaviour, algorithm and family
    alike ({} = official behaviour), as config.yaml and summary.json record them."""
    family_config = make_config(settings.family, **settings.env_fields)
    return differing(settings.algo_config, "algo") | differing(family_config, "env", settings.official_env)


def run_path(cfg: DictConfig, settings: Settings) -> RunPath:
    """Where a composed run's results go (harness/layout.py)."""
    family_config = make_config(settings.family, **settings.env_fields)
    variant = variant_label(family_config.variant_tokens(), str(cfg.get("variant") or ""))
    name = task_dir(settings.task, variant, family_config.substitute())
    return RunPath.build(cfg.results_dir, str(cfg.suite), settings.family, name, settings.algo, settings.seed)


def semantic_config(config_yaml: str) -> dict[str, Any]:
    config = yaml.safe_load(config_yaml) or {}
    for key in VOLATILE_KEYS:
        config.pop(key, None)
    return config


def check_same_config(path: RunPath, config_yaml: str) -> None:
    """Refuse to mix: an existing run directory must have been written by this config."""
    if not path.config.exists():
        return
    old, new = semantic_config(path.config.read_text()), semantic_config(config_yaml)
    for (section, key), value_then in ADDED_FIELDS.items():
        if isinstance(old.get(section), dict) and key not in old[section] and key in (new.get(section) or {}):
            old[section][key] = value_then(old[section])
    if old != new:
        changed = ", ".join(_differences(old, new)[:3])
        raise ConfigError(f"{path} was written by a different config ({changed}); "
                          "use another results_dir or suite, or delete that directory")


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in dict.fromkeys([*old, *new]):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]
