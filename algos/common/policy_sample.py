"""Draws from the per-agent stochastic actors of HASAC-style learners (categorical heads and
reparameterised squashed Gaussians) with entropies: `Algorithm.sample_policy`, from which
harness/evaluate.py estimates the soft objective J(π) = E[R] + α Σᵢ H(πⁱ).

Shapes: E rows (env copies), N agents, K Monte-Carlo draws.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from algos.base import PolicySample

ENTROPY_DRAWS = 16
"""K: draws per row for the Monte-Carlo entropy of a tanh-squashed Gaussian (its entropy
has no closed form); the standard error of each row's estimate is about σ(log π)/4."""


@torch.no_grad()
def sample_stochastic_actors(actors: nn.ModuleList, inputs: list[tuple[torch.Tensor, torch.Tensor | None]],
                             discrete: list[bool], generator: torch.Generator, draws: int = ENTROPY_DRAWS) -> PolicySample:
    """One action per row from each actor and its entropy [N, E].

    Discrete actors expose `log_probs(obs, avail) -> [E, n]`: the action is drawn from π
    (unavailable actions have π = 0) and H = −Σ_a π(a) log π(a) exactly.
    Box actors are `actor(obs, avail, generator) -> (action [B, A], log π [B, 1])` samplers:
    the action is the first of K draws and H ≈ −(1/K) Σ_k log π(a_k) (unbiased), with
    log π the density on the action box (tanh and affine change of variables included)."""
    actions, entropies = [], []
    for actor, (obs, avail), is_discrete in zip(actors, inputs, discrete):
        E = obs.shape[0]
        if is_discrete:
            log_pi = actor.log_probs(obs, avail)
            pi = log_pi.exp()
            actions.append(torch.multinomial(pi, 1, generator=generator).squeeze(-1).cpu().numpy().astype(np.int64))
            entropies.append(-(pi * log_pi).sum(dim=-1))
        else:
            action, log_prob = actor(obs.repeat(draws, 1), avail, generator)
            actions.append(action[:E].cpu().numpy().astype(np.float32))
            entropies.append(-log_prob.view(draws, E).mean(dim=0))
    return PolicySample(actions, torch.stack(entropies).cpu().numpy().astype(np.float64))
