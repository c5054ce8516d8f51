"""A GRU block whose hidden state resets where an episode starts (HARL's RNNLayer: GRU with
`recurrent_n` layers, orthogonal weights, zero biases, LayerNorm on the output).

Shapes: L sequence length, B batch, D input width, H hidden width, R = recurrent_n layers.
"""

from __future__ import annotations

import torch
from torch import nn


class ResettingGru(nn.Module):
    """GRU over a sequence that zeroes the carried state at every row flagged as an
    episode start, so no information crosses an episode boundary."""

    def __init__(self, input_dim: int, hidden_dim: int, n_layers: int = 1):
        super().__init__()
        self.gru = nn.GRU(input_dim, hidden_dim, num_layers=n_layers)
        for name, param in self.gru.named_parameters():
            if "bias" in name:
                nn.init.zeros_(param)
            else:
                nn.init.orthogonal_(param)
        self.norm = nn.LayerNorm(hidden_dim)
        self.n_layers, self.hidden_dim = n_layers, hidden_dim

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Zero hidden state [B, R, H]."""
        return torch.zeros(batch, self.n_layers, self.hidden_dim, device=device)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [L, B, D], hidden [B, R, H] (state before x[0]), starts [L, B] bool (x[t] is the
        first step of an episode: the carried state is zeroed before it).
        Returns (outputs [L, B, H] after LayerNorm, last hidden [B, R, H])."""
        h = hidden.transpose(0, 1).contiguous()  # nn.GRU wants [R, B, H]
        outputs = []
        for t in range(x.shape[0]):
            keep = (~starts[t]).to(x.dtype).view(1, -1, 1)
            out, h = self.gru(x[t : t + 1], h * keep)
            outputs.append(out)
        return self.norm(torch.cat(outputs, dim=0)), h.transpose(0, 1)
