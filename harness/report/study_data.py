"""The runs the studies' report sections read (harness/report/studies.py draws the tables,
harness/report/study_figures.py the figures): each finished run with its whole eval.csv and
resolved config, grouped by what the study varies (α, reward scale), and their curves."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import yaml
from omegaconf import OmegaConf

from algos.common.registry import ALGORITHMS, config_class
from harness.layout import task_dir
from harness.report.load import Run

STUDY_TOKEN = re.compile(r"^(alpha[0-9.]+|auto|official|scale[0-9.]+)$")
"""Variant tokens that name a study setting, not a task (the suites' `alpha0.2`, `auto`,
`auto-official`, `scale10`): a task's runs at different settings share the rest."""


@dataclass
class StudyRun:
    """A finished run with its whole eval.csv and resolved config."""

    run: Run
    evals: pd.DataFrame
    config: dict = field(default_factory=dict)

    @property
    def base(self) -> str:
        """family/task directory of the run without the variant tokens that name its study
        setting: the runs of one task at several α or reward scales share it."""
        if "task" not in self.config:
            return self.run.key
        variant = "-".join(t for t in str(self.config.get("variant") or "").split("-") if t and not STUDY_TOKEN.match(t))
        return f"{self.run.family}/{task_dir(str(self.config['task']), variant, self.run.path.substitute)}"

    @functools.cached_property
    def temperature(self) -> str | None:
        """The algorithm config's own label of its temperature ('0.05' for a fixed α, 'auto'
        or 'auto (intended H̄)' for a learned one, AlgoConfig.temperature_label); None for
        algorithms without one, or a config.yaml this version cannot read."""
        name = (self.config.get("choices") or {}).get("algo")
        if name not in ALGORITHMS:
            return None
        try:
            schema = OmegaConf.structured(config_class(name))
            typed = OmegaConf.to_object(OmegaConf.merge(schema, self.config.get("algo") or {}))
        except Exception:  # OmegaConf raises several types for a config of another version
            return None
        return typed.temperature_label()

    @property
    def reward_scale(self) -> float:
        return float(self.config.get("reward_scale", 1.0))

    def column(self, name: str) -> np.ndarray:
        return self.evals[name].to_numpy(float) if name in self.evals else np.full(len(self.evals), np.nan)


def load_study_runs(runs: list[Run]) -> list[StudyRun]:
    out = []
    for run in runs:
        if not run.finished:
            continue
        try:
            evals = pd.read_csv(run.path.eval_csv)
            config = yaml.safe_load(run.path.config.read_text()) if run.path.config.exists() else {}
        except (OSError, ValueError, yaml.YAMLError, pd.errors.ParserError):
            continue  # the main report already lists unreadable runs
        out.append(StudyRun(run, evals, config or {}))
    return out


def curve(runs: list[StudyRun], column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, seed mean, 95 % normal band half-width) of `column` at the evaluation steps
    (their union up to the shortest run; runs that skipped a step are interpolated)."""
    last = min(r.run.env_steps for r in runs)
    grid = np.unique(np.concatenate([r.column("env_steps") for r in runs]))
    grid = grid[grid <= last]
    values = np.array([np.interp(grid, r.column("env_steps"), r.column(column)) for r in runs])
    mean = values.mean(axis=0)
    half = 1.96 * values.std(axis=0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros_like(mean)
    return grid, mean, half


def alpha_value(label: str) -> float:
    """The α of a fixed-temperature label; NaN for a learned one."""
    try:
        return float(label)
    except ValueError:
        return np.nan


def alpha_order(label: str) -> tuple[bool, float, str]:
    """Fixed α ascending, then the learned-α labels."""
    value = alpha_value(label)
    return (bool(np.isnan(value)), 0.0 if np.isnan(value) else value, label)


def soft_objective_column(group: list[StudyRun]) -> str:
    """The closed-form J where every run has it (single-state games), else the estimate."""
    exact = all(np.isfinite(r.column("eval_soft_objective_exact")).any() for r in group)
    return "eval_soft_objective_exact" if exact else "eval_soft_objective"
