"""HASAC with packed seeds: `Hasac.update` of K seeds as one batched computation
(algos/common/packed.py explains the tables, the noise and the grouping of agents).

The update is Hasac.update step for step — the same minibatch and agent order per seed
(each seed's numpy generator), the same noise (each seed's torch generator, drawn in the
lone order: next-step samples, pre-update samples, then per position the actor step's
sample and the post-step resample), the same losses (the module-level loss functions of
algos/hasac.py under vmap) and the same Adam steps. Only the arithmetic is batched, so
values agree with the lone update to float rounding (tests/test_packed.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from algos.common.distributions import box_action, box_log_det, gumbel_softmax_given, squashed_gaussian
from algos.common.packed import AgentClass, BatchedPack, SeedMetrics, draw, index
from algos.common.ppo import ValueNorm
from algos.common.replay import Batch
from algos.common.tables import Params, Scalar, Table, linear, sequential, twin_q
from algos.hasac import CategoricalActor, Hasac, SquashedGaussianActor, actor_loss, denormalised, temperature_loss
from envs.base import Step
from envs.errors import ConfigError


class UpdateNoise(NamedTuple):
    """One update's noise of every seed, in the lone order: [k][i] by agent id for the
    next-step and pre-update samples, [k][m] by position for the actor steps and resamples."""

    next: list[list[torch.Tensor]]
    pre: list[list[torch.Tensor]]
    actor: list[list[torch.Tensor]]
    post: list[list[torch.Tensor]]


@dataclass
class UpdateState:
    """What one packed update carries from step to step: the stacked minibatch, each class's
    observations and masks as rows, the noise, the critic inputs x [K, B, D] = [state, joint
    action] (agents' columns replaced as they are updated), and the log π tables [K, N, B, 1]
    of the samples in the actor losses and of the post-step resamples."""

    batch: Batch
    class_obs: dict[int, tuple[torch.Tensor, torch.Tensor | None]]
    noise: UpdateNoise
    x: torch.Tensor
    in_loss: torch.Tensor
    resampled: torch.Tensor
    metrics: SeedMetrics


class PackedHasac(BatchedPack):
    """K seeds of Hasac trained as one batched computation."""

    learners: list[Hasac]
    learner_class = Hasac

    def __init__(self, learners: list[Hasac]):
        if learners[0].spec.agent_states:
            raise ConfigError("pack>1 trains HASAC on one state per env copy only; use pack=1 with per-agent (FP) states")
        if learners[0].spec.discrete:
            self.check(learners[0].config)
        self.actor = sample  # the actors' batched pass; `compile` may replace it
        super().__init__(learners)

    @classmethod
    def check(cls, config) -> None:
        if config.discrete_actor_loss != "gumbel":
            raise ConfigError("pack>1 trains HASAC with discrete_actor_loss=gumbel only; use pack=1 for the expected loss")

    def alpha_modules(self) -> tuple[list[Scalar], list[torch.optim.Optimizer]]:
        """log α of (seed k, agent i) at row k·(N + 1) + i; i = N is the critic's α_c."""
        n = self.spec.n_agents + 1
        modules = [Scalar(l.log_alpha[i]) for l in self.learners for i in range(n)]
        return modules, [l.alpha_optimizers[i] for l in self.learners for i in range(n)]

    def reload(self) -> None:
        super().reload()
        modules, optimizers = self.alpha_modules()
        self.log_alpha = Table(modules, moments=True)
        self.log_alpha.load(modules, optimizers)
        entropies = [[*l.target_entropy, sum(l.target_entropy)] for l in self.learners]
        self.target_entropy = torch.tensor(entropies, dtype=torch.float32, device=self.device).flatten()

    def sync(self) -> list[Hasac]:
        learners = super().sync()
        self.log_alpha.store(*self.alpha_modules())
        return learners

    # -- acting ------------------------------------------------------------------------------
    def policy(self, steps: list[Step]) -> list[torch.Tensor]:
        E = steps[0].n_envs
        noise = [[self.noise(l.generator, i, E) for i in range(self.spec.n_agents)] for l in self.learners]
        inputs = [self.step_obs(steps, i) for i in range(self.spec.n_agents)]
        return self.sample_all([o for o, _ in inputs], [a for _, a in inputs], noise)[0]

    def noise(self, generator: torch.Generator, i: int, rows: int) -> torch.Tensor:
        """Agent i's noise for `rows` samples, drawn as its lone actor draws it."""
        bounds = self.learners[0].bounds[i]
        width = int(self.spec.action_spaces[i].n) if bounds is None else bounds[0].numel()
        return draw(generator, (rows, width), self.device, gumbel=bounds is None)

    def sample_all(self, obs: list[torch.Tensor], avail: list[torch.Tensor | None],
                   noise: list[list[torch.Tensor]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """aⁱ ~ πⁱ(·|oⁱ) of every seed and agent, one batched pass per class: obs N × [K, R, O_i],
        noise [k][i] -> (N × [K, R, A_i] actions, N × [K, R, 1] log π)."""
        actions, log_probs = {}, {}
        for ci, c in enumerate(self.classes):
            rows_noise = torch.stack([noise[k][i] for k in range(self.K) for i in c.agents])
            actions[ci], log_probs[ci] = self.actor(c, c.table.view(None), c.buffers, self.by_class(obs, c),
                                                self.by_class(avail, c), rows_noise)
        return self.per_agent(actions), self.per_agent(log_probs)

    # -- the update --------------------------------------------------------------------------
    def update(self) -> list[dict[str, float]]:
        N = self.spec.n_agents
        self.begin()
        batch = self.sample()
        orders = [l.rng.permutation(N) for l in self.learners]  # the lone update draws it after sampling too
        noise = self.update_noise(orders)
        metrics = SeedMetrics(self.K)
        with self.learners[0].autocast():
            self.critic_step(batch, self.soft_next_value(batch, noise.next), metrics, self.value_norms())
            with torch.no_grad():
                actions, log_probs = self.sample_all(batch.obs, batch.avail, noise.pre)
            resampled = torch.stack(log_probs, dim=1)  # [K, N, B, 1]
            u = UpdateState(batch, {id(c): (self.by_class(batch.obs, c), self.by_class(batch.avail, c)) for c in self.classes},
                            noise, torch.cat([batch.state, *actions], dim=-1), resampled.clone(), resampled, metrics)
            for m in range(N):
                agents = [int(o[m]) for o in orders]
                for c, seeds, rows in self.seed_groups(agents):
                    self.actor_group(u, c, seeds, rows, agents, m)
            critic_log_probs = u.in_loss if self.config.critic_alpha_logp == "official" else u.resampled
            every_row = torch.ones_like(batch.reward.squeeze(-1))
            self.temperature_step(list(range(self.K)), [N] * self.K, sum(critic_log_probs[:, i] for i in range(N)), every_row, metrics)
        self.soft_update([(self.critic_target, self.critic)])
        for table in [c.table for c in self.classes] + ([self.log_alpha] if self.config.auto_alpha else []):
            table.steps += 1
        for learner in self.learners:
            learner.updates += 1
        return metrics.read()

    def update_noise(self, orders: list) -> UpdateNoise:
        B, N = self.config.batch_size, self.spec.n_agents
        draws = UpdateNoise([], [], [], [])
        for learner, order in zip(self.learners, orders):
            g = learner.generator
            draws.next.append([self.noise(g, i, B) for i in range(N)])
            draws.pre.append([self.noise(g, i, B) for i in range(N)])
            draws.actor.append([])
            draws.post.append([])
            for i in order:
                draws.actor[-1].append(self.noise(g, int(i), B))
                draws.post[-1].append(self.noise(g, int(i), B))
        return draws

    @torch.no_grad()
    def soft_next_value(self, batch: Batch, noise: list[list[torch.Tensor]]) -> torch.Tensor:
        """Hasac.soft_next_value of every seed: [K, B, 1]."""
        actions, log_probs = self.sample_all(batch.next_obs, batch.next_avail, noise)
        q1, q2 = self.twin_q(self.critic_target.view(None), torch.cat([batch.next_state, *actions], dim=-1))
        alpha_c = self.log_alpha.params["value"].detach().view(self.K, -1)[:, -1].exp().view(-1, 1, 1)
        q = torch.min(q1, q2).float()
        if self.config.use_valuenorm:
            q = torch.stack([denormalised(q_k, norm) for q_k, norm in zip(q, self.value_norms())])
        return q - alpha_c * sum(log_probs)

    def value_norms(self) -> list[ValueNorm] | None:
        """Each seed's ValueNorm (HASAC use_valuenorm; it lives in the lone learner), or None."""
        return [learner.value_norm for learner in self.learners] if self.config.use_valuenorm else None

    def actor_group(self, u: UpdateState, c: AgentClass, seeds: list[int], rows: torch.Tensor, agents: list[int], m: int) -> None:
        """Hasac.actor_step, temperature_step and the post-step resample of position m for the
        seeds whose agent there is of class c (seed k updates agent agents[k])."""
        N, own = self.spec.n_agents, [agents[k] for k in seeds]
        obs, avail = (None if t is None else t.index_select(0, rows) for t in u.class_obs[id(c)])
        buffers = {n: b.index_select(0, rows) for n, b in c.buffers.items()}
        seed_index, own_index = index(seeds, self.device), index(own, self.device)
        p = c.table.leaves(rows)
        action, log_prob = self.actor(c, p, buffers, obs, avail, torch.stack([u.noise.actor[k][m] for k in seeds]))
        q1, q2 = self.twin_q(self.critic.view(self.seed_index(seeds)), self.replace_columns(u.x, seeds, own, action))
        alpha = self.log_alpha.params["value"].detach().index_select(0, seed_index * (N + 1) + own_index).exp()
        loss, values = torch.vmap(actor_loss)(torch.min(q1, q2).float(), log_prob, alpha, u.batch.valid[seed_index, :, own_index])
        c.table.step_rows(rows, p, loss.sum(), steps=c.table.steps)
        for key, value in values.items():
            u.metrics.add(seeds, [f"{key}/agent_{i}" for i in own], value)
        pairs = seed_index * N + own_index  # rows of [K·N, B, 1] views of the log π tables
        u.in_loss.view(-1, *u.in_loss.shape[2:]).index_copy_(0, pairs, log_prob.detach().to(u.in_loss.dtype))
        # HARL's per-agent α loss averages over every row (off_policy_ha_runner.py l.121-122)
        self.temperature_step(seeds, own, log_prob.detach(), torch.ones_like(log_prob.squeeze(-1)), u.metrics)
        if m + 1 < N or self.learners[0].resample_last():  # agents after i see agent i's new policy
            with torch.no_grad():
                new, new_log_prob = self.actor(c, c.table.view(rows), buffers, obs, avail, torch.stack([u.noise.post[k][m] for k in seeds]))
                u.x.index_copy_(0, seed_index, self.replace_columns(u.x, seeds, own, new))
                u.resampled.view(-1, *u.resampled.shape[2:]).index_copy_(0, pairs, new_log_prob.to(u.resampled.dtype))

    def temperature_step(self, seeds: list[int], agents: list[int], log_prob: torch.Tensor, valid: torch.Tensor,
                         metrics: SeedMetrics) -> None:
        """Hasac.temperature_step for (seed, agent) pairs; agent N is the critic's α_c.
        log_prob [S, B, 1], valid [S, B]."""
        N = self.spec.n_agents
        rows = index([k * (N + 1) + i for k, i in zip(seeds, agents)], self.device)
        names = ["critic" if i == N else f"agent_{i}" for i in agents]
        if self.config.auto_alpha:
            p = self.log_alpha.leaves(rows)
            loss, values = torch.vmap(temperature_loss)(p["value"], log_prob, self.target_entropy.index_select(0, rows), valid)
            self.log_alpha.step_rows(rows, p, loss.sum(), steps=self.log_alpha.steps)
            for key, value in values.items():
                metrics.add(seeds, [f"{key}/{name}" for name in names], value)
        metrics.add(seeds, [f"alpha/{name}" for name in names], self.log_alpha.params["value"].detach().index_select(0, rows).exp())


# -- HASAC's actors with each row's parameters ---------------------------------------------------
def sample(c: AgentClass, p: Params, buffers: Params, obs: torch.Tensor, avail: torch.Tensor | None,
           noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward() of HASAC actor class c (SquashedGaussianActor or CategoricalActor) for
    every row, with the given noise: (action [S, R, A], log_prob [S, R, 1])."""
    if isinstance(c.template, SquashedGaussianActor):
        h = sequential(c.template.trunk, p, "trunk", obs)
        log_std = linear(p, "log_std", h).float().clamp(-20.0, 2.0)
        x, log_prob = squashed_gaussian(linear(p, "mu", h).float(), log_std, noise)
        low, high, mode = buffers["low"].unsqueeze(1), buffers["high"].unsqueeze(1), c.template.mode
        return box_action(x, low, high, mode), log_prob - box_log_det(low, high, mode)
    assert isinstance(c.template, CategoricalActor)
    return gumbel_softmax_given(sequential(c.template.body, p, "body", obs).float(), avail, noise)
