"""Figures of the studies' report sections (harness/report/studies.py): final score vs α and
entropy curves, J(π) and the QRE distance over training, degradation under perturbations,
final score vs reward scale. Colours per algorithm as in every other figure (figures.color)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.figures import color, line_style, plt, save
from harness.report.study_data import StudyRun, alpha_order, alpha_value, curve, soft_objective_column

LEARNED_STYLES = ["--", ":", "-."]
"""Line styles of the learned-α variants (black), fixed α taking the viridis colours."""


def panels(n: int, width: float = 4.6, height: float = 3.4):
    cols = min(3, n)
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(width * cols, height * -(-n // cols)), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def temperature_figure(directory: Path, groups, table: pd.DataFrame) -> list[Path]:
    """Final score vs α (log axis) per task; learned-α variants as horizontal bands."""
    fig, axes = panels(len(groups))
    for ax, (base, algo) in zip(axes, sorted(groups)):
        rows = table[(table.task == base) & (table.algo == algo)]
        fixed = rows[rows.temperature.map(lambda t: np.isfinite(alpha_value(t)))]
        alphas = fixed.temperature.astype(float).to_numpy()
        ax.errorbar(alphas, fixed.final_mean, yerr=[fixed.final_mean - fixed.ci_low, fixed.ci_high - fixed.final_mean],
                    color=color(algo), marker="o", capsize=3, label=f"{algo}, fixed α")
        span = [alphas.min(), alphas.max()] if len(alphas) else [1e-3, 1.0]
        for k, row in enumerate(rows[~rows.index.isin(fixed.index)].itertuples()):
            ax.plot(span, [row.final_mean] * 2, LEARNED_STYLES[k % len(LEARNED_STYLES)], color="black", label=f"{row.temperature}")
            ax.fill_between(span, row.ci_low, row.ci_high, color="gray", alpha=0.2, linewidth=0)
        ax.set_xscale("log")
        ax.set_title(f"{base} ({algo})", fontsize=10)
        ax.set_xlabel("α")
        ax.set_ylabel(f"final {rows.metric.iloc[0]}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return save(fig, directory, "temperature_final_score")


def entropy_figure(directory: Path, groups) -> list[Path]:
    """Σᵢ H(πⁱ) over training for every temperature of a task (stochastic evaluation)."""
    with_entropy = {k: v for k, v in groups.items() if any(np.isfinite(r.column("eval_entropy")).any() for g in v.values() for r in g)}
    if not with_entropy:
        return []
    fig, axes = panels(len(with_entropy))
    cmap = plt.get_cmap("viridis")
    for ax, (key, by_label) in zip(axes, sorted(with_entropy.items())):
        fixed = [label for label in sorted(by_label, key=alpha_order) if np.isfinite(alpha_value(label))]
        learned = [label for label in sorted(by_label) if label not in fixed]
        styles = [(label, cmap(k / max(1, len(fixed) - 1)), "-", f"α={label}") for k, label in enumerate(fixed)]
        styles += [(label, "black", LEARNED_STYLES[k % len(LEARNED_STYLES)], label) for k, label in enumerate(learned)]
        for label, c, linestyle, name in styles:
            grid, mean, half = curve(by_label[label], "eval_entropy")
            ax.plot(grid, mean, linestyle, color=c, label=name)
            ax.fill_between(grid, mean - half, mean + half, color=c, alpha=0.15, linewidth=0)
        _style(ax, f"{key[0]} ({key[1]})", "Σᵢ H(πⁱ) per step (nats)")
    return save(fig, directory, "temperature_entropy")


def soft_objective_figure(directory: Path, tasks: dict[str, dict[str, list[StudyRun]]]) -> list[Path]:
    """Per task: J over training and, where some task has one (single-state games), the QRE
    distance in a second column."""
    has_tv = {task: [a for a, g in by_algo.items() if all(np.isfinite(r.column("eval_qre_tv")).any() for r in g)]
              for task, by_algo in tasks.items()}
    cols = 2 if any(has_tv.values()) else 1
    fig, axes = plt.subplots(len(tasks), cols, figsize=(5 * cols, 3.4 * len(tasks)), squeeze=False)
    for row, (task, by_algo) in zip(axes, sorted(tasks.items())):
        ax_j = row[0]
        for algo, group in sorted(by_algo.items()):
            column = soft_objective_column(group)
            defined = all(np.isfinite(r.column(column)).any() for r in group)
            grid, mean, half = curve(group, column if defined else "eval_return_mean")
            style = line_style(algo, len(grid)) | ({} if defined else {"linestyle": (0, (1, 3)), "marker": None})
            ax_j.plot(grid, mean, **style, label=f"{algo} ({len(group)})" if defined else f"{algo}: return, J undefined")
            ax_j.fill_between(grid, mean - half, mean + half, color=color(algo), alpha=0.2, linewidth=0)
        _style(ax_j, f"{task}: J(π)", "J(π)")
        if cols == 1:
            continue
        if not has_tv[task]:
            row[1].axis("off")
            continue
        for algo in sorted(has_tv[task]):
            grid, mean, half = curve(by_algo[algo], "eval_qre_tv")
            row[1].plot(grid, mean, label=algo, **line_style(algo, len(grid)))
            row[1].fill_between(grid, np.maximum(mean - half, 0), mean + half, color=color(algo), alpha=0.2, linewidth=0)
        _style(row[1], f"{task}: TV to the soft QRE", "max over agents of TV")
    return save(fig, directory, "soft_objective")


def _style(ax, title: str, ylabel: str) -> None:
    """Title, labels, step axis in scientific notation, legend, grid."""
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def degradation_figure(directory: Path, table: pd.DataFrame) -> list[Path]:
    tasks = sorted(table.task.unique())
    fig, axes = panels(len(tasks), width=5.5)
    for ax, task in zip(axes, tasks):
        rows = table[table.task == task]
        kinds, algos = sorted(rows.perturbation.unique()), sorted(rows.algo.unique())
        width = 0.8 / len(algos)
        for a, algo in enumerate(algos):
            mine = rows[rows.algo == algo].set_index("perturbation").reindex(kinds)
            x = np.arange(len(kinds)) + (a - (len(algos) - 1) / 2) * width
            ax.bar(x, mine.change, width, color=color(algo), label=algo,
                   yerr=[mine.change - mine.change_ci_low, mine.change_ci_high - mine.change], capsize=2)
        ax.axhline(0, color="gray", linewidth=1)
        ax.set_xticks(range(len(kinds)), kinds, fontsize=8)
        ax.set_title(task, fontsize=10)
        ax.set_ylabel("perturbed − clean return")
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    return save(fig, directory, "robustness_degradation")


def reward_scale_figure(directory: Path, table: pd.DataFrame) -> list[Path]:
    tasks = sorted(table.task.unique())
    fig, axes = panels(len(tasks))
    for ax, task in zip(axes, tasks):
        for algo, rows in table[table.task == task].groupby("algo"):
            ax.errorbar(rows.reward_scale, rows.final, yerr=[rows.final - rows.final_ci_low, rows.final_ci_high - rows.final],
                        color=color(algo), marker="o", capsize=3, label=algo)
        ax.set_xscale("log")
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("reward scale c")
        ax.set_ylabel("final score")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return save(fig, directory, "reward_scale")
