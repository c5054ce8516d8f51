"""Per-task tables in the layout of the paper's: final score per task and algorithm (mean ±
std over seeds, IQM with its 95 % CI), seeds, env steps, the published number with its
source (with the runs' fidelity: "official behaviour" or the switches that differ), and a
verdict by the rule in VERDICT_RULE."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.load import Run
from harness.report.stats import task_intervals

MIN_SEEDS = 3
VERDICT_RULE = (
    f"Verdict: *reproduced* when the published mean lies inside our bootstrap 95 % CI of the "
    f"mean over seeds, or within one published std of our mean; otherwise *above* or *below*. "
    f"*Not comparable* when we ran fewer env steps than the published budget or fewer than "
    f"{MIN_SEEDS} seeds; *no published number* when the source reports none (the HASAC paper "
    f"shows learning curves only)."
)


def published(paper: pd.DataFrame, family: str, task: str, algo: str) -> pd.Series | None:
    """The published row for (family, task, algo); a variant suffix falls back to the task."""
    for name in (task, task.split("-")[0]):
        rows = paper[(paper["family"] == family) & (paper["task"] == name) & (paper["algo"] == algo)]
        if len(rows):
            return rows.iloc[0]
    return None


def verdict(finals: np.ndarray, env_steps: int, paper_row: pd.Series | None, ci: tuple[float, float]) -> str:
    if paper_row is None:
        return "no published number"
    budget = paper_row.get("env_steps")
    if pd.notna(budget) and env_steps < int(budget):
        return f"not comparable: {env_steps:,} of {int(budget):,} steps"
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
    rows = []
    for (family, task, algo), group in sorted(groups.items()):
        group.sort(key=lambda r: r.seed)
        finals = np.array([r.final for r in group])
        ci = task_intervals(finals, reps, seed)
        steps = min(r.env_steps for r in group)
        substitute = group[0].path.substitute
        results_note = group[0].results_note
        paper_row = None if substitute or results_note else published(paper, family, task, algo)
        rows.append({
            "family": family, "task": task, "algo": algo, "metric": group[0].metric,
            "seeds": len(group), "env_steps": steps,
            "mean": float(np.mean(finals)), "std": float(np.std(finals)),
            "iqm": ci["iqm"], "iqm_ci_low": ci["iqm_ci_low"], "iqm_ci_high": ci["iqm_ci_high"],
            "published": float(paper_row["value"]) if paper_row is not None else np.nan,
            "published_std": float(paper_row["std"]) if paper_row is not None and pd.notna(paper_row["std"]) else np.nan,
            "published_steps": int(paper_row["env_steps"]) if paper_row is not None and pd.notna(paper_row["env_steps"]) else np.nan,
            "source": (paper_row["source"] if paper_row is not None else
                       f"not comparable: {substitute} backend, a substitute for the published simulator" if substitute else
                       f"not comparable: {results_note}" if results_note else
                       "not published (HASAC paper: curves only)") + f"; {fidelity_label(group)}",
            "verdict": (f"not comparable: {substitute} backend" if substitute else
                        "not comparable: see source" if results_note else
                        verdict(finals, steps, paper_row, (ci["mean_ci_low"], ci["mean_ci_high"]))),
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


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The human-readable columns (Markdown and LaTeX share them)."""
    out = pd.DataFrame({
        "task": table["family"] + "/" + table["task"],
        "algo": table["algo"],
        "metric": table["metric"],
        "ours: mean ± std": [f"{_fmt(m)} ± {_fmt(s)}" for m, s in zip(table["mean"], table["std"])],
        "IQM [95 % CI]": [f"{_fmt(i)} [{_fmt(lo)}, {_fmt(hi)}]"
                          for i, lo, hi in zip(table["iqm"], table["iqm_ci_low"], table["iqm_ci_high"])],
        "seeds": table["seeds"],
        "env steps": [f"{s:,}" for s in table["env_steps"]],
        "published": [f"{_fmt(v)} ± {_fmt(s)}" if np.isfinite(v) else "not published"
                      for v, s in zip(table["published"], table["published_std"])],
        "source": table["source"],
        "verdict": table["verdict"],
    })
    return out


def to_markdown(frame: pd.DataFrame) -> str:
    """A pipe table without the optional `tabulate` dependency."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def to_latex(frame: pd.DataFrame) -> str:
    """A booktabs tabular; text is escaped for LaTeX."""

    def escape(text: str) -> str:
        for raw, safe in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                          ("±", r"$\pm$"), ("—", "--")):
            text = text.replace(raw, safe)
        return text

    lines = [r"\begin{tabular}{" + "l" * len(frame.columns) + "}", r"\toprule",
             " & ".join(escape(str(c)) for c in frame.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(escape(str(v)) for v in row) + r" \\" for row in frame.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
