"""`python -m harness.run [key=value ...]`: compose the config, train, write results.

Hydra composes the config (groups env/, algo/ in harness/conf, typed by the dataclasses
registered below, struct mode: unknown keys are errors). We call Hydra's compose API
rather than `@hydra.main` so that every bad input — an unknown name, an unknown field, a
malformed value, a missing simulator — becomes one line on stderr and exit status 2
instead of Hydra's multi-line report with status 1.

Tuned per-task values (harness/conf/tuned/<algo>.yaml, keyed "<family>/<task>") are
applied before the command line, so explicit `algo.<field>=` overrides always win.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Dict, Optional

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

from envs import FAMILIES, family_module
from envs.errors import ConfigError, UserError
from harness.settings import LoopConfig

CONF_DIR = Path(__file__).resolve().parent / "conf"


@dataclass
class RunConfig(LoopConfig):
    """Top-level keys of `python -m harness.run` (typed: `seed=abc` is an error).
    config.yaml holds the defaults list; the defaults of the keys live here and in
    LoopConfig (harness/settings.py), the keys the training loop reads."""

    env: Any = MISSING
    algo: Any = MISSING
    task: str = "simple_spread"
    """Task of the chosen family (envs/<family>.py TASKS)."""
    results_dir: str = "results"
    """Root of results/<suite>/<family>/<task>/<algo>/seed_<k>/."""
    suite: str = "adhoc"
    """Suite name in the results path; single runs outside a suite go under adhoc."""
    tuned: bool = True
    """Apply harness/conf/tuned/<algo>.yaml for this family/task before the command line."""
    choices: Optional[Dict[str, str]] = None
    """Filled in by the harness: which env/algo yaml was composed."""


def register_schemas() -> None:
    """Put every algorithm config and family config into Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    from algos.common.registry import ALGORITHMS, config_class

    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
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

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
    except Exception as exc:  # Hydra/OmegaConf raise many types for user mistakes
        raise ConfigError(_describe(exc)) from None
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


def tuned_overrides(algo: str, family: str, task: str) -> list[str]:
    """The per-task values of harness/conf/tuned/<algo>.yaml as `algo.k=v` overrides."""
    path = CONF_DIR / "tuned" / f"{algo}.yaml"
    if not path.exists():
        return []
    table = yaml.safe_load(path.read_text()) or {}
    values = table.get(f"{family}/{task}", {})
    return [f"algo.{k}={_hydra_value(v)}" for k, v in values.items()]


def _hydra_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _describe(exc: BaseException) -> str:
    """One line from Hydra's multi-line composition errors, naming the valid options."""
    text = str(exc)
    missing = re.search(r"Could not find '(\w+)/([^']+)'", text)
    if missing:
        group, name = missing.groups()
        options = [o.strip() for o in text.split("Available options in", 1)[-1].splitlines()[1:]]
        valid = [o for o in options if o and not o.endswith("_schema") and "=" not in o and ":" not in o]
        return f"unknown {group} {name!r}; valid: {', '.join(valid)}"
    line = _first_line(exc).rstrip(".")
    if exc.__cause__ is not None:
        line += f": {_first_line(exc.__cause__)}"
    return line


def load_settings(overrides: list[str]):
    """Compose, apply tuned values, and return (Settings, resolved config)."""
    from harness.train import Settings

    register_schemas()
    cfg, choices = compose(overrides)
    algo = choices["algo"]
    if cfg.get("tuned", True):
        tuned = tuned_overrides(algo, cfg.env.family, cfg.task)
        if tuned:
            cfg, choices = compose(tuned + overrides)
    try:
        algo_config = OmegaConf.to_object(cfg.algo)
        env_fields = OmegaConf.to_container(cfg.env, resolve=True)
    except Exception as exc:
        raise ConfigError(_first_line(exc)) from None
    env_fields.pop("family")
    cfg.choices = {k: choices[k] for k in ("env", "algo")}  # which algo/env yaml was used: config.yaml alone identifies the run
    loop_keys = {f.name: cfg[f.name] for f in dataclasses.fields(LoopConfig)}
    settings = Settings(
        family=cfg.env.family, task=str(cfg.task), algo=algo, algo_config=algo_config, env_fields=env_fields,
        **loop_keys,
    )
    return settings, cfg


def run_dir_for(cfg: DictConfig, settings) -> Path:
    return (Path(cfg.results_dir) / str(cfg.suite) / settings.family / settings.task
            / settings.algo / f"seed_{settings.seed}")


def run_one(overrides: list[str]) -> Path:
    """Train one (task, algo, seed); returns its results directory."""
    from harness.records import RunRecord
    from harness.train import TrainingDiverged, prepare, train

    settings, cfg = load_settings(overrides)
    run_dir = run_dir_for(cfg, settings)
    record = RunRecord(run_dir)
    if record.done:
        print(f"skip: {run_dir} is finished (DONE); delete it to run again")
        return run_dir
    prepared = prepare(settings)  # every bad input fails here, before any file is written
    try:
        record.start(OmegaConf.to_yaml(cfg), str(settings.torch_device))
        try:
            summary = train(prepared, record)
        except TrainingDiverged as exc:
            record.fail("failed: nan", str(exc))
            raise
        except BaseException:
            record.fail("failed", traceback.format_exc())
            raise
        record.finish(summary)
    finally:
        prepared.close()
    print(f"done: {run_dir}  eval_return_mean={summary['eval_return_mean']:.4g}")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors are one line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        run_one(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
