"""PPO's pure pieces as HARL's on-policy code computes them: ValueNorm, GAE(λ) with proper
time limits, advantage normalisation over active entries, the clipped surrogate (with
HAPPO's factor) and the clipped Huber value loss. Tensors in, tensors out; no state but
ValueNorm's running statistics.

Shapes: T rollout steps, E env copies, N agents; L, C the chunked actor layout (on_policy.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from algos.common.networks import masked_mean


class ValueNorm(nn.Module):
    """Running mean/std of the returns with debiased exponential averages (HARL ValueNorm,
    β = 0.99999, variance floored at 1e-2). normalize(x) = (x − μ)/σ, denormalize inverts it."""

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5):
        super().__init__()
        self.beta, self.epsilon = beta, epsilon
        self.register_buffer("running_mean", torch.zeros(1, dtype=torch.float64))
        self.register_buffer("running_mean_sq", torch.zeros(1, dtype=torch.float64))
        self.register_buffer("debiasing_term", torch.zeros(1, dtype=torch.float64))

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        debias = self.debiasing_term.clamp(min=self.epsilon)
        mean, mean_sq = self.running_mean / debias, self.running_mean_sq / debias
        return mean, (mean_sq - mean**2).clamp(min=1e-2)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.detach().double()
        w = self.beta
        self.running_mean.mul_(w).add_(x.mean() * (1.0 - w))
        self.running_mean_sq.mul_(w).add_((x**2).mean() * (1.0 - w))
        self.debiasing_term.mul_(w).add_(1.0 - w)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.mean_var()
        return ((x.double() - mean) / var.sqrt()).to(x.dtype)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.mean_var()
        return (x.double() * var.sqrt() + mean).to(x.dtype)


def gae(reward: torch.Tensor, value: torch.Tensor, next_value: torch.Tensor, terminated: torch.Tensor,
        truncated: torch.Tensor, gamma: float, lam: float, bootstrap_truncation: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(λ) (Schulman et al. 2016) with proper time limits. All inputs [T, E]; next_value =
    V(s'_t), the true next state (info["final_state"] where an episode ended); terminated
    and truncated are 0/1 (bool or float), done = terminated ∨ truncated.

    Official (HARL on_policy_critic_buffer_ep.py compute_returns with bad_masks):
        δ_t = r_t + γ (1 − done_t) V(s'_t) − V(s_t)
        Â_t = (1 − truncated_t) · [δ_t + γλ (1 − done_t) Â_{t+1}]
    a truncated step gets Â = 0 and return V(s_t); the step before it bootstraps from
    V(s_t) through its own δ. bootstrap_truncation (our alternative) keeps the truncated
    step and bootstraps it from its final state:
        δ_t = r_t + γ (1 − terminated_t) V(s'_t) − V(s_t),   Â_t = δ_t + γλ (1 − done_t) Â_{t+1}.
    Either way a terminated step bootstraps from 0 and the rollout's last step from V(s'_T).
    Returns (advantage, return = advantage + value), both [T, E]."""
    terminated, truncated = terminated.to(reward.dtype), truncated.to(reward.dtype)
    done = torch.maximum(terminated, truncated)
    cont = 1.0 - (terminated if bootstrap_truncation else done)
    keep = torch.ones_like(truncated) if bootstrap_truncation else 1.0 - truncated
    advantage = torch.zeros_like(reward)
    running = torch.zeros_like(reward[0])
    for t in reversed(range(reward.shape[0])):
        delta = reward[t] + gamma * cont[t] * next_value[t] - value[t]
        running = keep[t] * (delta + gamma * lam * (1.0 - done[t]) * running)
        advantage[t] = running
    return advantage, advantage + value


def normalise_advantage(advantage: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """(Â − mean)/(std + 1e-5), mean and (population) std over the active entries of K agents
    (HARL nanmean / nanstd over the agents' active masks). advantage [T, E], one shared by
    the K agents: entry (t, e) counts once per agent active there; or [T, E, K], one per
    agent: entry (t, e, k) counts where agent k is active. active [T, E, K]; the result has
    the advantage's shape."""
    weights = active.to(advantage.dtype)
    if advantage.dim() < weights.dim():  # shared: the count of active agents per entry
        weights = weights.sum(-1)
    total = weights.sum().clamp_min(1.0)
    mean = (advantage * weights).sum() / total
    std = (((advantage - mean) ** 2 * weights).sum() / total).sqrt()
    return (advantage - mean) / (std + 1e-5)


# -- losses ---------------------------------------------------------------------------------
ACTOR_METRICS = ("loss/actor", "entropy", "approx_kl", "clip_fraction", "ratio", "grad_norm/actor")
"""Metric keys of one actor's update (ppo_actor_loss's, plus the learner's gradient norm)."""


def ppo_actor_loss(ratio: torch.Tensor, advantage: torch.Tensor, factor: torch.Tensor, entropy: torch.Tensor,
                   active: torch.Tensor, clip: float, entropy_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
    """HAPPO/MAPPO actor loss (Kuba et al. 2022, eq. 11):
        L = −E_active[ M · min(r Â, clip(r, 1 ± ε) Â) ] − c_H · E_active[H(π)],
    with r = π_new(a|o)/π_old(a|o) (product over action dims) and M = `factor`, the
    product of the ratios of the agents already updated (1 for MAPPO). The factor is
    detached: it weights agent i's surrogate but carries no gradient to agent i.
    All tensors share one shape ([L, C]); active is the alive mask."""
    surrogate = torch.min(ratio * advantage, ratio.clamp(1.0 - clip, 1.0 + clip) * advantage)
    policy_loss = -masked_mean(factor.detach() * surrogate, active)
    entropy_mean = masked_mean(entropy, active)
    with torch.no_grad():
        log_ratio = ratio.log()
        metrics = {
            "loss/actor": policy_loss.item(),
            "entropy": entropy_mean.item(),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, active).item(),
            "clip_fraction": masked_mean(((ratio - 1.0).abs() > clip).float(), active).item(),
            "ratio": masked_mean(ratio, active).item(),
        }
    return policy_loss - entropy_coef * entropy_mean, metrics


def value_loss(value: torch.Tensor, old_value: torch.Tensor, target: torch.Tensor, clip: float,
               huber_delta: float | None, clipped: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO value loss in normalised space (HARL v_critic.cal_value_loss):
    ℓ = Huber_δ or ½e²; loss = mean(max(ℓ(R − V), ℓ(R − V_clipped))) when clipped, with
    V_clipped = V_old + clip(V − V_old, ±ε). value, old_value, target: [B]."""
    def ell(error: torch.Tensor) -> torch.Tensor:
        if huber_delta is None:
            return 0.5 * error**2
        return F.huber_loss(error, torch.zeros_like(error), delta=huber_delta, reduction="none")

    loss = ell(target - value)
    if clipped:
        value_clipped = old_value + (value - old_value).clamp(-clip, clip)
        loss = torch.max(loss, ell(target - value_clipped))
    loss = loss.mean()
    return loss, {"loss/critic": loss.item()}
