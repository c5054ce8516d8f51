"""Interval estimates after rliable (Agarwal et al., 2021): stratified bootstrap over runs
within each task, percentile 95 % CIs. The aggregates and the probability of improvement
are drawn here in vectorised batches from numpy Generators seeded with the report's seed;
the performance profiles and sample-efficiency curves (figures) call rliable, which ignores
its `random_state` argument and draws from numpy's global generator, so those calls seed
that generator first. The same (reps, seed) gives a report identical to the digit."""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.stats
from rliable import library as rly
from rliable import metrics

PROFILE_TAUS = np.linspace(0.0, 1.2, 61)
"""Normalised-score thresholds of the performance profiles."""

AGGREGATES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "IQM": lambda s: scipy.stats.trim_mean(s.reshape(*s.shape[:-2], -1), 0.25, axis=-1),
    "Mean": lambda s: np.mean(np.mean(s, axis=-2), axis=-1),
    "Median": lambda s: np.median(np.mean(s, axis=-2), axis=-1),
    "Optimality gap": lambda s: 1.0 - np.mean(np.minimum(s, 1.0), axis=(-2, -1)),
}
"""rliable's aggregates of [..., runs, tasks] scores (metrics.aggregate_iqm over every score,
_mean and _median over the tasks' mean scores, _optimality_gap with γ = 1), vectorised over
the leading axes so that one call scores every bootstrap replicate."""


def seeded(seed: int, call: Callable, *args, **kwargs):
    """Run `call` with numpy's global RNG seeded (and restored afterwards)."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        return call(*args, **kwargs)
    finally:
        np.random.set_state(saved)


def stratified_resamples(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """[reps, runs, tasks]: each task's runs drawn with replacement, apart from the other
    tasks' (rliable's StratifiedBootstrap), for all replicates at once."""
    runs, tasks = scores.shape
    rows = rng.integers(0, runs, size=(reps, runs, tasks))
    return scores[rows, np.arange(tasks)]


def aggregate_estimates(scores: dict[str, np.ndarray], reps: int, seed: int):
    """{algo: [runs, tasks]} → ({algo: point[4]}, {algo: ci[2, 4]}) for AGGREGATES:
    percentile-bootstrap 95 % CIs over stratified resamples (rliable's method, drawn in one
    vectorised batch: its per-replicate loop costs minutes on a full suite's tree)."""
    points, cis = {}, {}
    for algo, x in scores.items():
        samples = stratified_resamples(np.asarray(x, float), reps, np.random.default_rng(seed))
        points[algo] = np.array([f(np.asarray(x, float)) for f in AGGREGATES.values()], float)
        replicates = np.stack([f(samples) for f in AGGREGATES.values()], axis=1)
        cis[algo] = np.percentile(replicates, [2.5, 97.5], axis=0)
    return points, cis


def task_intervals(values: np.ndarray, reps: int, seed: int) -> dict[str, float]:
    """IQM and mean of one task's per-seed scores with percentile-bootstrap 95 % CIs. With
    one task the stratified bootstrap is the plain bootstrap over runs; drawn here in one
    vectorised batch (rliable's per-replicate loop costs seconds per task on big trees)."""
    rng = np.random.default_rng(seed)
    samples = values[rng.integers(0, len(values), size=(reps, len(values)))]
    iqms = scipy.stats.trim_mean(samples, 0.25, axis=1)
    means = samples.mean(axis=1)
    return {
        "iqm": float(scipy.stats.trim_mean(values, 0.25)),
        "iqm_ci_low": float(np.percentile(iqms, 2.5)), "iqm_ci_high": float(np.percentile(iqms, 97.5)),
        "mean_ci_low": float(np.percentile(means, 2.5)), "mean_ci_high": float(np.percentile(means, 97.5)),
    }


def probability_of_improvement(scores: dict[str, np.ndarray], target: str, reps: int, seed: int):
    """P(target > other) for every other algorithm (keys 'target,other'): over the tasks, the
    mean of P(X > Y) + ½ P(X = Y) for a random run of each (rliable's, the Mann-Whitney U over
    n·m), with percentile-bootstrap 95 % CIs over both algorithms' stratified resamples."""
    points, cis = {}, {}
    x = np.asarray(scores[target], float)
    for other, y in scores.items():
        if other == target:
            continue
        rng = np.random.default_rng(seed)
        xs, ys = stratified_resamples(x, reps, rng), stratified_resamples(np.asarray(y, float), reps, rng)
        points[f"{target},{other}"] = float(_improvement(x[None], np.asarray(y, float)[None])[0])
        cis[f"{target},{other}"] = np.percentile(_improvement(xs, ys), [2.5, 97.5])
    return points, cis


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[reps, n, tasks] and [reps, m, tasks] → [reps]: the mean over tasks of P(X > Y)."""
    return task_improvement(x, y).mean(axis=-1)


def task_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[..., n, tasks] and [..., m, tasks] → [..., tasks]: P(X > Y) + ½ P(X = Y) per task."""
    x, y = np.asarray(x, float)[..., :, None, :], np.asarray(y, float)[..., None, :, :]
    return ((x > y).mean(axis=(-3, -2)) + 0.5 * (x == y).mean(axis=(-3, -2)))


def performance_profiles(scores: dict[str, np.ndarray], taus: np.ndarray, reps: int, seed: int):
    """Fraction of runs above each normalised-score threshold τ, with CIs."""
    return seeded(seed, rly.create_performance_profile, scores, taus, reps=reps)


def sample_efficiency(curves: dict[str, np.ndarray], reps: int, seed: int):
    """{algo: [runs, tasks, points]} → IQM per point with CIs."""

    def iqm_per_point(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x[..., k]) for k in range(x.shape[-1])])

    return seeded(seed, rly.get_interval_estimates, curves, iqm_per_point, reps=reps)
