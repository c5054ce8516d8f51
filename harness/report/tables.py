"""Per-task tables in the layout of the paper's: final score per task and algorithm (mean ±
std over seeds, IQM with its 95 % CI), seeds, our env steps beside the paper's budget, the
published number with its source and the runs' fidelity ("official behaviour" or the
switches that differ) as a numbered note under the table, and a verdict by the rule in
VERDICT_RULE."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.load import Run, paper_budgets
from harness.report.stats import task_intervals

MIN_SEEDS = 3
VERDICT_RULE = (
    f"Verdict: *not comparable* when we ran fewer env steps than the paper's budget (whether or "
    f"not it publishes a number), fewer than {MIN_SEEDS} seeds, or another simulator; otherwise "
    f"*reproduced* when the published mean lies inside our bootstrap 95 % CI of the mean over "
    f"seeds, or within one published std of our mean, else *above* or *below*; *no published "
    f"number* when the source reports none (the HASAC paper shows learning curves only)."
)


def published(paper: pd.DataFrame, family: str, task: str, algo: str | None) -> pd.Series | None:
    """The published row for (family, task, algo) (algo None: the task's row, as in
    budgets.csv); a variant suffix falls back to the task."""
    for name in (task, task.split("-")[0]):
        rows = paper[(paper["family"] == family) & (paper["task"] == name) & ((paper["algo"] == algo) if algo else True)]
        if len(rows):
            return rows.iloc[0]
    return None


def paper_budget(paper_row: pd.Series | None, budgets: pd.DataFrame, family: str, task: str) -> float:
    """The env steps of the paper's comparison: the published row's own, else budgets.csv's
    for the task; NaN when the paper ran no such task."""
    if paper_row is not None and pd.notna(paper_row.get("env_steps")):
        return float(paper_row["env_steps"])
    row = published(budgets, family, task, None)
    return float(row["env_steps"]) if row is not None else np.nan


def verdict(finals: np.ndarray, env_steps: int, paper_row: pd.Series | None, ci: tuple[float, float],
            budget: float = np.nan) -> str:
    if np.isfinite(budget) and env_steps < budget:
        return f"not comparable: {env_steps:,} of {int(budget):,} steps"
    if paper_row is None:
        return "no published number"
    if len(finals) < MIN_SEEDS:
        return f"not comparable: {len(finals)} seed{'s' if len(finals) != 1 else ''}"
    value, std = float(paper_row["value"]), float(paper_row["std"]) if pd.notna(paper_row["std"]) else 0.0
    mean = float(np.mean(finals))
    if ci[0] <= value <= ci[1] or abs(mean - value) <= std:
        return "reproduced"
    return "above" if mean > value else "below"


def task_table(runs: list[Run], paper: pd.DataFrame, reps: int, seed: int) -> pd.DataFrame:
    """One row per (task, algorithm) with finished runs."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        if run.finished:
            groups.setdefault((run.family, run.task, run.algo), []).append(run)
    rows, budgets = [], paper_budgets()
    for (family, task, algo), group in sorted(groups.items()):
        group.sort(key=lambda r: r.seed)
        finals = np.array([r.final for r in group])
        ci = task_intervals(finals, reps, seed)
        steps = min(r.env_steps for r in group)
        substitute = group[0].path.substitute
        results_note = group[0].results_note
        paper_row = None if substitute or results_note else published(paper, family, task, algo)
        budget = np.nan if substitute or results_note else paper_budget(paper_row, budgets, family, task)
        rows.append({
            "family": family, "task": task, "algo": algo, "metric": group[0].metric,
            "seeds": len(group), "env_steps": steps,
            "mean": float(np.mean(finals)), "std": float(np.std(finals)),
            "iqm": ci["iqm"], "iqm_ci_low": ci["iqm_ci_low"], "iqm_ci_high": ci["iqm_ci_high"],
            "published": float(paper_row["value"]) if paper_row is not None else np.nan,
            "published_std": float(paper_row["std"]) if paper_row is not None and pd.notna(paper_row["std"]) else np.nan,
            "published_steps": budget,
            "source": (paper_row["source"] if paper_row is not None else
                       f"not comparable: {substitute} backend, a substitute for the published simulator" if substitute else
                       f"not comparable: {results_note}" if results_note else
                       "not published (HASAC paper: curves only)") + f"; {fidelity_label(group)}",
            "verdict": (f"not comparable: {substitute} backend" if substitute else
                        "not comparable: see source" if results_note else
                        verdict(finals, steps, paper_row, (ci["mean_ci_low"], ci["mean_ci_high"]), budget)),
        })
    return pd.DataFrame(rows)


def fidelity_label(group: list[Run]) -> str:
    """The runs' fidelity: "official behaviour" or the switches that differ (seeds that
    disagree are all named)."""
    return " / ".join(dict.fromkeys(run.fidelity_label for run in group))


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return "—"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def footnotes(texts: pd.Series) -> tuple[list[str], list[str]]:
    """(a mark per cell, the numbered notes): each distinct text once, numbered in order of
    first appearance, so a sentence shared by many rows is printed once under the table."""
    numbers: dict[str, int] = {}
    marks = [f"[{numbers.setdefault(str(t), len(numbers) + 1)}]" for t in texts]
    return marks, [f"[{n}] {text}" for text, n in numbers.items()]


def display_table(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(the human-readable columns, Markdown and LaTeX share them; the source notes that
    the `source` column's marks refer to)."""
    marks, notes = footnotes(table["source"]) if len(table) else ([], [])
    out = pd.DataFrame({
        "task": table["family"] + "/" + table["task"],
        "algo": table["algo"],
        "metric": table["metric"],
        "ours: mean ± std": [f"{_fmt(m)} ± {_fmt(s)}" for m, s in zip(table["mean"], table["std"])],
        "IQM [95 % CI]": [f"{_fmt(i)} [{_fmt(lo)}, {_fmt(hi)}]"
                          for i, lo, hi in zip(table["iqm"], table["iqm_ci_low"], table["iqm_ci_high"])],
        "seeds": table["seeds"],
        "env steps": [f"{s:,}" for s in table["env_steps"]],
        "paper's budget": [f"{int(b):,}" if np.isfinite(b) else "—" for b in table["published_steps"]],
        "published": [f"{_fmt(v)} ± {_fmt(s)}" if np.isfinite(v) else "not published"
                      for v, s in zip(table["published"], table["published_std"])],
        "source": marks,
        "verdict": table["verdict"],
    })
    return out, notes


def to_markdown(frame: pd.DataFrame) -> str:
    """A pipe table without the optional `tabulate` dependency."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def to_latex(frame: pd.DataFrame, notes: list[str] = ()) -> str:
    """A booktabs tabular, its notes below it; text is escaped for LaTeX."""

    def escape(text: str) -> str:
        for raw, safe in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                          ("±", r"$\pm$"), ("—", "--")):
            text = text.replace(raw, safe)
        return text

    lines = [r"\begin{tabular}{" + "l" * len(frame.columns) + "}", r"\toprule",
             " & ".join(escape(str(c)) for c in frame.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(escape(str(v)) for v in row) + r" \\" for row in frame.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"] + [r"\par " + escape(note) for note in notes]
    return "\n".join(lines) + "\n"
