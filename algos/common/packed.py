"""Packed seeds: the K seeds of one (task, algorithm) trained in one process as one batched
computation (run key `pack=K`; docs/speed.md, "Packed seeds").

The K lone learners are built exactly as K lone runs build them (initial weights,
generators, replay buffers, counters), and stay the state at rest: evaluation,
`state_dict` and `load_state_dict` go through them. While training, the packed learner
holds their networks as *tables*, one per network kind:

    Table.params[name]  [M, *shape]   row r = one lone module's parameter `name`

with M = K for the critic and its target (row k = seed k) and M = K·N_c for actors, where
an agent class c groups the agents whose actors have the same structure and shapes (row
k·N_c + j = seed k's j-th agent of the class). A forward pass over a set of rows runs every
Linear as one batched product (baddbmm) over the rows; Adam's moments are tables of the
same layout, stepped by torch's own functional Adam with the lone optimiser's flags, so
each row moves as its lone optimiser moves it. `sync` writes the tables back into the lone
modules and optimisers, `reload` reads them again (after a checkpoint is loaded).

Why batched products and not torch.func.vmap over stacked modules: on the CPU both are
matrix products of the same sizes (equal time at B = 1000, width 256); in the regime a GPU
is in — small work per kernel, cost per call — the twin critic's forward and backward over
10 seeds took 0.2 ms as batched products and 0.7 ms under vmap (B = 8, width 16, CPU, the
call overhead alone). vmap also cannot take each seed's own torch.Generator, and an HA
update needs to gather different agents of different seeds into one product (below).
The pure loss functions of the algorithms are reused under vmap (a handful of calls per
update), so the packed update computes what the lone update computes.

Randomness: each seed keeps its own numpy Generator (minibatch, agent order) and torch
Generator; every seed's noise is drawn from its own generator, in the order and shapes the
lone learner draws it, before the batched arithmetic uses it.

Sequential HA updates: at position m of an update seed k updates agent order_k[m]; the
seeds are grouped by the class of that agent and each group is one batched actor step (one
group per position when all agents are alike, as in simple_spread or HalfCheetah-2x3).

Shapes: K seeds, S rows of a gathered group, B batch, N agents, E env copies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.adam import adam as functional_adam
from torch.optim.optimizer import _get_scalar_dtype

from algos.common.distributions import gumbel_noise
from algos.common.off_policy import HaOffPolicy, critic_loss
from algos.common.replay import Batch
from envs.base import Step

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
        fused_or_capturable = bool(g["fused"] or g["capturable"])
        step_device = params[0].device if fused_or_capturable else "cpu"
        counts = [torch.tensor(float(steps), dtype=_get_scalar_dtype(is_fused=g["fused"]), device=step_device) for _ in params]
        beta1, beta2 = g["betas"]
        functional_adam([p.detach() for p in params], grads, m, v, [], counts, foreach=g["foreach"], capturable=g["capturable"],
                        fused=g["fused"], amsgrad=False, beta1=beta1, beta2=beta2, lr=g["lr"], weight_decay=g["weight_decay"],
                        eps=g["eps"], maximize=g["maximize"], decoupled_weight_decay=g["decoupled_weight_decay"])
        if rows is not None:
            for n, p, mn, vn in zip(self.names, params, m, v):
                self.params[n].index_copy_(0, rows, p.detach())
                self.exp_avg[n].index_copy_(0, rows, mn)
                self.exp_avg_sq[n].index_copy_(0, rows, vn)

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


# -- agents grouped by actor structure ---------------------------------------------------------
@dataclass
class AgentClass:
    """Agents whose actors have one structure: rows k·len(agents) + j of `table` are seed
    k's actor of agent agents[j]; `buffers` (e.g. action bounds) are stacked the same way."""

    agents: list[int]
    template: nn.Module
    table: Table
    buffers: Params

    def rows(self, pairs: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
        """Row indices of (seed, agent) pairs."""
        n = len(self.agents)
        return torch.tensor([k * n + self.agents.index(i) for k, i in pairs], device=device)


def agent_classes(actors: list[nn.ModuleList], optimizers: list[list[torch.optim.Optimizer]]) -> list[AgentClass]:
    """Group agents by actor structure (type, parameter and buffer shapes), in agent order."""
    def signature(module: nn.Module) -> tuple:
        return (type(module), tuple((n, tuple(p.shape)) for n, p in module.named_parameters()),
                tuple((n, tuple(b.shape)) for n, b in module.named_buffers()))

    groups: dict[tuple, list[int]] = {}
    for i, actor in enumerate(actors[0]):
        groups.setdefault(signature(actor), []).append(i)
    classes = []
    for agents in groups.values():
        modules = [seed_actors[i] for seed_actors in actors for i in agents]
        table = Table(modules, moments=True)
        table.load(modules, [opts[i] for opts in optimizers for i in agents])
        buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in modules]) for n, _ in modules[0].named_buffers()}
        classes.append(AgentClass(agents, actors[0][agents[0]], table, buffers))
    return classes


def stack_batches(batches: list[Batch]) -> Batch:
    """K minibatches as one: every tensor field gains a leading seed axis [K, ...]."""
    def stack(values: list) -> Any:
        if isinstance(values[0], list):
            return [stack([v[i] for v in values]) for i in range(len(values[0]))]
        return None if values[0] is None else torch.stack(values)

    return Batch(*(stack([b[f] for b in batches]) for f in range(len(Batch._fields))))


class PackedOffPolicy(ABC):
    """K lone off-policy HA learners (one per seed, same spec and config) trained as one
    batched computation. Acting, storing and updating go through here; evaluation,
    checkpoints and resumption go through `learners` (after `sync`)."""

    def __init__(self, learners: list[HaOffPolicy]):
        if len({type(l) for l in learners}) != 1 or len({repr(l.config) for l in learners}) != 1:
            raise ValueError("packed: every seed must run the same algorithm and config")
        self.learners = learners
        first = learners[0]
        self.spec, self.config, self.device, self.K = first.spec, first.config, first.device, len(learners)
        self.critic = Table([l.critic for l in learners], moments=True)
        self.critic_target = Table([l.critic_target for l in learners], moments=False)
        self.reload()

    def reload(self) -> None:
        """Read every table from the lone learners (after they were built or loaded)."""
        learners = self.learners
        self.critic.load([l.critic for l in learners], [l.critic_optimizer for l in learners])
        self.critic_target.load([l.critic_target for l in learners])
        self.classes = agent_classes([l.actors for l in learners], [l.actor_optimizers for l in learners])
        self.where = {i: (c, c.agents.index(i)) for c in self.classes for i in c.agents}

    def sync(self) -> list[HaOffPolicy]:
        """Write the tables into the lone learners (before evaluating or checkpointing them)."""
        learners = self.learners
        self.critic.store([l.critic for l in learners], [l.critic_optimizer for l in learners])
        self.critic_target.store([l.critic_target for l in learners])
        for c in self.classes:
            c.table.store([l.actors[i] for l in learners for i in c.agents], [l.actor_optimizers[i] for l in learners for i in c.agents])
        return learners

    # -- the loop's calls ------------------------------------------------------------------------
    def act(self, steps: list[Step]) -> list[list[np.ndarray]]:
        """Exploration actions of every seed (explore=True of each lone learner)."""
        first = self.learners[0]
        if first.env_steps < self.config.warmup_steps:
            return [l.act(s, explore=True) for l, s in zip(self.learners, steps)]
        with torch.no_grad():
            encoded = self.policy(steps)  # N × [K, E, A_i]
            columns = [a.argmax(dim=-1, keepdim=True).float() if b is None else a.float() for a, b in zip(encoded, first.bounds)]
            joint = torch.cat(columns, dim=-1).cpu().numpy()  # one device→host copy for every seed
        cuts = np.cumsum([c.shape[-1] for c in columns])[:-1]
        out = []
        for k in range(self.K):
            parts = np.split(joint[k], cuts, axis=-1)
            out.append([p[:, 0].astype(np.int64) if b is None else p.astype(np.float32) for p, b in zip(parts, first.bounds)])
        return out

    def observe(self, steps: list[Step], actions: list[list[np.ndarray]], nxts: list[Step]) -> None:
        for learner, step, action, nxt in zip(self.learners, steps, actions, nxts):
            learner.observe(step, action, nxt)

    def ready(self, total_env_steps: int) -> bool:
        return self.learners[0].ready(total_env_steps)

    @abstractmethod
    def policy(self, steps: list[Step]) -> list[torch.Tensor]:
        """N × [K, E, A_i] exploration actions in the critic encoding, each seed's noise from
        its own generator in the lone order."""

    @abstractmethod
    def update(self) -> list[dict[str, float]]:
        """One update of every seed; each seed's metrics as its lone update returns them."""

    # -- shared steps ------------------------------------------------------------------------
    def sample(self) -> Batch:
        """Each seed's minibatch from its own buffer with its own generator, stacked [K, ...]."""
        return stack_batches([l.buffer.sample(self.config.batch_size, l.rng) for l in self.learners])

    def step_obs(self, steps: list[Step], i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Agent i's (obs [K, E, O_i], avail [K, E, n_i] or None) from every seed's Step."""
        obs = torch.as_tensor(np.stack([s.obs[i] for s in steps]), dtype=torch.float32, device=self.device)
        avail = None
        if self.learners[0].bounds[i] is None and steps[0].avail_actions is not None:
            avail = torch.as_tensor(np.stack([s.avail_actions[i] for s in steps]), device=self.device)
        return obs, avail

    def by_class(self, per_agent: list[torch.Tensor | None], c: AgentClass) -> torch.Tensor | None:
        """Per-agent [K, ...] tensors of the class's agents as its rows [K·N_c, ...]."""
        if per_agent[c.agents[0]] is None:
            return None
        return torch.stack([per_agent[i] for i in c.agents], dim=1).flatten(0, 1)

    def per_agent(self, by_class: dict[int, torch.Tensor]) -> list[torch.Tensor]:
        """Class row tensors [K·N_c, ...] (keyed by class index) back to per-agent [K, ...]."""
        out: list[torch.Tensor] = [None] * self.spec.n_agents  # type: ignore[list-item]
        for ci, c in enumerate(self.classes):
            rows = by_class[ci].view(self.K, len(c.agents), *by_class[ci].shape[1:])
            for j, i in enumerate(c.agents):
                out[i] = rows[:, j]
        return out

    def critic_step(self, batch: Batch, next_value: torch.Tensor, metrics: "SeedMetrics") -> None:
        """HaOffPolicy.critic_step of every seed: one Adam step of both Q-nets towards
        y = R⁽ⁿ⁾ + γᵏ(1 − term)·next_value; next_value [K, B, 1]."""
        target = batch.reward + batch.discount * (1.0 - batch.terminated) * next_value.float()
        p = self.critic.leaves(None)
        q1, q2 = twin_q(p, torch.cat([batch.state, *batch.actions], dim=-1))
        c = self.config
        loss, values = torch.vmap(partial(critic_loss, huber_delta=c.huber_delta if c.use_huber else None))(q1.float(), q2.float(), target)
        self.critic.step_rows(None, p, loss.sum())
        metrics.add_all(values)

    def soft_update(self, pairs: list[tuple[Table, Table]]) -> None:
        """Polyak θ' ← (1 − τ)θ' + τθ of every row (HaOffPolicy.soft_update)."""
        with torch.no_grad():
            for target, source in pairs:
                names = target.names
                torch._foreach_lerp_([target.params[n] for n in names], [source.params[n].detach() for n in names], self.config.tau)

    def seed_groups(self, agent_of_seed: list[int]) -> list[tuple[AgentClass, list[int], torch.Tensor]]:
        """Seeds grouped by the class of the agent each updates now: (class, seeds, rows)."""
        groups = []
        for c in self.classes:
            seeds = [k for k, i in enumerate(agent_of_seed) if i in c.agents]
            if seeds:
                groups.append((c, seeds, c.rows([(k, agent_of_seed[k]) for k in seeds], self.device)))
        return groups

    def seed_index(self, seeds: list[int]) -> torch.Tensor | None:
        """Index tensor of `seeds`, None when they are all K in order (no gather needed)."""
        return None if seeds == list(range(self.K)) else torch.tensor(seeds, device=self.device)

    def replace_columns(self, x: torch.Tensor, seeds: list[int], agents: list[int], action: torch.Tensor) -> torch.Tensor:
        """Critic inputs x [K, B, D] = [state, joint action] of `seeds`, with seed s's agent
        agents[s] replaced by action[s] ([S, B, A], differentiable): [S, B, D]."""
        index = self.seed_index(seeds)
        rows = x if index is None else x.index_select(0, index)
        starts = torch.tensor([self.column_start[i] for i in agents], device=self.device)
        cols = (starts.view(-1, 1, 1) + torch.arange(action.shape[-1], device=self.device)).expand(-1, x.shape[1], -1)
        return rows.scatter(2, cols, action.to(rows.dtype))

    @property
    def column_start(self) -> list[int]:
        """First column of each agent's action in the critic input [state, a¹, …, aᴺ]."""
        if not hasattr(self, "_column_start"):
            widths = [self.learners[0].spec.state_space.shape[0]]
            widths += [b[0].numel() if b is not None else int(s.n) for b, s in zip(self.learners[0].bounds, self.spec.action_spaces)]
            self._column_start = [int(v) for v in np.cumsum(widths)[:-1]]
        return self._column_start


class SeedMetrics:
    """Each seed's metrics dict, built in the lone update's key order, read from the
    device in one transfer (`read`)."""

    def __init__(self, K: int):
        self.K = K
        self.entries: list[tuple[list[int], list[str], torch.Tensor]] = []

    def add(self, seeds: list[int], keys: list[str], values: torch.Tensor) -> None:
        """values [S]: seed seeds[s] gets keys[s] = values[s]."""
        self.entries.append((seeds, keys, values.detach().float().reshape(-1)))

    def add_all(self, values: dict[str, torch.Tensor], suffix: Callable[[int], str] | None = None) -> None:
        """A vmapped loss's metrics dict (each [K]) for every seed."""
        for key, value in values.items():
            self.add(list(range(self.K)), [key + (suffix(k) if suffix else "") for k in range(self.K)], value)

    def read(self) -> list[dict[str, float]]:
        out: list[dict[str, float]] = [{} for _ in range(self.K)]
        if not self.entries:
            return out
        flat = torch.cat([v for _, _, v in self.entries]).tolist()
        at = 0
        for seeds, keys, values in self.entries:
            for s, (k, key) in enumerate(zip(seeds, keys)):
                out[k][key] = flat[at + s]
            at += values.numel()
        return out


def draw(generator: torch.Generator, shape: tuple[int, ...], device: torch.device, gumbel: bool) -> torch.Tensor:
    """One noise draw as the lone actors make it: N(0, 1) (Box) or Gumbel(0, 1) via
    gumbel_noise (Discrete), float32."""
    if gumbel:
        return gumbel_noise(torch.Size(shape), generator, device, torch.float32)
    return torch.randn(shape, generator=generator, device=device)


class Scalar(nn.Module):
    """One lone 0-d parameter (a temperature log α) as a module, so that a Table can stack it."""

    def __init__(self, value: nn.Parameter):
        super().__init__()
        self.value = value
