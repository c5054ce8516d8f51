"""Read a results tree into runs, and the repository's published numbers and bounds.

A run is `<suite>/<family>/<task>/<algo>/seed_<k>/` (harness/layout.py). Its score is the
family's success metric where eval.csv has one (win rate, score rate; in percent, as the
papers print them), else the mean evaluation return. Nothing is dropped silently: every run
that cannot count (failed, unfinished, unreadable) is kept with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from envs.errors import ConfigError
from harness.layout import RunPath

PAPER_DIR = Path(__file__).resolve().parents[1] / "paper"
SUCCESS_COLUMNS = {"win_rate": "win_rate_pct", "score": "score_rate_pct"}


@dataclass
class Run:
    suite: str
    family: str
    task: str
    """Task directory name: the task, plus `-variant` where the suite has variants."""
    algo: str
    seed: int
    path: RunPath
    status: str
    """done | failed | failed: nan | running | interrupted | submitted | unreadable | ..."""
    metric: str = "return"
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reason: str = ""
    results_note: str = ""
    """summary.json's `results_note`: why this task's scores are not the published simulator's."""
    fidelity: dict[str, str] | None = None
    """summary.json's `fidelity`: the switches away from the official behaviour ({} = none;
    None = a run that did not record them)."""
    soft_qre: bool = False
    """Evaluated against the analytic soft QRE (eval.csv's `eval_qre_tv`, single-state games):
    its claim is the distance to the QRE, reported in the claims and the soft-objective study."""

    @property
    def fidelity_label(self) -> str:
        """"official behaviour", the differing switches, or "fidelity not recorded"."""
        if self.fidelity is None:
            return "fidelity not recorded"
        if not self.fidelity:
            return "official behaviour"
        return "differs: " + ", ".join(f"{k}={v}" for k, v in sorted(self.fidelity.items()))

    @property
    def key(self) -> str:
        return f"{self.family}/{self.task}"

    @property
    def finished(self) -> bool:
        return self.status == "done" and len(self.scores) > 0

    @property
    def final(self) -> float:
        return float(self.scores[-1])

    @property
    def env_steps(self) -> int:
        return int(self.steps[-1]) if len(self.steps) else 0


def read_run(path: RunPath) -> Run:
    run = Run(path.suite, path.family, path.task, path.algo, path.seed, path, status="unknown")
    if not path.meta.exists() and path.slurm.exists():
        run.status, run.reason = "submitted", "its SLURM job has not started it (slurm.json)"
        return run
    try:
        run.status = json.loads(path.meta.read_text()).get("status", "unknown")
    except (OSError, ValueError) as exc:
        run.status, run.reason = "unreadable", f"meta.json: {type(exc).__name__}"
        return run
    if run.status == "done" and not path.done:
        run.status = "running"
    try:
        evals = pd.read_csv(path.eval_csv)
        steps = evals["env_steps"].to_numpy(int)
        column = next((c for c in SUCCESS_COLUMNS if c in evals.columns), None)
        if column is None:
            scores = evals["eval_return_mean"].to_numpy(float)
        else:
            run.metric = SUCCESS_COLUMNS[column]
            scores = 100.0 * evals[column].to_numpy(float)
    except FileNotFoundError:
        run.reason = "no eval.csv"
        return run
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
        run.status, run.reason = "unreadable", f"eval.csv: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return run
    if not np.all(np.isfinite(scores)) or (len(steps) > 1 and np.any(np.diff(steps) <= 0)):
        run.status, run.reason = "unreadable", "eval.csv: non-finite scores or steps out of order"
        return run
    run.steps, run.scores = steps, scores
    run.soft_qre = "eval_qre_tv" in evals.columns and bool(np.isfinite(evals["eval_qre_tv"].to_numpy(float)).any())
    if run.status == "done":
        try:
            summary = json.loads(path.summary.read_text())
            run.results_note = summary.get("results_note") or ""
            run.fidelity = summary.get("fidelity")
        except (OSError, ValueError, AttributeError):
            pass  # the scores come from eval.csv; a missing summary only loses the labels
    return run


def load_runs(roots: list[Path]) -> list[Run]:
    """Every run under `roots`; all must belong to one suite (tables never mix suites)."""
    located: list[RunPath] = []
    for root in roots:
        if not root.is_dir():
            raise ConfigError(f"{root} is not a directory of results")
        located += RunPath.find(root)
    if not located:
        raise ConfigError(f"no runs under {', '.join(map(str, roots))} "
                          "(expected <suite>/<family>/<task>/<algo>/seed_<k>/)")
    suites = sorted({path.suite for path in located})
    if len(suites) > 1:
        raise ConfigError(f"runs from several suites ({', '.join(suites)}); report one suite at a time, "
                          f"e.g. results/{suites[0]}")
    return [read_run(path) for path in located]


def paper_numbers() -> pd.DataFrame:
    """Published numbers (harness/paper/paper_numbers.csv), each with its source."""
    return pd.read_csv(PAPER_DIR / "paper_numbers.csv")


def bounds_table() -> pd.DataFrame:
    """Normalisation bounds per task (harness/paper/bounds.csv): floor = random's score,
    ceiling = best published score; either may be missing, with the reason."""
    return pd.read_csv(PAPER_DIR / "bounds.csv", comment="#")


def paper_budgets() -> pd.DataFrame:
    """The env steps behind each task's published comparison (harness/paper/budgets.csv)."""
    return pd.read_csv(PAPER_DIR / "budgets.csv", comment="#")
