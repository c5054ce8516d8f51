"""Parameter tables for packed seeds (algos/common/packed.py): the parameters of M lone
modules of one structure stacked by name, stepped by torch's functional Adam, and the batched
forms of the shared network blocks (Linear, nn.Sequential of Linear / LayerNorm /
parameter-free layers, the twin critic) over a set of table rows.

Shapes: M rows of a table, S rows of a pass, B batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.adam import adam as functional_adam
from torch.optim.optimizer import _get_scalar_dtype

Params = dict[str, torch.Tensor]


class Table:
    """The parameters of M modules of one structure, stacked by name: params[name] [M, *shape]
    (row r = modules[r]), with Adam's moments when `moments`."""

    def __init__(self, modules: list[nn.Module], moments: bool):
        first = [(n, p.shape) for n, p in modules[0].named_parameters()]
        for m in modules[1:]:
            if [(n, p.shape) for n, p in m.named_parameters()] != first:
                raise ValueError("packed: modules of one table must have the same parameters")
        self.names = [n for n, _ in first]
        self.params: Params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in modules]).requires_grad_()
                               for n in self.names}
        self.moments = moments
        self.exp_avg = {n: torch.zeros_like(p, requires_grad=False) for n, p in self.params.items()} if moments else {}
        self.exp_avg_sq = {n: torch.zeros_like(p, requires_grad=False) for n, p in self.params.items()} if moments else {}
        self.steps = 0  # Adam steps every row has taken
        self.group: dict[str, Any] = {}

    @property
    def rows(self) -> int:
        return next(iter(self.params.values())).shape[0]

    # -- lone modules <-> table ------------------------------------------------------------
    @torch.no_grad()
    def load(self, modules: list[nn.Module], optimizers: list[torch.optim.Optimizer] | None = None) -> None:
        for r, m in enumerate(modules):
            for n, p in m.named_parameters():
                self.params[n][r] = p
        if optimizers is not None:
            self.load_moments(modules, optimizers)

    @torch.no_grad()
    def store(self, modules: list[nn.Module], optimizers: list[torch.optim.Optimizer] | None = None) -> None:
        for r, m in enumerate(modules):
            for n, p in m.named_parameters():
                p.copy_(self.params[n][r])
        if optimizers is not None and self.steps > 0:
            for r, (m, opt) in enumerate(zip(modules, optimizers)):
                for n, p in m.named_parameters():
                    state = opt.state[p]
                    if not state:
                        state.update(fresh_adam_state(p, opt.param_groups[0]))
                    state["step"].fill_(float(self.steps))
                    state["exp_avg"].copy_(self.exp_avg[n][r])
                    state["exp_avg_sq"].copy_(self.exp_avg_sq[n][r])

    def load_moments(self, modules: list[nn.Module], optimizers: list[torch.optim.Optimizer]) -> None:
        self.group = adam_flags(optimizers[0].param_groups[0])
        steps = set()
        for r, (m, opt) in enumerate(zip(modules, optimizers)):
            for n, p in m.named_parameters():
                state = opt.state.get(p, {})
                steps.add(int(state["step"]) if state else 0)
                self.exp_avg[n][r] = state["exp_avg"] if state else 0.0
                self.exp_avg_sq[n][r] = state["exp_avg_sq"] if state else 0.0
        if len(steps) != 1:
            raise ValueError(f"packed: the optimisers of one table have taken different numbers of steps {sorted(steps)}")
        self.steps = steps.pop()

    # -- training --------------------------------------------------------------------------
    def leaves(self, rows: torch.Tensor | None) -> Params:
        """Parameters of `rows` (None = every row) as leaves to differentiate: the table's
        own tensors for every row, else gathered copies."""
        if rows is None:
            return self.params
        return {n: p.detach().index_select(0, rows).requires_grad_() for n, p in self.params.items()}

    def view(self, rows: torch.Tensor | None) -> Params:
        """Parameters of `rows` without gradient (for passes that only read them)."""
        if rows is None:
            return {n: p.detach() for n, p in self.params.items()}
        return {n: p.detach().index_select(0, rows) for n, p in self.params.items()}

    @torch.no_grad()
    def adam_step(self, rows: torch.Tensor | None, leaves: Params, grads: list[torch.Tensor | None], steps: int) -> None:
        """One Adam step of `rows` (their `steps`-th: every row of a gathered step has taken
        as many) with the lone optimiser's flags; gathered rows are written back."""
        params = [leaves[n] for n in self.names]
        # the fused kernels read grads in the parameters' layout (autograd.grad may return others)
        grads = [torch.zeros_like(p) if g is None else g.contiguous() for p, g in zip(params, grads)]
        if rows is None:
            m, v = [self.exp_avg[n] for n in self.names], [self.exp_avg_sq[n] for n in self.names]
        else:
            m = [self.exp_avg[n].index_select(0, rows) for n in self.names]
            v = [self.exp_avg_sq[n].index_select(0, rows) for n in self.names]
        g = self.group
        counts = self.step_counts(steps, len(params), params[0].device)
        beta1, beta2 = g["betas"]
        functional_adam([p.detach() for p in params], grads, m, v, [], counts, foreach=g["foreach"], capturable=g["capturable"],
                        fused=g["fused"], amsgrad=False, beta1=beta1, beta2=beta2, lr=g["lr"], weight_decay=g["weight_decay"],
                        eps=g["eps"], maximize=g["maximize"], decoupled_weight_decay=g["decoupled_weight_decay"])
        if rows is not None:
            for n, p, mn, vn in zip(self.names, params, m, v):
                self.params[n].index_copy_(0, rows, p.detach())
                self.exp_avg[n].index_copy_(0, rows, mn)
                self.exp_avg_sq[n].index_copy_(0, rows, vn)

    def step_counts(self, steps: int, n: int, device: torch.device) -> list[torch.Tensor]:
        """n step tensors holding `steps` where the lone optimiser keeps them: on the device
        for the fused (and capturable) Adam — made there from one cached tensor, since a
        host-to-device copy per call would wait for the GPU — else on the host."""
        g = self.group
        if not (g["fused"] or g["capturable"]):
            return [torch.tensor(float(steps), dtype=_get_scalar_dtype()) for _ in range(n)]
        if getattr(self, "_count", None) is None or self._count.device != device:
            self._count, self._count_steps = torch.zeros((), dtype=_get_scalar_dtype(is_fused=g["fused"]), device=device), 0.0
        if self._count_steps != steps:
            self._count.fill_(float(steps))
            self._count_steps = steps
        return list(self._count.repeat(n).unbind())

    def step_rows(self, rows: torch.Tensor | None, leaves: Params, loss: torch.Tensor, steps: int | None = None) -> None:
        """Differentiate `loss` (the sum of the rows' losses: rows do not interact) with
        respect to `leaves` and take one Adam step of those rows."""
        grads = torch.autograd.grad(loss, [leaves[n] for n in self.names], allow_unused=True)
        self.adam_step(rows, leaves, list(grads), self.steps if steps is None else steps)
        if steps is None:
            self.steps += 1


def adam_flags(group: dict[str, Any]) -> dict[str, Any]:
    """The flags of a lone torch.optim.Adam param group that the functional Adam takes."""
    if group.get("amsgrad") or group.get("differentiable"):
        raise ValueError("packed: amsgrad / differentiable Adam is not supported")
    keys = ("lr", "betas", "eps", "weight_decay", "maximize", "foreach", "fused", "capturable")
    return {k: group[k] for k in keys} | {"decoupled_weight_decay": group.get("decoupled_weight_decay", False)}


def fresh_adam_state(p: torch.Tensor, group: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Adam's lazily created state for `p`, as torch.optim.Adam creates it at its first step."""
    on_device = group["capturable"] or group["fused"]
    step = (torch.zeros((), dtype=_get_scalar_dtype(is_fused=group["fused"]), device=p.device) if on_device
            else torch.tensor(0.0, dtype=_get_scalar_dtype()))
    return {"step": step, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}


# -- batched network passes over table rows ---------------------------------------------------
def linear(p: Params, name: str, x: torch.Tensor) -> torch.Tensor:
    """nn.Linear `name` of every row at once: x [S, B, in] -> [S, B, out]."""
    return torch.baddbmm(p[f"{name}.bias"].unsqueeze(1), x, p[f"{name}.weight"].transpose(1, 2))


def sequential(template: nn.Sequential, p: Params, prefix: str, x: torch.Tensor) -> torch.Tensor:
    """The lone nn.Sequential `template` (Linear, LayerNorm and parameter-free layers) with
    each row's parameters: x [S, B, D] -> [S, B, H]."""
    for j, module in enumerate(template):
        key = f"{prefix}.{j}"
        if isinstance(module, nn.Linear):
            x = linear(p, key, x)
        elif isinstance(module, nn.LayerNorm):
            x = F.layer_norm(x, module.normalized_shape, eps=module.eps) * p[f"{key}.weight"].unsqueeze(1) + p[f"{key}.bias"].unsqueeze(1)
        elif next(module.parameters(), None) is None:
            x = module(x)
        else:
            raise TypeError(f"packed: no batched form of {type(module).__name__}")
    return x


def twin_q(p: Params, x: torch.Tensor, heads: int = 2) -> list[torch.Tensor]:
    """algos.common.networks.TwinQ of every row: x [S, B, D] -> `heads` × [S, B, 1] (Q1 and
    Q2, or Q1 alone), every layer one product batched over S·heads (both heads read a copy
    of the narrow input x rather than splitting a wide [S, B, 2H] output, which would be a
    copy of the hidden layer)."""
    layers = len([n for n in p if n.startswith("weights.")])
    S, B = x.shape[:2]
    h = x.unsqueeze(1).expand(S, heads, *x.shape[1:]).reshape(S * heads, B, -1)
    for layer in range(layers):
        w, b = p[f"weights.{layer}"][:, :heads], p[f"biases.{layer}"][:, :heads]  # [S, h, out, in], [S, h, out]
        h = torch.baddbmm(b.reshape(S * heads, 1, -1), F.relu(h) if layer else h, w.reshape(S * heads, *w.shape[2:]).transpose(1, 2))
    q = h.view(S, heads, B, 1)
    return [q[:, j] for j in range(heads)]


class Scalar(nn.Module):
    """One lone 0-d parameter (a temperature log α) as a module, so that a Table can stack it."""

    def __init__(self, value: nn.Parameter):
        super().__init__()
        self.value = value
