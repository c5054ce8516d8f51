"""Report figures, PNG and PDF: learning curves per task, aggregate intervals, performance
profiles, probability of improvement, sample efficiency. One colour per algorithm in every
figure (ALGO_COLORS), so a reader learns the legend once; curves also differ in dash and
marker (line_style), so algorithms whose curves coincide stay apart."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on clusters or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.report.load import Run  # noqa: E402
from harness.report.stats import PROFILE_TAUS  # noqa: E402

ALGO_COLORS = {"hasac": "#d62728", "hatd3": "#ff7f0e", "happo": "#1f77b4", "mappo": "#2ca02c",
               "qmix": "#9467bd", "mehaml_kl": "#8c564b", "random": "#7f7f7f"}
EXTRA_COLORS = ["#e377c2", "#17becf", "#bcbd22", "#393b79"]


def color(algo: str) -> str:
    if algo not in ALGO_COLORS:
        ALGO_COLORS[algo] = EXTRA_COLORS[len(ALGO_COLORS) % len(EXTRA_COLORS)]
    return ALGO_COLORS[algo]


ALGO_LINES = {"hasac": ("-", "o"), "hatd3": ("--", "s"), "happo": ("-.", "^"), "mappo": (":", "v"),
              "qmix": ((0, (5, 1.5)), "D"), "mehaml_kl": ((0, (3, 1, 1, 1, 1, 1)), "P"), "random": ("-", "")}
"""(dash, marker) per algorithm, for curves that may lie on top of each other."""


def line_style(algo: str, points: int) -> dict[str, object]:
    """Colour, dash and about six markers per curve, each algorithm's markers shifted along
    the curve so that equal curves show every algorithm's marker."""
    dash, marker = ALGO_LINES.get(algo, ("-", "x"))
    every = max(1, points // 6)
    rank = list(ALGO_LINES).index(algo) if algo in ALGO_LINES else len(ALGO_LINES)
    shift = rank * every // (len(ALGO_LINES) + 1)
    return {"color": color(algo), "linestyle": dash, "marker": marker or None, "markevery": (shift, every),
            "markersize": 4.5, "linewidth": 1.4}


def save(fig, directory: Path, name: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.{ext}" for ext in ("png", "pdf")]
    if not fig.legends:  # a figure-level legend was laid out with its own margin
        fig.tight_layout()
    for path in paths:
        if path.suffix == ".png":
            fig.savefig(path, dpi=150)
        else:  # no creation date: the same data gives the same bytes
            fig.savefig(path, metadata={"CreationDate": None})
    plt.close(fig)
    return paths


def learning_curves(directory: Path, runs: list[Run], table: pd.DataFrame) -> list[Path]:
    """One panel per task: mean over seeds and a 95 % normal-approximation band per
    algorithm on a common step grid; the published final number as a marker at its budget,
    or a dotted level where that budget lies far beyond ours. One legend for the figure."""
    tasks = sorted({r.key for r in runs if r.finished})
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.1 * rows + 0.8), squeeze=False)
    handles: dict[str, object] = {}
    for ax, task in zip(axes.flat, tasks):
        group = [r for r in runs if r.finished and r.key == task]
        for algo in sorted({r.algo for r in group}):
            mine = [r for r in group if r.algo == algo]
            grid = np.linspace(0, min(r.env_steps for r in mine), 50)
            values = np.array([np.interp(grid, r.steps, r.scores) for r in mine])
            mean = values.mean(axis=0)
            half = 1.96 * values.std(axis=0, ddof=1) / np.sqrt(len(mine)) if len(mine) > 1 else np.zeros_like(mean)
            handles.setdefault(algo, ax.plot(grid, mean, label=algo, **line_style(algo, len(grid)))[0])
            ax.fill_between(grid, mean - half, mean + half, color=color(algo), alpha=0.2, linewidth=0)
            _published_mark(ax, table, task, algo, grid[-1], handles)
        seeds = sorted({sum(r.algo == a for r in group) for a in {r.algo for r in group}})
        ax.set_title(f"{task} ({'–'.join(map(str, [seeds[0], seeds[-1]][:len(set(seeds))]))} seeds)", fontsize=10)
        ax.set_xlabel("env steps")
        ax.set_ylabel(group[0].metric)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    labels = sorted(k for k in handles if not k.startswith("published")) + [k for k in handles if k.startswith("published")]
    fig.legend([handles[k] for k in labels], labels, loc="upper center", ncol=min(len(handles), 5), fontsize=9,
               frameon=False, title="mean over seeds, 95 % band", title_fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / fig.get_figheight()))
    return save(fig, directory, "learning_curves")


def _published_mark(ax, table: pd.DataFrame, task: str, algo: str, last: float, handles: dict) -> None:
    """The published final number of (task, algo), if any: a star at its budget, or a dotted
    level where that budget lies far beyond ours (a point off the axis would squash it)."""
    row = table[(table["family"] + "/" + table["task"] == task) & (table["algo"] == algo)]
    if not len(row) or not np.isfinite(row["published"].iloc[0]):
        return
    value, at = row["published"].iloc[0], row["published_steps"].iloc[0]
    at = at if np.isfinite(at) else last
    if at > 1.5 * last:
        line = ax.axhline(value, color=color(algo), linestyle=":", linewidth=1.2)
        handles.setdefault("published, at a larger budget", plt.Line2D([], [], color="black", linestyle=":"))
    else:
        line = ax.plot([at], [value], marker="*", markersize=11, color=color(algo), markeredgecolor="black", linestyle="none")[0]
        handles.setdefault("published", plt.Line2D([], [], color="black", marker="*", linestyle="none"))
    line.set_label("_published")


def aggregate_intervals(directory: Path, aggregates: pd.DataFrame) -> list[Path]:
    names = list(dict.fromkeys(aggregates["aggregate"]))
    algos = list(dict.fromkeys(aggregates["algo"]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 0.5 * len(algos) + 1.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = aggregates[aggregates["aggregate"] == name].set_index("algo")
        for y, algo in enumerate(algos):
            lo, hi, value = rows.loc[algo, ["ci_low", "ci_high", "value"]]
            ax.barh(y, hi - lo, left=lo, height=0.6, color=color(algo), alpha=0.75)
            ax.plot([value, value], [y - 0.3, y + 0.3], color="black", linewidth=1.5)
            ax.plot([value], [y], marker="o", color=color(algo), markeredgecolor="black")  # seen even when CI = point
        low, high = rows["ci_low"].min(), rows["ci_high"].max()
        pad = max(0.05, 0.1 * (high - low))  # bars have sticky edges: margins() would not pad them
        ax.set_xlim(low - pad, high + pad)
        ax.set_yticks(range(len(algos)), algos if ax is axes[0][0] else [""] * len(algos))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("normalised score")
        ax.grid(axis="x", alpha=0.3)
    return save(fig, directory, "aggregates")


def profile_plot(directory: Path, profiles, taus: np.ndarray = PROFILE_TAUS) -> list[Path]:
    points, cis = profiles
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for algo, profile in points.items():
        ax.plot(taus, profile, label=algo, **line_style(algo, len(taus)))
        ax.fill_between(taus, cis[algo][0], cis[algo][1], color=color(algo), alpha=0.2, linewidth=0)
    ax.set_xlabel(r"normalised score $\tau$")
    ax.set_ylabel(r"fraction of runs with score $> \tau$")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, directory, "performance_profiles")


def improvement_plot(directory: Path, improvement: pd.DataFrame) -> list[Path]:
    fig, ax = plt.subplots(figsize=(5.5, 0.55 * len(improvement) + 1.3))
    for y, row in enumerate(improvement.itertuples()):
        other = row.pair.split(" > ")[1]
        ax.barh(y, row.ci_high - row.ci_low, left=row.ci_low, height=0.6, color=color(other), alpha=0.75)
        ax.plot([row.probability] * 2, [y - 0.3, y + 0.3], color="black", linewidth=1.5)
        ax.plot([row.probability], [y], marker="o", color=color(other), markeredgecolor="black")
    ax.set_yticks(range(len(improvement)), list(improvement["pair"]))
    ax.axvline(0.5, color="gray", linestyle="--", linewidth=1)
    ax.set_xlim(-0.03, 1.03)
    ax.set_xlabel("P(X > Y)")
    ax.grid(axis="x", alpha=0.3)
    return save(fig, directory, "probability_of_improvement")


def efficiency_plot(directory: Path, steps: np.ndarray, efficiency) -> list[Path]:
    points, cis = efficiency
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for algo, curve in points.items():
        ax.plot(steps, curve, label=algo, **line_style(algo, len(steps)))
        ax.fill_between(steps, cis[algo][0], cis[algo][1], color=color(algo), alpha=0.2, linewidth=0)
    ax.set_xlabel("env steps")
    ax.set_ylabel("IQM normalised score")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, directory, "sample_efficiency")


def draw_group(directory: Path, norm, aggregates, improvement, profiles, efficiency) -> list[Path]:
    """Every aggregate figure one comparison group's data supports; returns the files written."""
    files = []
    if len(aggregates):
        files += aggregate_intervals(directory, aggregates)
    if profiles is not None:
        files += profile_plot(directory, profiles)
    if len(improvement):
        files += improvement_plot(directory, improvement)
    if efficiency is not None:
        files += efficiency_plot(directory, norm.curve_steps, efficiency)
    return files
