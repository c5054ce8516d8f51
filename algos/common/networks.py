"""Network blocks shared by the off-policy HA algorithms (HASAC, HATD3).

Shapes: B batch, S state dim, A joint-action width (sum of the agents' critic encodings).
"""

from __future__ import annotations

import torch
from torch import nn


def plain_mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU, final_activation: type[nn.Module] = nn.Identity) -> nn.Sequential:
    """HARL's PlainMLP: Linear layers between consecutive `sizes`, `activation` after each
    but the last, `final_activation` after the last; default torch init, no LayerNorm."""
    layers: list[nn.Module] = []
    for j, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = j == len(sizes) - 2
        layers += [nn.Linear(n_in, n_out), final_activation() if last else activation()]
    return nn.Sequential(*layers)


class TwinQ(nn.Module):
    """Centralised twin Q critic on concat(state, joint action): Q1, Q2 [B, 1] each
    (HARL twin_continuous_q_critic.py; Discrete actions enter as one-hot)."""

    def __init__(self, state_dim: int, joint_action_dim: int, hidden_sizes: list[int]):
        super().__init__()
        sizes = [state_dim + joint_action_dim, *hidden_sizes, 1]
        self.q1 = plain_mlp(sizes)
        self.q2 = plain_mlp(sizes)

    def forward(self, state: torch.Tensor, joint_action: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """state [B, S], joint_action N × [B, A_i] in agent-id order -> (q1, q2), each [B, 1]."""
        x = torch.cat([state, *joint_action], dim=-1)
        return self.q1(x), self.q2(x)


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """θ' ← (1 − τ)·θ' + τ·θ for every parameter (buffers are copied)."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, tau)
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)
