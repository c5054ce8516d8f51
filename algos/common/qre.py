"""The soft (logit) quantal response equilibrium of a cooperative matrix game: the fixed
point HASAC converges to with a fixed temperature (paper §4; reference §4 "Soft QRE").

    πⁱ(a) ∝ exp(E_{a₋ᵢ ~ π₋ᵢ}[R(a, a₋ᵢ)] / α)   for every agent i,

found by damped fixed-point iteration. Used by the tests and by matrix-game reports.
"""

from __future__ import annotations

import numpy as np


def marginal_payoff(payoff: np.ndarray, policies: list[np.ndarray], i: int) -> np.ndarray:
    """E_{a₋ᵢ ~ π₋ᵢ}[R(a, a₋ᵢ)] for each of agent i's actions: [n_i]."""
    values = np.moveaxis(payoff, i, 0)
    others = [p for j, p in enumerate(policies) if j != i]
    for p in reversed(others):  # contract the last axis each time
        values = values @ p
    return values


def soft_best_response(payoff: np.ndarray, policies: list[np.ndarray], i: int, alpha: float) -> np.ndarray:
    """softmax(E_{a₋ᵢ}[R(·, a₋ᵢ)] / α): agent i's max-entropy best response [n_i]."""
    logits = marginal_payoff(payoff, policies, i) / alpha
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def soft_qre(
    payoff: np.ndarray,
    alpha: float,
    init: list[np.ndarray] | None = None,
    damping: float = 0.1,
    tol: float = 1e-12,
    max_iters: int = 200_000,
) -> list[np.ndarray]:
    """Damped iteration πⁱ ← (1 − η)πⁱ + η·BRⁱ(π₋ᵢ) from `init` (uniform by default) until
    no probability moves more than `tol`. Raises RuntimeError if it does not settle."""
    payoff = np.asarray(payoff, np.float64)
    policies = [np.full(n, 1.0 / n) for n in payoff.shape] if init is None else [np.asarray(p, np.float64) for p in init]
    for _ in range(max_iters):
        responses = [soft_best_response(payoff, policies, i, alpha) for i in range(payoff.ndim)]
        new = [(1 - damping) * p + damping * r for p, r in zip(policies, responses)]
        change = max(np.abs(n - p).max() for n, p in zip(new, policies))
        policies = new
        if change < tol:
            return policies
    raise RuntimeError(f"soft QRE iteration did not converge at alpha={alpha}")


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """½ Σ |p − q|."""
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())
