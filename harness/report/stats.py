"""Interval estimates with rliable (Agarwal et al., 2021): stratified bootstrap over runs
within each task. rliable 1.2.0 ignores its `random_state` argument and draws from numpy's
global generator, so every call here seeds that generator first: the same (reps, seed)
gives a report identical to the digit."""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.stats
from rliable import library as rly
from rliable import metrics

PROFILE_TAUS = np.linspace(0.0, 1.2, 61)
"""Normalised-score thresholds of the performance profiles."""

AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "IQM": metrics.aggregate_iqm,
    "Mean": metrics.aggregate_mean,
    "Median": metrics.aggregate_median,
    "Optimality gap": metrics.aggregate_optimality_gap,
}


def seeded(seed: int, call: Callable, *args, **kwargs):
    """Run `call` with numpy's global RNG seeded (and restored afterwards)."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        return call(*args, **kwargs)
    finally:
        np.random.set_state(saved)


def aggregate_estimates(scores: dict[str, np.ndarray], reps: int, seed: int):
    """{algo: [runs, tasks]} → ({algo: point[4]}, {algo: ci[2, 4]}) for AGGREGATES."""

    def all_aggregates(x: np.ndarray) -> np.ndarray:
        return np.array([f(x) for f in AGGREGATES.values()])

    return seeded(seed, rly.get_interval_estimates, scores, all_aggregates, reps=reps)


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
    """P(target > other) for every other algorithm, with CIs (keys 'target,other')."""
    pairs = {f"{target},{other}": (scores[target], scores[other]) for other in scores if other != target}
    if not pairs:
        return {}, {}
    return seeded(seed, rly.get_interval_estimates, pairs, metrics.probability_of_improvement, reps=reps)


def performance_profiles(scores: dict[str, np.ndarray], taus: np.ndarray, reps: int, seed: int):
    """Fraction of runs above each normalised-score threshold τ, with CIs."""
    return seeded(seed, rly.create_performance_profile, scores, taus, reps=reps)


def sample_efficiency(curves: dict[str, np.ndarray], reps: int, seed: int):
    """{algo: [runs, tasks, points]} → IQM per point with CIs."""

    def iqm_per_point(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x[..., k]) for k in range(x.shape[-1])])

    return seeded(seed, rly.get_interval_estimates, curves, iqm_per_point, reps=reps)
