"""Report sections of the studies (docs/studies.md), drawn from whatever the tree holds:

- **Temperature**: runs of one algorithm on one task that differ only in α (fixed values and
  auto-α): final score vs α with 95 % bootstrap CIs, and policy-entropy curves.
- **Soft objective**: J(π) (`eval_soft_objective`) and the distance to the soft QRE
  (`eval_qre_tv`) over training per algorithm; algorithms whose J is undefined (deterministic
  policies) are drawn by their return, dashed.
- **Robustness**: final return under each evaluation perturbation minus the clean return, per
  seed, with CIs; and final return vs the training reward scale.

A section appears only when its data is there; each writes CSV tables under `<out>/studies/`
and figures under `<out>/figures/` (harness/report/study_figures.py, imported only when
figures are drawn: it loads matplotlib), and returns its Markdown for report.md. The runs
and their curves are harness/report/study_data.py's.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness.records import atomic_write_text
from harness.report.load import Run
from harness.report.stats import task_intervals
from harness.report.study_data import StudyRun, alpha_order, curve, load_study_runs, soft_objective_column
from harness.report.tables import to_markdown

PERTURBATION = re.compile(r"^eval_return_(obsnoise|actnoise)_(.+)$")


def study_sections(out: Path, runs: list[Run], reps: int, seed: int, figures: bool = True) -> str:
    """Every study section the tree supports, as Markdown ('' when none)."""
    loaded = load_study_runs(runs)
    parts = [temperature_section(out, loaded, reps, seed, figures),
             soft_objective_section(out, loaded, reps, seed, figures),
             robustness_section(out, loaded, reps, seed, figures)]
    return "".join(f"\n{p}\n" for p in parts if p)


def interval(values: list[float], reps: int, seed: int) -> tuple[float, float, float]:
    """(mean, 95 % CI low, high) over seeds (percentile bootstrap of the mean)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return np.nan, np.nan, np.nan
    ci = task_intervals(values, reps, seed)
    return float(values.mean()), ci["mean_ci_low"], ci["mean_ci_high"]


def _short(value: float) -> str:
    return "—" if not np.isfinite(value) else f"{value:.3g}"


def fmt_ci(mean: float, low: float, high: float) -> str:
    return "—" if not np.isfinite(mean) else f"{mean:.3g} [{low:.3g}, {high:.3g}]"


def write_table(out: Path, name: str, table: pd.DataFrame) -> None:
    atomic_write_text(out / "studies" / f"{name}.csv", table.to_csv(index=False))


def figure_links(files: list[Path], out: Path) -> str:
    return "\n".join(f"![{p.stem}]({p.relative_to(out)})" for p in files if p.suffix == ".png")


# -- temperature ---------------------------------------------------------------------------------
def _temperature_groups(runs: list[StudyRun]) -> dict[tuple[str, str], dict[str, list[StudyRun]]]:
    """{(task, algo): {temperature: runs}} where one algorithm ran one task at several α."""
    groups: dict[tuple[str, str], dict[str, list[StudyRun]]] = {}
    for r in runs:
        if r.temperature is not None:
            groups.setdefault((r.base, r.run.algo), {}).setdefault(r.temperature, []).append(r)
    return {k: v for k, v in groups.items() if len(v) > 1}


def temperature_section(out: Path, runs: list[StudyRun], reps: int, seed: int, figures: bool) -> str:
    groups = _temperature_groups(runs)
    if not groups:
        return ""
    rows = []
    for (base, algo), by_label in sorted(groups.items()):
        for label, group in sorted(by_label.items(), key=lambda kv: alpha_order(kv[0])):
            mean, low, high = interval([r.run.final for r in group], reps, seed)
            rows.append({"task": base, "algo": algo, "temperature": label, "seeds": len(group), "metric": group[0].run.metric,
                         "final_mean": mean, "ci_low": low, "ci_high": high,
                         "final_entropy": _last_mean(group, "eval_entropy"), "final_qre_tv": _last_mean(group, "eval_qre_tv")})
    table = pd.DataFrame(rows)
    write_table(out, "temperature", table)
    shown = table.assign(**{"final [95 % CI]": [fmt_ci(m, lo, hi) for m, lo, hi in zip(table.final_mean, table.ci_low, table.ci_high)],
                            "final entropy (nats)": table.final_entropy.map(_short),
                            "final TV to soft QRE": table.final_qre_tv.map(_short)})
    text = ["## Temperature α", "Final score of each temperature (mean over seeds, percentile-bootstrap 95 % CI); "
            "`auto` learns α against HARL's target entropies (Discrete: 0), `auto (intended H̄)` against 0.98·log n for Discrete actions. "
            "Entropy: Σᵢ H(πⁱ) per step of the stochastic policy at the last evaluation (`soft_eval`); TV: distance "
            "to the soft QRE at that α (single-state games, fixed α; — where undefined).",
            to_markdown(shown[["task", "algo", "temperature", "seeds", "metric", "final [95 % CI]", "final entropy (nats)",
                               "final TV to soft QRE"]])]
    if figures:
        from harness.report.study_figures import entropy_figure, temperature_figure

        files = temperature_figure(out / "figures", groups, table) + entropy_figure(out / "figures", groups)
        text.append(figure_links(files, out))
    return "\n\n".join(text)


def _last_mean(group: list[StudyRun], column: str) -> float:
    """Mean over seeds of a column's last value, NaN (quietly) where none is finite."""
    values = np.array([r.column(column)[-1] for r in group])
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else np.nan


# -- soft objective and QRE distance ---------------------------------------------------------------
def soft_objective_section(out: Path, runs: list[StudyRun], reps: int, seed: int, figures: bool) -> str:
    """Runs with soft-evaluation columns that are not part of a temperature sweep (those are
    summarised per α in the temperature section)."""
    swept = set(_temperature_groups(runs))
    tasks: dict[str, dict[str, list[StudyRun]]] = {}
    for r in runs:
        if ("eval_soft_objective" in r.evals or "eval_qre_tv" in r.evals) and (r.base, r.run.algo) not in swept:
            tasks.setdefault(r.run.key, {}).setdefault(r.run.algo, []).append(r)
    if not tasks:
        return ""
    rows = []
    for task, by_algo in sorted(tasks.items()):
        for algo, group in sorted(by_algo.items()):
            column = soft_objective_column(group)
            j = [r.column(column)[-1] for r in group]
            tv = [r.column("eval_qre_tv")[-1] for r in group]
            _, mean_j, _ = curve(group, column)
            drop = float(np.nanmax(np.fmax.accumulate(mean_j) - mean_j)) if np.isfinite(mean_j).any() else np.nan
            rows.append({"task": task, "algo": algo, "seeds": len(group), "J_from": "exact" if column.endswith("exact") else "episodes",
                         **_named("J", interval(j, reps, seed)),
                         "J_largest_drop": drop, **_named("qre_tv", interval(tv, reps, seed))})
    table = pd.DataFrame(rows)
    write_table(out, "soft_objective", table)
    shown = pd.DataFrame({
        "task": table.task, "algo": table.algo, "seeds": table.seeds, "J from": table.J_from,
        "final J(π) [95 % CI]": [fmt_ci(*v) for v in zip(table.J, table.J_ci_low, table.J_ci_high)],
        "largest fall of J below its best": table.J_largest_drop.map(_short),
        "final TV to soft QRE [95 % CI]": [fmt_ci(*v) for v in zip(table.qre_tv, table.qre_tv_ci_low, table.qre_tv_ci_high)],
    })
    text = ["## Soft objective J(π) and distance to the soft QRE",
            "J(π) = E[Σ_t (c·r_t + α Σᵢ Hᵢ)] of the stochastic policy (undiscounted, at the run's `eval_alpha` or fixed α, "
            "c = reward_scale), estimated from evaluation episodes (*J from* `episodes`), or in closed form from the "
            "policy's probabilities on single-state games (`exact`); the theory says it improves monotonically for MEHAML "
            "instances. *Largest fall*: the most the seed-mean J curve drops below its running best (0 = monotone). "
            "TV: the largest total variation over agents between πⁱ and the analytic soft QRE (single-state games). "
            "— : undefined (deterministic policies have no entropy; J is −∞ on Box actions).",
            to_markdown(shown)]
    if figures:
        from harness.report.study_figures import soft_objective_figure

        text.append(figure_links(soft_objective_figure(out / "figures", tasks), out))
    return "\n\n".join(text)


def _named(name: str, values: tuple[float, float, float]) -> dict[str, float]:
    return {name: values[0], f"{name}_ci_low": values[1], f"{name}_ci_high": values[2]}


# -- robustness ---------------------------------------------------------------------------------
def robustness_section(out: Path, runs: list[StudyRun], reps: int, seed: int, figures: bool) -> str:
    text = []
    perturbed = [r for r in runs if any(PERTURBATION.match(c) for c in r.evals.columns)]
    if perturbed:
        table = degradation_table(perturbed, reps, seed)
        write_table(out, "degradation", table)
        shown = pd.DataFrame({
            "task": table.task, "algo": table.algo, "perturbation": table.perturbation, "seeds": table.seeds,
            "clean return": table.clean.map(lambda v: f"{v:.3g}"),
            "perturbed − clean [95 % CI]": [fmt_ci(*v) for v in zip(table.change, table.change_ci_low, table.change_ci_high)],
        })
        text += ["## Robustness: evaluation perturbations",
                 "Final greedy return under each perturbation minus the clean final return, per seed (mean, bootstrap 95 % CI; "
                 "negative = degradation). `obsnoise σ`: Gaussian noise of σ × each feature's std on every observation; "
                 "`actnoise p`: each agent's action replaced by a uniform random one with probability p.",
                 to_markdown(shown)]
        if figures:
            from harness.report.study_figures import degradation_figure

            text.append(figure_links(degradation_figure(out / "figures", table), out))
    scaled = _reward_scale_groups(runs)
    if scaled:
        table = pd.DataFrame([{"task": base, "algo": algo, "reward_scale": scale, "seeds": len(group),
                               **_named("final", interval([r.run.final for r in group], reps, seed))}
                              for (base, algo), by_scale in sorted(scaled.items()) for scale, group in sorted(by_scale.items())])
        write_table(out, "reward_scale", table)
        shown = pd.DataFrame({"task": table.task, "algo": table.algo, "reward scale": table.reward_scale.map(lambda v: f"×{v:g}"),
                              "seeds": table.seeds,
                              "final [95 % CI]": [fmt_ci(*v) for v in zip(table.final, table.final_ci_low, table.final_ci_high)]})
        text += ["## Robustness: reward scale",
                 "Final score (in the task's own units) after training on rewards × c.", to_markdown(shown)]
        if figures:
            from harness.report.study_figures import reward_scale_figure

            text.append(figure_links(reward_scale_figure(out / "figures", table), out))
    return "\n\n".join(text)


def degradation_table(runs: list[StudyRun], reps: int, seed: int) -> pd.DataFrame:
    groups: dict[tuple[str, str], list[StudyRun]] = {}
    for r in runs:
        groups.setdefault((r.run.key, r.run.algo), []).append(r)
    rows = []
    for (task, algo), group in sorted(groups.items()):
        columns = sorted({c for r in group for c in r.evals.columns if PERTURBATION.match(c)})
        clean = np.array([r.column("eval_return_mean")[-1] for r in group])
        for name in columns:
            kind, level = PERTURBATION.match(name).groups()
            change = np.array([r.column(name)[-1] for r in group]) - clean
            rows.append({"task": task, "algo": algo, "perturbation": f"{kind} {level}", "seeds": len(group),
                         "clean": float(np.mean(clean)), **_named("change", interval(change, reps, seed))})
    return pd.DataFrame(rows)


def _reward_scale_groups(runs: list[StudyRun]) -> dict[tuple[str, str], dict[float, list[StudyRun]]]:
    groups: dict[tuple[str, str], dict[float, list[StudyRun]]] = {}
    for r in runs:
        groups.setdefault((r.base, r.run.algo), {}).setdefault(r.reward_scale, []).append(r)
    return {k: v for k, v in groups.items() if len(v) > 1}
