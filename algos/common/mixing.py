"""The monotonic QMIX mixing network (Rashid et al., "QMIX: Monotonic Value Function
Factorisation for Deep Multi-Agent Reinforcement Learning", ICML 2018, Sec. 4.2):

    Q_tot(q, s) = |w₂(s)|ᵀ · ELU(|W₁(s)|ᵀ q + b₁(s)) + V(s)

W₁ [N, E] and w₂ [E, 1] come from hypernetworks on the global state s; taking their absolute
values makes every ∂Q_tot/∂qᵢ ≥ 0 (ELU is monotonic increasing), which is what lets each
agent's greedy action also maximise Q_tot. The biases b₁ and V(s) are state-dependent and
unconstrained (V is a two-layer net, the paper's "final bias").

Shapes: B batch, N agents, S state dim, E embed dim.
"""

from __future__ import annotations

import torch
from torch import nn


def hypernet(state_dim: int, out_dim: int, layers: int, hidden: int) -> nn.Module:
    """One hypernetwork: Linear(S, out) (layers=1) or Linear(S, hidden) → ReLU → Linear(hidden, out)
    (layers=2, the PyMARL SMAC setting `hypernet_layers: 2`, `hypernet_embed: 64`)."""
    if layers == 1:
        return nn.Linear(state_dim, out_dim)
    if layers == 2:
        return nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
    raise ValueError(f"hypernet_layers must be 1 or 2, got {layers}")


class QMixer(nn.Module):
    """Monotonic mixer: per-agent utilities q [B, N] and state s [B, S] -> Q_tot [B, 1]."""

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hypernet_layers: int = 2, hypernet_embed: int = 64):
        super().__init__()
        self.n_agents, self.embed_dim = n_agents, embed_dim
        self.hyper_w1 = hypernet(state_dim, n_agents * embed_dim, hypernet_layers, hypernet_embed)
        self.hyper_w2 = hypernet(state_dim, embed_dim, hypernet_layers, hypernet_embed)
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.value = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))  # V(s)

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """q [B, N], state [B, S] -> Q_tot [B, 1]. Any leading dims are flattened into B."""
        lead = q.shape[:-1]
        q = q.reshape(-1, 1, self.n_agents)
        state = state.reshape(q.shape[0], -1)
        w1 = self.hyper_w1(state).abs().view(-1, self.n_agents, self.embed_dim)  # [B, N, E], ≥ 0
        b1 = self.hyper_b1(state).view(-1, 1, self.embed_dim)
        hidden = nn.functional.elu(torch.bmm(q, w1) + b1)  # [B, 1, E]
        w2 = self.hyper_w2(state).abs().view(-1, self.embed_dim, 1)  # [B, E, 1], ≥ 0
        q_tot = torch.bmm(hidden, w2).view(-1, 1) + self.value(state)
        return q_tot.view(*lead, 1)
