"""Packed seeds: the K seeds of one (task, algorithm) trained in one process (run key
`pack=K`; docs/speed.md, "Packed seeds").

The K lone learners are built exactly as K lone runs build them (initial weights,
generators, replay buffers, counters) and stay the state at rest: evaluation, `state_dict`
and `load_state_dict` go through them. A `Pack` acts, stores and updates for all of them:

- `BatchedPack` (the default on a GPU) trains them as one batched computation. It holds
  their networks as tables (algos/common/tables.py): `params[name]` [M, *shape], row r one
  lone module's parameter, with M = K for the critic and its target (row k = seed k) and
  M = K·N_c for actors, where an agent class c groups the agents whose actors have the same
  structure and shapes (row k·N_c + j = seed k's j-th agent of the class). Every Linear of
  a pass over a set of rows is one batched product (baddbmm); Adam's moments are tables of
  the same layout stepped by torch's own functional Adam with the lone optimiser's flags.
  `sync` writes the tables into the lone modules and optimisers, `reload` reads them back.
- `InTurn` (the default on a CPU) steps the lone learners one after another: on a CPU the
  batched products gain nothing (the cost is the arithmetic, not the calls), and the wider
  activations [K·B, 256] fall out of the cache. In micro-benchmarks on a loaded 2-core
  machine (indicative only) ReLU on a 2 MB tensor took 2.5-3.4 × the time of a 1 MB one, and
  a batched HASAC update of 1-4 seeds cost 1.15-1.3 × the lone updates it replaced.

Why batched products and not torch.func.vmap over stacked modules: vmap cannot draw from
each seed's own torch.Generator (the lone noise streams), an HA update has to gather
different agents of different seeds into one product (below), and vmap adds a dispatch
layer to every operation — the cost that decides on a GPU, where the work per kernel is
small: the twin critic's forward and backward over 10 seeds took 0.2 ms as batched products
and 0.7 ms under vmap with tiny layers (B = 8, width 16: the call overhead alone; the same
loaded machine, interleaved). At B = 1000, width 256 on the CPU both run the same products.
The algorithms' pure loss functions run under vmap (a few calls per update), so the packed
update computes what the lone update computes.

Randomness: each seed keeps its own numpy Generator (minibatch, agent order) and torch
Generator; every seed's noise is drawn from its own generator, in the order and shapes the
lone learner draws it, before the batched arithmetic uses it.

Sequential HA updates: at position m of an update seed k updates agent order_k[m]; the
seeds are grouped by the class of that agent and each group is one batched actor step (one
group per position when all agents are alike, as in simple_spread or HalfCheetah-2x3).

Shapes: K seeds, S rows of a gathered group, B batch, N agents, E env copies.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from algos.base import Algorithm
from algos.common.distributions import gumbel_noise
from algos.common.off_policy import HaOffPolicy, critic_loss, normalised_target
from algos.common.replay import Batch
from algos.common.tables import Params, Table, twin_q
from envs.base import Step


class Pack(ABC):
    """K lone learners of one algorithm and config (one per seed) trained in one process:
    what the training loop drives in place of one learner, with lists over the seeds."""

    learners: list[Algorithm]

    @abstractmethod
    def act(self, steps: list[Step]) -> list[list[np.ndarray]]:
        """Each seed's exploration actions (Algorithm.act with explore=True)."""

    def observe(self, steps: list[Step], actions: list[list[np.ndarray]], nxts: list[Step]) -> None:
        for learner, step, action, nxt in zip(self.learners, steps, actions, nxts):
            learner.observe(step, action, nxt)

    def ready(self, total_env_steps: int) -> bool:
        """Whether an update is owed; the seeds move in lock-step, so alike for all."""
        return self.learners[0].ready(total_env_steps)

    @abstractmethod
    def update(self) -> list[dict[str, float]]:
        """One update of every seed; each seed's metrics as its lone update returns them."""

    def sync(self) -> list[Algorithm]:
        """The lone learners, up to date (before evaluating or checkpointing them)."""
        return self.learners

    def reload(self) -> None:
        """Take up the lone learners' state again (after load_state_dict)."""


class InTurn(Pack):
    """The lone learners stepped one after another: the lone arithmetic exactly."""

    def __init__(self, learners: list[Algorithm]):
        self.learners = learners

    def act(self, steps: list[Step]) -> list[list[np.ndarray]]:
        return [learner.act(step, explore=True) for learner, step in zip(self.learners, steps)]

    def update(self) -> list[dict[str, float]]:
        return [learner.update() for learner in self.learners]


def packed_class(config: Any) -> type[BatchedPack]:
    """The batched form named by the config's ClassVar `packed` ("module:Class")."""
    if type(config).packed is None:
        raise ValueError(f"{type(config).__name__} has no packed form")
    module, name = type(config).packed.split(":")
    return getattr(importlib.import_module(module), name)


def make_pack(learners: list[Algorithm], batched: bool | None = None) -> Pack:
    """The pack of `learners` (built by their algorithm, one per seed): its batched form
    (config ClassVar `packed`) when `batched` — by default on a GPU — else InTurn. A pack of
    one seed, or of an algorithm without a batched form, is always InTurn."""
    config = learners[0].config
    if batched is None:
        batched = learners[0].device.type == "cuda"
    batched = batched and len(learners) > 1 and type(config).packed is not None
    return packed_class(config)(learners) if batched else InTurn(learners)


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
        return index([k * n + self.agents.index(i) for k, i in pairs], device)


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


class BatchedPack(Pack):
    """K lone off-policy HA learners (one per seed, same spec and config) trained as one
    batched computation; algorithms subclass it with their policy and update."""

    @classmethod
    def check(cls, config: Any) -> None:
        """Raise ConfigError for a config the batched form cannot train (checked for every
        pack > 1, on any device, before a sweep starts); default: none."""

    learner_class: type[HaOffPolicy]
    """The algorithm this form packs (exactly: a subclass may change the update)."""

    def __init__(self, learners: list[HaOffPolicy]):
        if {type(l) for l in learners} != {self.learner_class} or len({repr(l.config) for l in learners}) != 1:
            raise ValueError(f"packed: every seed must run {self.learner_class.__name__} with one config")
        self.learners = learners
        first = learners[0]
        self.spec, self.config, self.device, self.K = first.spec, first.config, first.device, len(learners)
        self.twin_q = twin_q  # the batched passes (and the subclass's self.actor); `compile` may replace them
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
        self.begin()
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

    def compile(self, mode: str) -> None:
        """Run the batched network passes (twin critic, actors) under torch.compile(mode=mode),
        e.g. "reduce-overhead" for CUDA graphs; measured by the bench (`--pack-compile`)."""
        self.twin_q = torch.compile(twin_q, mode=mode, dynamic=False)
        self.actor = torch.compile(self.actor, mode=mode, dynamic=False)
        self.compiled = True

    def begin(self) -> None:
        """Mark a new update or act for CUDA graphs (torch.compile's reduce-overhead mode), so
        outputs kept from the previous one are not mistaken for live ones."""
        if getattr(self, "compiled", False):
            torch.compiler.cudagraph_mark_step_begin()

    @abstractmethod
    def policy(self, steps: list[Step]) -> list[torch.Tensor]:
        """N × [K, E, A_i] exploration actions in the critic encoding, each seed's noise from
        its own generator in the lone order."""

    # -- shared steps ------------------------------------------------------------------------
    def sample(self) -> Batch:
        """Each seed's minibatch from its own buffer with its own generator, stacked [K, ...];
        the indices of all seeds go to the device in one copy (from pinned memory on a GPU, so
        without waiting for the work queued before it)."""
        flat = torch.from_numpy(np.stack([l.buffer.draw(self.config.batch_size, l.rng) for l in self.learners]))
        if self.device.type == "cuda":
            flat = flat.pin_memory()
        flat = flat.to(self.device, non_blocking=True)
        return stack_batches([l.buffer.batch_at(flat[k]) for k, l in enumerate(self.learners)])

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

    def critic_step(self, batch: Batch, next_value: torch.Tensor, metrics: "SeedMetrics",
                    value_norms: list | None = None) -> None:
        """HaOffPolicy.critic_step of every seed: one Adam step of both Q-nets towards
        y = R⁽ⁿ⁾ + γᵏ(1 − term)·next_value, normalised by seed k's ValueNorm where
        `value_norms` are given; next_value [K, B, 1]."""
        target = batch.reward + batch.discount * (1.0 - batch.terminated) * next_value.float()
        if value_norms is not None:
            target = torch.stack([normalised_target(y, norm) for y, norm in zip(target, value_norms)])
        p = self.critic.leaves(None)
        q1, q2 = self.twin_q(p, torch.cat([batch.state, *batch.actions], dim=-1))
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
        return None if seeds == list(range(self.K)) else index(seeds, self.device)

    def replace_columns(self, x: torch.Tensor, seeds: list[int], agents: list[int], action: torch.Tensor) -> torch.Tensor:
        """Critic inputs x [K, B, D] = [state, joint action] of `seeds`, with seed s's agent
        agents[s] replaced by action[s] ([S, B, A], differentiable): [S, B, D]."""
        which = self.seed_index(seeds)
        rows = x if which is None else x.index_select(0, which)
        starts = index([self.column_start[i] for i in agents], self.device)
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


def index(values: list[int], device: torch.device) -> torch.Tensor:
    """An index tensor on `device`; on a GPU copied from pinned memory without blocking (a
    copy from ordinary host memory would wait for all the work queued before it)."""
    host = torch.tensor(values, dtype=torch.long)
    return host.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else host


def draw(generator: torch.Generator, shape: tuple[int, ...], device: torch.device, gumbel: bool) -> torch.Tensor:
    """One noise draw as the lone actors make it: N(0, 1) (Box) or Gumbel(0, 1) via
    gumbel_noise (Discrete), float32."""
    if gumbel:
        return gumbel_noise(torch.Size(shape), generator, device, torch.float32)
    return torch.randn(shape, generator=generator, device=device)
