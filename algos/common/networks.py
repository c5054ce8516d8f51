"""Network blocks and helpers shared by the algorithms: HARL's PlainMLP (off-policy critics
and Box actors) and LayerNorm MLP base (on-policy networks, HASAC's categorical actor), the
orthogonal initialiser, the twin Q critic, Polyak averaging and the masked mean of losses.

Shapes: B batch, S state dim, A joint-action width (sum of the agents' critic encodings).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def plain_mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU, final_activation: type[nn.Module] = nn.Identity) -> nn.Sequential:
    """HARL's PlainMLP: Linear layers between consecutive `sizes`, `activation` after each
    but the last, `final_activation` after the last; default torch init, no LayerNorm."""
    layers: list[nn.Module] = []
    for j, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = j == len(sizes) - 2
        layers += [nn.Linear(n_in, n_out), final_activation() if last else activation()]
    return nn.Sequential(*layers)


def orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    """`layer` with orthogonal weights of gain `gain` and a zero bias (HARL init_ with
    initialization_method orthogonal_)."""
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


def layernorm_mlp(input_dim: int, hidden_sizes: list[int]) -> nn.Sequential:
    """HARL MLPBase with use_feature_normalization: LayerNorm on the input, then per hidden
    layer Linear (orthogonal, ReLU gain, zero bias) → ReLU → LayerNorm. [..., D] → [..., H]."""
    layers: list[nn.Module] = [nn.LayerNorm(input_dim)]
    for n_in, n_out in zip([input_dim, *hidden_sizes[:-1]], hidden_sizes):
        layers += [orthogonal(nn.Linear(n_in, n_out), nn.init.calculate_gain("relu")), nn.ReLU(), nn.LayerNorm(n_out)]
    return nn.Sequential(*layers)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over the entries whose mask is 1 (HARL active masks / valid_transition).
    `mask` holds one 0/1 weight per entry of x, in x's layout: any shape with x's number of
    entries (valid [B] for x [B, 1], active [L, C] for x [L, C]). It is reshaped to x's shape,
    never broadcast, so a [B] mask cannot silently widen a [B, 1] loss to [B, B]. An all-zero
    mask gives 0."""
    if mask.numel() != x.numel():
        raise ValueError(f"masked_mean: mask has {mask.numel()} entries, x has {x.numel()}")
    mask = mask.reshape(x.shape).to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


class TwinQ(nn.Module):
    """Centralised twin Q critic on concat(state, joint action): Q1, Q2 [B, 1] each
    (HARL twin_continuous_q_critic.py; Discrete actions enter as one-hot).

    Both heads' parameters are stacked on a leading head axis (`weights[l]` [2, out, in],
    `biases[l]` [2, out]), initialised head by head exactly as two PlainMLPs. `batched`
    runs both heads as one pass: the first layer as a single [B, D] × [D, 2H] product (both
    heads read the same input) and the others as batched [2, B, H] products, which halves
    the kernel launches on a GPU; on a CPU two ordinary products are faster (measured in
    harness/bench.py), so the default (None) batches on CUDA only. Same values either way."""

    def __init__(self, state_dim: int, joint_action_dim: int, hidden_sizes: list[int], batched: bool | None = None):
        super().__init__()
        sizes = [state_dim + joint_action_dim, *hidden_sizes, 1]
        heads = [[m for m in plain_mlp(sizes) if isinstance(m, nn.Linear)] for _ in range(2)]
        self.weights = nn.ParameterList(nn.Parameter(torch.stack([a.weight.detach(), b.weight.detach()])) for a, b in zip(*heads))
        self.biases = nn.ParameterList(nn.Parameter(torch.stack([a.bias.detach(), b.bias.detach()])) for a, b in zip(*heads))
        self.batched = batched

    def forward(self, state: torch.Tensor, joint_action: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """state [B, S], joint_action N × [B, A_i] in agent-id order -> (q1, q2), each [B, 1]."""
        x = torch.cat([state, *joint_action], dim=-1)
        batched = x.is_cuda if self.batched is None else self.batched
        return self.both_heads(x) if batched else (self.head(x, 0), self.head(x, 1))

    def q1(self, state: torch.Tensor, joint_action: list[torch.Tensor]) -> torch.Tensor:
        """Q1 alone [B, 1], for losses that read only the first head (TD3's actor loss):
        half the forward pass of forward()."""
        return self.head(torch.cat([state, *joint_action], dim=-1), 0)

    def head(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Q_k(x) [B, 1]: PlainMLP with ReLU between layers (views of the stacked weights)."""
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = F.linear(x, weight[k], bias[k])
            x = x if layer == last else F.relu(x)
        return x

    def both_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q1(x), Q2(x)) from one pass: [B, D] → [2, B, H] → … → [2, B, 1]."""
        weight, bias = self.weights[0], self.biases[0]
        h = F.relu(F.linear(x, weight.flatten(0, 1), bias.flatten()).view(x.shape[0], 2, -1).transpose(0, 1))
        last = len(self.weights) - 1
        for layer in range(1, last + 1):
            h = torch.baddbmm(self.biases[layer].unsqueeze(1), h, self.weights[layer].transpose(1, 2))
            h = h if layer == last else F.relu(h)
        return h[0], h[1]


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """θ' ← (1 − τ)·θ' + τ·θ for every parameter (buffers are copied)."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)  # one fused op, same values as per-tensor lerp_
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)
