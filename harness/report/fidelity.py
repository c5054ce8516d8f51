"""The report's fidelity section: the measured effect of each fidelity switch (docs/fidelity.md).

Runs are paired by what they record, not by their names: every finished run's summary.json
holds `fidelity`, the switches away from the official behaviour ({} = official). Runs of one
task and algorithm (the task directory without its `fid.<switch>.<value>` variant tokens)
form a group; in each group the official runs are the baseline, and every other set of
switches is compared with them (a variant token naming a run setting that is not a switch,
`fid.n_envs.8`, counts as a change too): the IQM of the final scores on each side and the difference
alternative − official with a 95 % percentile bootstrap CI (seeds resampled within each side).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import trim_mean

from harness.records import atomic_write_text
from harness.report.load import Run
from harness.report.tables import to_markdown

FIDELITY_TOKEN = re.compile(r"^fid\.[a-z_]+\.[a-z0-9_]+$")
"""A variant token naming a switch setting (suite=fidelity: `fid.reward.mpe2`)."""


def base_task(run: Run) -> str:
    """family/task directory without the fidelity tokens (the substitute suffix kept)."""
    name, at, substitute = run.task.partition("@")
    kept = "-".join(t for t in name.split("-") if not FIDELITY_TOKEN.match(t))
    return f"{run.family}/{kept}{at}{substitute}"


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean (the 25 % trimmed mean, rliable's IQM)."""
    return trim_mean(x, 0.25, axis=axis)


def difference_interval(official: np.ndarray, other: np.ndarray, reps: int, seed: int) -> tuple[float, float, float]:
    """(IQM(other) − IQM(official), 95 % CI low, high), seeds resampled within each side; no
    interval (NaN) where a side has a single seed, whose spread the bootstrap cannot see."""
    if min(len(official), len(other)) < 2:
        return float(iqm(other) - iqm(official)), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    a = official[rng.integers(0, len(official), (reps, len(official)))]
    b = other[rng.integers(0, len(other), (reps, len(other)))]
    samples = iqm(b) - iqm(a)
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(iqm(other) - iqm(official)), float(low), float(high)


def away_from_official(run: Run) -> dict[str, str]:
    """What a run changes from the official behaviour: its recorded switches, plus the run
    settings its variant names that are not switches (`fid.n_envs.8`: HARL's thread count
    changed, a setting every run's config.yaml records but no switch carries)."""
    changed = dict(run.fidelity or {})
    for token in run.task.partition("@")[0].split("-"):
        if FIDELITY_TOKEN.match(token):
            _, name, value = token.split(".")
            if not any(key.split(".")[-1] == name for key in changed):
                changed[setting_key(run, name)] = value
    return changed


def setting_key(run: Run, name: str) -> str:
    """`algo.<name>` or `env.<name>` where the run's config.yaml holds the setting in that
    section (`fid.use_valuenorm.true` -> algo.use_valuenorm), else the run setting's own name
    (`n_envs`)."""
    config = yaml.safe_load(run.path.config.read_text()) if run.path.config.is_file() else None
    for section in ("algo", "env"):
        if isinstance(config, dict) and name in (config.get(section) or {}):
            return f"{section}.{name}"
    return name


def fidelity_table(runs: list[Run], reps: int, seed: int) -> pd.DataFrame:
    """One row per (task, algorithm, set of changes away from official) with an official baseline."""
    groups: dict[tuple[str, str], dict[tuple, list[float]]] = {}
    for run in runs:
        if run.finished and run.fidelity is not None:
            switches = tuple(sorted(away_from_official(run).items()))
            groups.setdefault((base_task(run), run.algo), {}).setdefault(switches, []).append(run.final)
    rows = []
    for (task, algo), sides in sorted(groups.items()):
        official = np.array(sides.get((), []))
        for switches, finals in sorted(sides.items()):
            if not switches or len(official) == 0:
                continue
            other = np.array(finals)
            diff, low, high = difference_interval(official, other, reps, seed)
            rows.append({"task": task, "algo": algo, "switches": ", ".join(f"{k}={v}" for k, v in switches),
                         "official_iqm": float(iqm(official)), "official_seeds": len(official),
                         "alternative_iqm": float(iqm(other)), "alternative_seeds": len(other),
                         "difference": diff, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def fidelity_section(out: Path, runs: list[Run], reps: int, seed: int) -> str:
    """Markdown of the section ('' when no run has an alternative and an official baseline);
    writes fidelity.csv."""
    table = fidelity_table(runs, reps, seed)
    if table.empty:
        return ""
    atomic_write_text(out / "fidelity.csv", table.to_csv(index=False))
    shown = pd.DataFrame({
        "task": table["task"], "algo": table["algo"], "switch (alternative)": table["switches"],
        "official: IQM (seeds)": [f"{v:.4g} ({n})" for v, n in zip(table["official_iqm"], table["official_seeds"])],
        "alternative: IQM (seeds)": [f"{v:.4g} ({n})" for v, n in zip(table["alternative_iqm"], table["alternative_seeds"])],
        "difference [95 % CI]": [f"{d:+.4g} [{lo:+.4g}, {hi:+.4g}]" if np.isfinite(lo) else f"{d:+.4g} (no CI: one seed)"
                                 for d, lo, hi in zip(table["difference"], table["ci_low"], table["ci_high"])],
    })
    return ("## Fidelity switches: official behaviour vs alternative\n\n"
            "Final scores (the last evaluation) of the runs whose summary.json records the official behaviour "
            "against those with the switch set; difference = IQM(alternative) − IQM(official), 95 % percentile "
            f"bootstrap CI over seeds ({reps} resamples). The ledger: docs/fidelity.md. `fidelity.csv` has the numbers.\n\n"
            + to_markdown(shown) + "\n")
