"""Action distributions of the stochastic off-policy actors, as pure functions.

Every sampler takes an explicit `torch.Generator`, so the algorithm owns (and checkpoints)
its randomness. Shapes: B batch, A action dim (Box) or number of actions (Discrete).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MASKED_LOGIT = -1e10
"""Logit of an unavailable action (HARL's value): exp() of it is exactly 0 in float32,
and unlike -inf it keeps 0 · log π finite in the expected losses."""


def scale_action(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Affine map of x ∈ [-1, 1] onto [low, high]: low + (x + 1)·(high − low)/2."""
    return low + (x + 1.0) * (high - low) / 2.0


def tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    """log(1 − tanh(u)²) per element, in the overflow-free form 2(log 2 − u − softplus(−2u))
    (SpinningUp / HARL squashed_gaussian_policy.py)."""
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


def squashed_gaussian_sample(
    mu: torch.Tensor, log_std: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised x = tanh(u), u = μ + σ·ε, ε ~ N(0, I), and the density of x:

        log π(x) = Σ_j [log N(u_j; μ_j, σ_j) − log(1 − tanh² u_j)]

    (the change of variables through tanh). Returns (x [B, A] in (−1, 1), log_prob [B, 1]);
    `box_action` and `box_log_det` put x on the action box."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return squashed_gaussian(mu, log_std, eps)


def squashed_gaussian(mu: torch.Tensor, log_std: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`squashed_gaussian_sample` with the standard normal draw ε given ([..., A], any
    leading axes; packed seeds draw each seed's ε from its own generator)."""
    u = mu + log_std.exp() * eps
    log_normal = -0.5 * eps.pow(2) - log_std - 0.5 * math.log(2.0 * math.pi)
    return torch.tanh(u), (log_normal - tanh_log_det(u)).sum(dim=-1, keepdim=True)


BOX_ACTIONS = ("official", "affine")
"""How a squashed policy's x ∈ (−1, 1) becomes an action (HasacConfig.box_action)."""


def box_action(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor, mode: str) -> torch.Tensor:
    """x ∈ [−1, 1] -> action. 'official': high[0]·x, one scale for every dimension, as HARL
    squashed_gaussian_policy.py l.43, l.76-77 (on an asymmetric box such as MPE's Box(0, 1)
    part of the range lies outside it and the environment clips); 'affine': the affine map
    onto [low, high] (`scale_action`)."""
    return high[..., :1] * x if mode == "official" else scale_action(x, low, high)


def box_log_det(low: torch.Tensor, high: torch.Tensor, mode: str) -> torch.Tensor:
    """log |da/dx| summed over the action dimensions, subtracted from log π(x) to give
    log π(a): 0 for 'official' (HARL's log π is the density of tanh(u) whatever the scale,
    l.71-72) and Σ_j log((high_j − low_j)/2) for 'affine' (π a density on the action box);
    bounds [..., A] -> [..., 1]."""
    if mode == "official":
        return torch.zeros((), device=low.device)
    return torch.log((high - low) / 2.0).sum(dim=-1, keepdim=True)


def masked_logits(logits: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """logits [B, A] with unavailable actions (avail False) set to MASKED_LOGIT."""
    return logits if avail is None else logits.masked_fill(~avail, MASKED_LOGIT)


def gumbel_noise(shape: torch.Size, generator: torch.Generator | None, device, dtype) -> torch.Tensor:
    """g = −log E, E ~ Exp(1) (the Gumbel(0, 1) law); E is floored so that g stays finite
    (an infinite g could lift a masked logit above an available one)."""
    e = torch.empty(shape, device=device, dtype=dtype).exponential_(generator=generator)
    return -e.clamp_min(1e-20).log()


def gumbel_softmax_hard(
    logits: torch.Tensor, avail: torch.Tensor | None, generator: torch.Generator | None, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Straight-through Gumbel-Softmax (Jang et al. 2017) over the available actions.

    Forward: the one-hot of a categorical sample (Gumbel-max). Backward: the gradient of
    the relaxed sample softmax((log π + g)/τ). log π(a) = Σ onehot · log_softmax(logits),
    as in HARL stochastic_mlp_policy.py. Returns (onehot [B, A], log_prob [B, 1])."""
    return gumbel_softmax_given(logits, avail, gumbel_noise(logits.shape, generator, logits.device, logits.dtype), temperature)


def gumbel_softmax_given(logits: torch.Tensor, avail: torch.Tensor | None, gumbel: torch.Tensor,
                         temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """`gumbel_softmax_hard` with the Gumbel(0, 1) draw g given ([..., A], any leading axes)."""
    log_pi = F.log_softmax(masked_logits(logits, avail), dim=-1)
    perturbed = log_pi + gumbel
    soft = F.softmax(perturbed / temperature, dim=-1)
    choice = perturbed if avail is None else perturbed.masked_fill(~avail, -math.inf)
    hard = F.one_hot(choice.argmax(dim=-1), log_pi.shape[-1]).to(soft.dtype)
    onehot = hard - soft.detach() + soft
    return onehot, (onehot * log_pi).sum(dim=-1, keepdim=True)


def masked_argmax_onehot(logits: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """The deterministic (evaluation) action: one-hot of the most likely available action."""
    index = masked_logits(logits, avail).argmax(dim=-1)
    return F.one_hot(index, logits.shape[-1]).to(logits.dtype)
