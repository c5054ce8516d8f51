"""Normalised scores for the aggregates: each task's scores mapped to [floor → 0, ceiling →
1] (harness/paper/bounds.csv, or this tree's `random` runs and best mean where the
normalisation is `observed`), grouped by the set of algorithms that ran each task; their
rliable aggregates and HASAC's probability of improvement per group."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.report.load import Run, bounds_table
from harness.report.stats import AGGREGATES, aggregate_estimates, probability_of_improvement

TARGET = "hasac"
FLOOR_ALGO = "random"
CURVE_POINTS = 21


@dataclass
class Normalised:
    """Final and curve scores mapped to [floor → 0, ceiling → 1] for the aggregated tasks of
    one comparison group (the tasks run by the same set of algorithms)."""

    tasks: list[str]
    algos: list[str]
    bounds: pd.DataFrame
    finals: dict[str, np.ndarray]
    """{algo: [runs, tasks]}"""
    curves: dict[str, np.ndarray]
    """{algo: [runs, tasks, CURVE_POINTS]}"""
    curve_steps: np.ndarray
    seeds_used: dict[str, int]
    notes: list[str] = field(default_factory=list)


def task_bounds(runs: list[Run], mode: str) -> tuple[pd.DataFrame, list[str]]:
    """(bounds per task present, notes). `paper`: the repository's bounds.csv only;
    `observed`: missing floors from this tree's `random` runs and missing ceilings from the
    best mean final score in this tree — labelled as such in the report."""
    table = bounds_table()
    notes, rows = [], []
    for key in sorted({r.key for r in runs if r.finished}):
        family, task = key.split("/", 1)
        match = table[(table["family"] == family) & (table["task"] == task)]
        row = match.iloc[0].to_dict() if len(match) else {"family": family, "task": task, "floor": np.nan,
                                                           "ceiling": np.nan, "floor_source": "", "ceiling_source": ""}
        if mode == "observed":
            finals = pd.DataFrame([(r.algo, r.final) for r in runs if r.finished and r.key == key], columns=["algo", "final"])
            means = finals.groupby("algo")["final"].mean()
            if not np.isfinite(row["floor"]) and FLOOR_ALGO in means:
                row.update(floor=float(means[FLOOR_ALGO]), floor_source=f"observed: mean of {FLOOR_ALGO} runs here")
            if not np.isfinite(row["ceiling"]) and len(means.drop(FLOOR_ALGO, errors="ignore")):
                best = means.drop(FLOOR_ALGO, errors="ignore")
                row.update(ceiling=float(best.max()), ceiling_source=f"observed: best mean here ({best.idxmax()})")
        if not (np.isfinite(row["floor"]) and np.isfinite(row["ceiling"])):
            notes.append(f"{key}: no normalisation bounds (floor {row['floor']}, ceiling {row['ceiling']}); "
                         "left out of the aggregates " + ("(use --normalisation observed to bound it by this tree)"
                                                          if mode == "paper" else f"(no finished {FLOOR_ALGO} run here)"))
            continue
        if row["ceiling"] == row["floor"]:
            notes.append(f"{key}: left out of the aggregates, its floor and ceiling are both {row['floor']:g} "
                         "(no algorithm's mean score rises above the floor, so there is no scale to normalise by)")
            continue
        rows.append(row)
    return pd.DataFrame(rows, columns=["family", "task", "floor", "ceiling", "floor_source", "ceiling_source"]), notes


def normalise(runs: list[Run], mode: str) -> list[Normalised]:
    """Normalised scores per comparison group: tasks are grouped by the set of (non-random)
    algorithms that have runs there, so that a suite mixing action spaces (QMIX only on
    Discrete tasks, HATD3 only on Box) still aggregates every task, each group over the
    algorithms that can run all of its tasks. A task where one of its algorithms has no
    finished run is left out, with a note; so is a game evaluated against its soft QRE,
    whose greedy return is not what the algorithms are compared on there."""
    qre = sorted({r.key for r in runs if r.finished and r.soft_qre})
    bounds, notes = task_bounds([r for r in runs if r.key not in qre], mode)
    if qre:
        notes.append(f"{', '.join(qre)}: left out of the aggregates, compared by the distance to the soft QRE "
                     "(the claims table and the soft-objective study), not by the greedy return")
    finished = [r for r in runs if r.finished and r.algo != FLOOR_ALGO and r.key not in qre]
    bounded = [f"{f}/{t}" for f, t in zip(bounds["family"], bounds["task"])]
    groups: dict[tuple[str, ...], list[str]] = {}
    for key in bounded:
        expected = sorted({r.algo for r in runs if r.key == key and r.algo != FLOOR_ALGO})
        have = {r.algo for r in finished if r.key == key}
        if set(expected) - have:
            notes.append(f"{key}: left out of the aggregates, no finished run of {', '.join(sorted(set(expected) - have))}")
        elif expected:
            groups.setdefault(tuple(expected), []).append(key)
    # the largest group first: it is "the" comparison when there is one
    ordered = sorted(groups.items(), key=lambda item: (-len(item[0]), -len(item[1]), item[0]))
    by_task = bounds.set_index(["family", "task"])
    return [_normalise_group(finished, list(algos), tasks, bounds, by_task, notes if k == 0 else [])
            for k, (algos, tasks) in enumerate(ordered)] or [Normalised([], [], bounds.iloc[:0], {}, {}, np.zeros(0), {}, notes)]


def _normalise_group(finished: list[Run], algos: list[str], tasks: list[str], bounds: pd.DataFrame,
                     by_task: pd.DataFrame, notes: list[str]) -> Normalised:
    finals, curves, seeds_used = {}, {}, {}
    last_steps = [r.env_steps for r in finished if r.key in tasks]
    curve_steps = np.linspace(0, min(last_steps) if last_steps else 0, CURVE_POINTS)
    scale = [(float(by_task.loc[tuple(k.split("/", 1)), "floor"]), float(by_task.loc[tuple(k.split("/", 1)), "ceiling"]))
             for k in tasks]  # (floor, ceiling) per aggregated task, the same for every algorithm
    for algo in algos:
        per_task = [sorted((r for r in finished if r.key == k and r.algo == algo), key=lambda r: r.seed) for k in tasks]
        n = min(len(group) for group in per_task)
        most = max(len(group) for group in per_task)
        if n < most:
            notes.append(f"{algo}: aggregated over the first {n} seeds of every task of its group (some tasks have up to {most})")
        seeds_used[algo] = n
        finals[algo] = np.array([[(g[i].final - lo) / (hi - lo) for g, (lo, hi) in zip(per_task, scale)] for i in range(n)])
        curves[algo] = np.array([[(np.interp(curve_steps, g[i].steps, g[i].scores) - lo) / (hi - lo)
                                  for g, (lo, hi) in zip(per_task, scale)] for i in range(n)])
    used = bounds[[f"{f}/{t}" in tasks for f, t in zip(bounds["family"], bounds["task"])]]
    return Normalised(tasks, algos, used.reset_index(drop=True), finals, curves, curve_steps, seeds_used, notes)


def aggregate_table(norm: Normalised, reps: int, seed: int) -> pd.DataFrame:
    if not norm.finals:
        return pd.DataFrame()
    points, cis = aggregate_estimates(norm.finals, reps, seed)
    rows = []
    for algo in norm.finals:
        for k, name in enumerate(AGGREGATES):
            rows.append({"group": group_label(norm), "algo": algo, "aggregate": name, "value": points[algo][k],
                         "ci_low": cis[algo][0, k], "ci_high": cis[algo][1, k], "seeds": norm.seeds_used[algo],
                         "tasks": len(norm.tasks)})
    return pd.DataFrame(rows)


def group_label(norm: Normalised) -> str:
    """A comparison group's name: its algorithms, e.g. 'hasac+happo+mappo'."""
    return "+".join(norm.algos)


def improvement_table(norm: Normalised, reps: int, seed: int) -> pd.DataFrame:
    if TARGET not in norm.finals or len(norm.finals) < 2:
        return pd.DataFrame(columns=["group", "pair", "probability", "ci_low", "ci_high"])
    points, cis = probability_of_improvement(norm.finals, TARGET, reps, seed)
    return pd.DataFrame([{"group": group_label(norm), "pair": pair.replace(",", " > "),
                          "probability": float(np.ravel(points[pair])[0]),
                          "ci_low": float(np.ravel(cis[pair][0])[0]), "ci_high": float(np.ravel(cis[pair][1])[0])}
                         for pair in points])
