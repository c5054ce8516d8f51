"""`python -m harness.report results/<suite> [more roots] [--out DIR] [--reps N] [--seed S]`

Turns whatever runs exist into reports/<suite>/: per-task tables (Markdown, CSV, LaTeX)
with the published numbers and a verdict, rliable aggregates of normalised scores (IQM,
mean, median, optimality gap with stratified-bootstrap CIs), probability of improvement of
HASAC over each baseline, performance profiles, sample-efficiency curves, and figures.
report.md lists everything that did not count (failed, unfinished, unreadable runs, missing
seeds, tasks without normalisation bounds) — nothing is dropped silently.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from envs.errors import UserError
from harness.records import atomic_write_text
from harness.report.fidelity import fidelity_section
from harness.report.load import Run, bounds_table, load_runs, paper_numbers
from harness.report.studies import study_sections
from harness.report.stats import (AGGREGATES, PROFILE_TAUS, aggregate_estimates, performance_profiles,
                                  probability_of_improvement, sample_efficiency)
from harness.report.tables import VERDICT_RULE, display_table, task_table, to_latex, to_markdown

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
        if not (np.isfinite(row["floor"]) and np.isfinite(row["ceiling"])) or row["ceiling"] == row["floor"]:
            notes.append(f"{key}: no normalisation bounds (floor {row['floor']}, ceiling {row['ceiling']}); "
                         "left out of the aggregates (use --normalisation observed to bound it by this tree)")
            continue
        rows.append(row)
    return pd.DataFrame(rows, columns=["family", "task", "floor", "ceiling", "floor_source", "ceiling_source"]), notes


def normalise(runs: list[Run], mode: str) -> list[Normalised]:
    """Normalised scores per comparison group: tasks are grouped by the set of (non-random)
    algorithms that have runs there, so that a suite mixing action spaces (QMIX only on
    Discrete tasks, HATD3 only on Box) still aggregates every task, each group over the
    algorithms that can run all of its tasks. A task where one of its algorithms has no
    finished run is left out, with a note."""
    bounds, notes = task_bounds(runs, mode)
    finished = [r for r in runs if r.finished and r.algo != FLOOR_ALGO]
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


def run_inventory(runs: list[Run]) -> list[str]:
    """Lines naming every run that does not count and every missing (task, algo, seed)."""
    lines = []
    for run in runs:
        if not run.finished:
            why = f" ({run.reason})" if run.reason else ""
            lines.append(f"{run.status}: {run.path}{why}")
    seeds = sorted({r.seed for r in runs})
    tasks, algos = sorted({r.key for r in runs}), sorted({r.algo for r in runs})
    have = {(r.key, r.algo, r.seed) for r in runs if r.finished}
    for task in tasks:
        for algo in algos:
            missing = [s for s in seeds if (task, algo, s) not in have]
            if len(missing) == len(seeds):
                lines.append(f"missing: {task} {algo} (no finished run)")
            elif missing:
                lines.append(f"missing: {task} {algo} seeds {', '.join(map(str, missing))}")
    return lines


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


def write_report(roots: list[Path], out: Path | None, reps: int, seed: int, normalisation: str,
                 figures: bool = True) -> Path:
    runs = load_runs(roots)
    suite = runs[0].suite
    out = out or Path("reports") / suite
    finished = [r for r in runs if r.finished]
    if not finished:
        raise UserError(f"no finished run under {', '.join(map(str, roots))} "
                        f"({len(runs)} runs: {', '.join(sorted({r.status for r in runs}))}); nothing to report")
    for run in runs:
        if run.status == "unreadable":
            print(f"warning: {run.path}: {run.reason}; reported without that run", file=sys.stderr)
    paper = paper_numbers()
    table = task_table(runs, paper, reps, seed)
    groups = normalise(runs, normalisation)
    for note in groups[0].notes:
        if "no normalisation bounds" in note:
            print(f"warning: {note}", file=sys.stderr)
    aggregates = [aggregate_table(norm, reps, seed) for norm in groups]
    improvement = [_improvement_table(norm, reps, seed) for norm in groups]
    out.mkdir(parents=True, exist_ok=True)
    shown = display_table(table)
    atomic_write_text(out / "table.csv", table.to_csv(index=False))
    atomic_write_text(out / "table.md", to_markdown(shown) + "\n\n" + VERDICT_RULE + "\n")
    atomic_write_text(out / "table.tex", to_latex(shown))
    atomic_write_text(out / "aggregates.csv", pd.concat(aggregates).to_csv(index=False))
    atomic_write_text(out / "probability_of_improvement.csv", pd.concat(improvement).to_csv(index=False))
    figure_files = []
    if figures:
        from harness.report.figures import draw_group, learning_curves

        figure_files = learning_curves(out / "figures", runs, table)
        for k, (norm, agg, imp) in enumerate(zip(groups, aggregates, improvement)):
            profiles = performance_profiles(norm.finals, PROFILE_TAUS, reps, seed) if norm.finals else None
            efficiency = sample_efficiency(norm.curves, reps, seed) if norm.curves else None
            # the first (largest) group's figures keep the plain names; others get a folder each
            directory = out / "figures" if k == 0 else out / "figures" / group_label(norm)
            figure_files += draw_group(directory, norm, agg, imp, profiles, efficiency)
    studies = study_sections(out, runs, reps, seed, figures)  # temperature, J(π) and QRE, robustness
    fidelity = fidelity_section(out, runs, reps, seed)  # official vs alternative, per switch
    studies += f"\n{fidelity}\n" if fidelity else ""
    atomic_write_text(out / "report.md", _report_markdown(suite, roots, runs, shown, groups, aggregates, improvement,
                                                           reps, seed, normalisation, figure_files, out) + studies)
    return out


def _improvement_table(norm: Normalised, reps: int, seed: int) -> pd.DataFrame:
    if TARGET not in norm.finals or len(norm.finals) < 2:
        return pd.DataFrame(columns=["group", "pair", "probability", "ci_low", "ci_high"])
    points, cis = probability_of_improvement(norm.finals, TARGET, reps, seed)
    return pd.DataFrame([{"group": group_label(norm), "pair": pair.replace(",", " > "),
                          "probability": float(np.ravel(points[pair])[0]),
                          "ci_low": float(np.ravel(cis[pair][0])[0]), "ci_high": float(np.ravel(cis[pair][1])[0])}
                         for pair in points])


def _results_notes(finished) -> list[str]:
    """One line per family whose results say they are not the published simulator's."""
    notes = sorted({(r.family, r.results_note) for r in finished if r.results_note})
    return ["\n".join(f"**`{family}`**: {note}." for family, note in notes)] if notes else []


def _report_markdown(suite, roots, runs, shown, groups, aggregates, improvement, reps, seed, normalisation,
                     figure_files, out: Path) -> str:
    finished = [r for r in runs if r.finished]
    parts = [
        f"# Report: suite `{suite}`",
        f"From {', '.join(f'`{r}`' for r in roots)}: {len(runs)} runs, {len(finished)} finished, "
        f"{len({r.key for r in runs})} tasks, algorithms {', '.join(sorted({r.algo for r in runs}))}. "
        f"Bootstrap: {reps} repetitions, numpy seed {seed} (`--reps`, `--seed`); the same pair gives the same digits.",
        "## Final scores per task", to_markdown(shown), VERDICT_RULE,
        *_results_notes(finished),
        "## Aggregates of normalised scores",
        f"Normalisation `{normalisation}`: score → (score − floor) / (ceiling − floor); floor = `random`'s "
        "score, ceiling = the best published score"
        + (" (`observed`: gaps filled from this tree, as each source says)." if normalisation == "observed" else "."),
    ]
    if len(groups) > 1:
        parts.append(f"The tasks fall into {len(groups)} comparison groups by the algorithms run on them (an "
                     "algorithm is compared only on tasks it can run, e.g. QMIX on Discrete ones); each group "
                     "is aggregated on its own.")
    for norm, agg, imp in zip(groups, aggregates, improvement):
        if len(groups) > 1:
            parts.append(f"### Group {group_label(norm)}")
        if len(norm.bounds):
            parts.append(to_markdown(norm.bounds.round({"floor": 4, "ceiling": 4})))
        if len(agg):
            agg = agg.assign(**{"value [95 % CI]": [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in
                                                   zip(agg["value"], agg["ci_low"], agg["ci_high"])]})
            parts.append(to_markdown(agg.pivot(index="algo", columns="aggregate", values="value [95 % CI]").reset_index()))
            parts.append(f"Over {len(norm.tasks)} tasks: {', '.join(norm.tasks)}.")
        else:
            parts.append("No task has normalisation bounds and finished runs of every algorithm: no aggregates.")
        if len(imp):
            parts += ["Probability of improvement:", to_markdown(imp.drop(columns="group").round(3))]
    notes = [note for norm in groups for note in norm.notes]
    parts += ["## What did not count", "\n".join(f"- {line}" for line in run_inventory(runs) + notes) or "Nothing: every run finished and counted."]
    if figure_files:
        parts += ["## Figures", "\n".join(f"- [{p.relative_to(out)}]({p.relative_to(out)})" for p in figure_files)]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", type=Path, help="results/<suite> directories (one suite)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default reports/<suite>)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap repetitions")
    parser.add_argument("--seed", type=int, default=0, help="numpy seed of the bootstrap")
    parser.add_argument("--normalisation", choices=["paper", "observed"], default="paper",
                        help="bounds: repository only, or fill gaps from this tree (labelled)")
    parser.add_argument("--no-figures", action="store_true", help="tables and aggregates only")
    args = parser.parse_args(argv)
    try:
        out = write_report(args.roots, args.out, args.reps, args.seed, args.normalisation, not args.no_figures)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {out / 'report.md'}")
    return 0
