"""`python -m harness.report results/<suite> [more roots] [--out DIR] [--reps N] [--seed S]`

Turns whatever runs exist into reports/<suite>/: per-task tables (Markdown, CSV, LaTeX)
with the published numbers and a verdict, rliable aggregates of normalised scores (IQM,
mean, median, optimality gap with stratified-bootstrap CIs), probability of improvement of
HASAC over each baseline, performance profiles, sample-efficiency curves, figures, and the
paper's claims with a verdict each (harness/report/claims.py). report.md lists everything
that did not count (failed, unfinished, unreadable runs, missing seeds, tasks without
normalisation bounds) — nothing is dropped silently. report.json records the arguments, so
the tables can be regenerated to the digit from the same results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from envs.errors import UserError
from harness.layout import RunPath, jobs_files
from harness.records import atomic_write_text
from harness.report.claims import CLAIMS_RULE, claims_table
from harness.report.fidelity import fidelity_section
from harness.report.load import Run, load_runs, paper_numbers
from harness.report.normalise import Normalised, aggregate_table, group_label, improvement_table, normalise
from harness.report.studies import study_sections
from harness.report.stats import PROFILE_TAUS, performance_profiles, sample_efficiency
from harness.report.tables import VERDICT_RULE, display_table, task_table, to_latex, to_markdown

REPS, SEED = 2000, 0
"""The bootstrap's default repetitions and numpy seed."""
MANIFEST = "report.json"


def planned_runs(roots: list[Path]) -> set[tuple[str, str, int]] | None:
    """(task key, algo, seed) of every run the sweeps planned under `roots` (their suites'
    jobs.json), or None where no sweep left one."""
    planned: set[tuple[str, str, int]] = set()
    for root in roots:
        for jobs_file in jobs_files(root):
            try:
                runs = json.loads(jobs_file.read_text())
            except (OSError, ValueError):
                continue
            for relative in runs:
                path = RunPath(jobs_file.parent / relative)
                planned.add((f"{path.family}/{path.task}", path.algo, path.seed))
    return planned or None


def run_inventory(runs: list[Run], planned: set[tuple[str, str, int]] | None = None) -> list[str]:
    """Lines naming every run that does not count and every missing (task, algo, seed): of
    the runs the sweeps planned where they left their jobs.json, else of the grid of the
    algorithms and seeds found on each task."""
    lines = []
    for run in runs:
        if not run.finished:
            why = f" ({run.reason})" if run.reason else ""
            lines.append(f"{run.status}: {run.path}{why}")
    expected = planned or {(task, algo, seed) for task in {r.key for r in runs}
                           for algo in {r.algo for r in runs if r.key == task}
                           for seed in {r.seed for r in runs if r.key == task}}
    have = {(r.key, r.algo, r.seed) for r in runs if r.finished}
    for task, algo in sorted({(t, a) for t, a, _ in expected}):
        seeds = sorted(s for t, a, s in expected if (t, a) == (task, algo))
        missing = [s for s in seeds if (task, algo, s) not in have]
        if len(missing) == len(seeds):
            lines.append(f"missing: {task} {algo} (no finished run)")
        elif missing:
            lines.append(f"missing: {task} {algo} seeds {', '.join(map(str, missing))}")
    return lines


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
    improvement = [improvement_table(norm, reps, seed) for norm in groups]
    claims = claims_table(runs, table, reps, seed)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time() - 2.0  # file times come from a coarser clock than time.time()
    shown, notes = display_table(table)
    atomic_write_text(out / MANIFEST, json.dumps({"roots": [str(r) for r in roots], "reps": reps, "seed": seed,
                                                  "normalisation": normalisation}, indent=1) + "\n")
    atomic_write_text(out / "table.csv", table.to_csv(index=False))
    atomic_write_text(out / "table.md", "\n\n".join([to_markdown(shown), "\n".join(notes), VERDICT_RULE]) + "\n")
    atomic_write_text(out / "table.tex", to_latex(shown, notes))
    atomic_write_text(out / "claims.csv", claims.to_csv(index=False))
    atomic_write_text(out / "claims.md", claims_markdown(claims) + "\n")
    atomic_write_text(out / "aggregates.csv", pd.concat(aggregates).to_csv(index=False))
    atomic_write_text(out / "probability_of_improvement.csv",
                      pd.concat([i for i in improvement if len(i)] or improvement[:1]).to_csv(index=False))
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
    planned = planned_runs(roots)
    head = _head(suite, roots, runs, planned, reps, seed, normalisation, claims)
    body = _body(runs, planned, shown, notes, groups, aggregates, improvement, normalisation, figure_files, out)
    atomic_write_text(out / "report.md", "\n\n".join(head + body) + "\n" + studies)
    if figures:
        remove_stale_figures(out / "figures", started)
    return out


def remove_stale_figures(directory: Path, started: float) -> None:
    """Delete the figures an earlier report left that this one did not draw again (e.g. a
    comparison group that no longer exists once more runs finished), and their emptied
    folders, so that a committed report holds only figures of its own data."""
    for path in sorted(directory.rglob("*"), reverse=True):
        if path.is_file() and path.suffix in (".png", ".pdf") and path.stat().st_mtime < started:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def claims_markdown(claims: pd.DataFrame) -> str:
    if not len(claims):
        return "No claim can be checked: no finished HASAC run."
    return to_markdown(claims[["claim", "measured on", "observed", "verdict"]]) + "\n\n" + CLAIMS_RULE


def _results_notes(finished) -> list[str]:
    """One line per family whose results say they are not the published simulator's."""
    notes = sorted({(r.family, r.results_note) for r in finished if r.results_note})
    return ["\n".join(f"**`{family}`**: {note}." for family, note in notes)] if notes else []


def _head(suite: str, roots: list[Path], runs: list[Run], planned: set[tuple[str, str, int]] | None, reps: int,
          seed: int, normalisation: str, claims: pd.DataFrame) -> list[str]:
    finished = [r for r in runs if r.finished]
    unfinished = len(planned - {(r.key, r.algo, r.seed) for r in finished}) if planned else 0
    command = " ".join(["python -m harness.report", *map(str, roots), f"--reps {reps} --seed {seed}",
                        f"--normalisation {normalisation}"])
    return [
        f"# Report: suite `{suite}`",
        f"From {', '.join(f'`{r}`' for r in roots)}: {len(runs)} runs, {len(finished)} finished, "
        f"{len({r.key for r in runs})} tasks, algorithms {', '.join(sorted({r.algo for r in runs}))}"
        + (f"; {unfinished} of the {len(planned)} runs its sweeps planned have not finished "
           "(listed under \"What did not count\")" if unfinished else "") + ". "
        f"Bootstrap: {reps} repetitions, numpy seed {seed}; the same pair gives the same digits. "
        f"Regenerate: `{command}`.",
        "## The paper's claims at this budget", claims_markdown(claims),
    ]


def _body(runs: list[Run], planned: set[tuple[str, str, int]] | None, shown: pd.DataFrame, notes: list[str],
          groups: list[Normalised], aggregates, improvement, normalisation: str, figure_files: list[Path],
          out: Path) -> list[str]:
    finished = [r for r in runs if r.finished]
    parts = [
        "## Final scores per task", to_markdown(shown), "\n".join(notes), VERDICT_RULE,
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
    parts += ["## What did not count", "\n".join(f"- {line}" for line in run_inventory(runs, planned) + notes) or "Nothing: every run finished and counted."]
    if figure_files:
        parts += ["## Figures", "\n".join(f"- [{p.relative_to(out)}]({p.relative_to(out)})" for p in figure_files)]
    return parts


def sweep_report(results_dir: Path, suite: str) -> None:
    """The report a suite sweep ends with: `<results_dir>/<suite>` → `reports/<suite>` beside
    `results_dir`, at the default bootstrap, bounds filled from the tree (`observed`)."""
    root = Path(results_dir) / suite
    try:
        out = write_report([root], Path(results_dir).parent / "reports" / suite, REPS, SEED, "observed")
    except UserError as exc:
        print(f"no report: {exc}")
        return
    print(f"report: {out / 'report.md'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", type=Path, help="results/<suite> directories (one suite)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default reports/<suite>)")
    parser.add_argument("--reps", type=int, default=REPS, help="bootstrap repetitions")
    parser.add_argument("--seed", type=int, default=SEED, help="numpy seed of the bootstrap")
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
