"""HARL's on-policy networks (stochastic_policy.py, v_net.py): the stochastic actor of HAPPO
and MAPPO, Gaussian for Box and masked categorical for Discrete, and the centralised V(s)
critic, both optionally recurrent.

Shapes: L steps of a chunk, B rows, O observation width, H hidden width, R GRU layers.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from algos.common.distributions import masked_logits
from algos.common.networks import layernorm_mlp, orthogonal
from algos.common.recurrent import ResettingGru


class Trunk(nn.Module):
    """LayerNorm MLP base, then an optional GRU (`recurrent_n` layers, None for none): the
    body of HARL's actor and V network (RNNLayer after the MLPBase when use_recurrent_policy)."""

    def __init__(self, input_dim: int, hidden_sizes: list[int], recurrent_n: int | None):
        super().__init__()
        width = hidden_sizes[-1]
        self.base = layernorm_mlp(input_dim, hidden_sizes)
        self.rnn = None if recurrent_n is None else ResettingGru(width, width, recurrent_n)

    def features(self, x: torch.Tensor, hidden: torch.Tensor | None, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [L, B, D], hidden [B, R, H] or None, starts [L, B] → (features [L, B, H], last hidden)."""
        x = self.base(x)
        if self.rnn is None:
            return x, None
        return self.rnn(x, hidden, starts)


class Policy(Trunk):
    """Stochastic actor: the trunk (LayerNorm MLP base, optional GRU), then a Gaussian head
    (mean from a linear layer, state-independent σ = sigmoid(log_std / std_x_coef)·std_y_coef
    with log_std starting at std_x_coef, as HARL DiagGaussian) for Box, or a categorical head
    over masked logits for Discrete (unavailable actions get π = 0). Head weights orthogonal
    with gain 0.01 (HARL `gain`)."""

    def __init__(self, input_dim: int, action_space: spaces.Space, hidden_sizes: list[int],
                 recurrent_n: int | None = None, std_x_coef: float = 1.0, std_y_coef: float = 0.5):
        super().__init__(input_dim, hidden_sizes, recurrent_n)
        width = hidden_sizes[-1]
        self.discrete = isinstance(action_space, spaces.Discrete)
        n_out = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.head = orthogonal(nn.Linear(width, n_out), 0.01)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((n_out,), float(std_x_coef)))
        self.x_coef, self.y_coef = std_x_coef, std_y_coef

    def distribution(self, x: torch.Tensor, avail: torch.Tensor | None) -> torch.distributions.Distribution:
        out = self.head(x)
        if self.discrete:
            return torch.distributions.Categorical(logits=masked_logits(out, avail), validate_args=False)
        std = torch.sigmoid(self.log_std / self.x_coef) * self.y_coef
        return torch.distributions.Normal(out, std.expand_as(out), validate_args=False)  # no per-call argument checks

    def evaluate(self, obs, hidden, starts, actions, avail) -> tuple[torch.Tensor, torch.Tensor]:
        """(log π(a|o) [L, B], entropy [L, B]) of stored actions; Box dims are summed
        (HARL action_aggregation 'prod' of the per-dimension ratios)."""
        dist = self.distribution(self.features(obs, hidden, starts)[0], avail)
        if self.discrete:
            return dist.log_prob(actions), dist.entropy()
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1)


def sample(dist: torch.distributions.Distribution, generator: torch.Generator) -> torch.Tensor:
    """One draw from `dist` with an explicit generator (Box: raw, unclipped)."""
    if isinstance(dist, torch.distributions.Categorical):
        return torch.multinomial(dist.probs.reshape(-1, dist.probs.shape[-1]), 1, generator=generator).view(dist.probs.shape[:-1])
    eps = torch.randn(dist.mean.shape, generator=generator, device=dist.mean.device, dtype=dist.mean.dtype)
    return dist.mean + dist.stddev * eps


class VCritic(Trunk):
    """Centralised V(s) (HARL VCritic, EP state): the trunk, GRU included with
    `recurrent_n` (HARL v_net.py l.33-39, l.62-65), → Linear(1). Outputs are in ValueNorm's
    normalised space when use_valuenorm."""

    def __init__(self, state_dim: int, hidden_sizes: list[int], recurrent_n: int | None = None):
        super().__init__(state_dim, hidden_sizes, recurrent_n)
        self.v_out = orthogonal(nn.Linear(hidden_sizes[-1], 1), 1.0)

    def forward(self, state: torch.Tensor, hidden: torch.Tensor | None, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """state [L, B, S], hidden [B, R, H] or None, starts [L, B] → (value [L, B], last hidden)."""
        x, hidden = self.features(state, hidden, starts)
        return self.v_out(x).squeeze(-1), hidden
