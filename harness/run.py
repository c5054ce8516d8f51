"""`python -m harness.run [key=value ...]`: compose the config, train, write results.

One run (`env=mpe task=simple_spread algo=hasac seed=3`) or a sweep
(`suite=quick algo=hasac,hatd3 seeds=5 launcher=local launcher.n_jobs=2`, any `key=a,b`
is swept without `-m`; `dry_run=true` prints the job table): harness/sweep.py expands and
checks the jobs, harness/launch.py runs them, and the sweep ends with a summary table and a
non-zero exit status if any job failed.

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
    suite: Any = MISSING
    """Suite (conf/suite/<name>.yaml); after composition, its name, which is also the first
    level of the results path. Runs outside a suite go under adhoc."""
    tuned: bool = True
    """Apply harness/conf/tuned/<algo>.yaml for this family/task before the command line."""
    variant: str = ""
    """Label appended to the task in the results path (task-variant), for suites that run
    one task in several configurations (e.g. discrete MPE)."""
    launcher: Any = MISSING
    """Where jobs run: local | submitit_local | slurm (harness/launch.py)."""
    cluster: Optional[str] = None
    """SLURM profile in slurm/<name>.yaml (or a path) for launcher=slurm."""
    seeds: Optional[int] = None
    """Sweep seeds 0..seeds-1 (instead of seed=K)."""
    dry_run: bool = False
    """Print the job table and estimated device-hours; launch nothing."""
    stale_after_min: float = 30.0
    """A `running` run whose heartbeat is older than this is reported as stale (dead)."""
    choices: Optional[Dict[str, str]] = None
    """Filled in by the harness: which env/algo yaml was composed."""


def register_schemas() -> None:
    """Put every algorithm config and family config into Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    from algos.common.registry import ALGORITHMS, config_class

    from harness.launch import LAUNCHERS

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
    task = f"{settings.task}-{cfg.variant}" if cfg.get("variant") else settings.task
    backend = settings.env_fields.get("backend")
    if backend not in (None, "sc2"):  # a substitute simulator (SMAX) is never filed as the real one
        task = f"{task}@{backend}"
    return Path(cfg.results_dir) / str(cfg.suite) / settings.family / task / settings.algo / f"seed_{settings.seed}"


def run_one(overrides: list[str]) -> tuple[Path, str]:
    """Train one (task, algo, seed), resuming from its checkpoint if it has one; returns
    (results directory, done | resumed | skipped)."""
    from harness.records import RunRecord
    from harness.sweep import check_same_config, run_state
    from harness.train import TrainingDiverged, prepare, train

    settings, cfg = load_settings(overrides)
    run_dir = run_dir_for(cfg, settings)
    record = RunRecord(run_dir)
    if record.done:
        print(f"skip: {run_dir} is finished (DONE); delete it to run again")
        return run_dir, "skipped"
    config_yaml = OmegaConf.to_yaml(cfg)
    check_same_config(run_dir, config_yaml)
    prepared = prepare(settings)  # every bad input fails here, before any file is written
    try:
        record.lock()
        resume = run_state(run_dir) == "resume"
        if not resume:
            record.start(config_yaml, str(settings.torch_device))
        try:
            summary = train(prepared, record, resume=resume)
        except TrainingDiverged as exc:
            record.fail("failed: nan", str(exc))
            raise
        except UserError:
            raise
        except BaseException:
            record.fail("failed", traceback.format_exc())
            raise
        record.finish(summary)
    finally:
        record.unlock()
        prepared.close()
    print(f"done: {run_dir}  eval_return_mean={summary['eval_return_mean']:.4g}")
    return run_dir, "resumed" if resume else "done"


def run_sweep(argv: list[str]) -> int:
    """Expand, check, launch; print the summary. 0 when every job ended well, 1 otherwise."""
    from harness.launch import launch
    from harness.sweep import dry_run_table, prepare_jobs, stale_runs, summary_table

    base, jobs = prepare_jobs(argv)
    results_dir = Path(base.results_dir)
    if base.dry_run:
        print(dry_run_table(jobs, results_dir))
        return 0
    if base.launcher.name == "slurm":
        from harness.launch import load_cluster_profile, slurm_parameters

        slurm_parameters(load_cluster_profile(base.cluster))  # a bad profile fails before anything runs
    stale = stale_runs(jobs, base.stale_after_min * 60)
    for job, age in stale:
        print(f"stale: {job.run_dir} says running but its heartbeat is {age / 60:.0f} min old "
              "(the process died); it resumes from its checkpoint")
    total = sum(j.compatible for j in jobs)
    seen: list = []

    def report(outcome) -> None:
        seen.append(outcome)
        if total > 1:
            print(f"[{len(seen)}/{len(jobs)}] {outcome.status}: {outcome.job.label}"
                  + (f" ({outcome.detail})" if outcome.detail else ""), flush=True)
        elif outcome.status == "skipped":
            print(f"skip: {outcome.job.run_dir} is finished (DONE); delete it to run again")

    outcomes = launch(base.launcher, jobs, results_dir, base.cluster, report)
    if len(jobs) > 1 or any(o.status.startswith("failed") for o in outcomes):
        print(summary_table(outcomes))
    return 1 if any(o.status.startswith("failed") for o in outcomes) else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors are one line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if any("dexhands" in a for a in argv) or "suite=full" in argv:
        from envs.dexhands import preload

        preload()  # Isaac Gym must be imported before torch, which the rest imports
    try:
        return run_sweep(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
