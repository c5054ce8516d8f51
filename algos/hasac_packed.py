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

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from algos.common.distributions import masked_logits, scale_action, tanh_log_det
from algos.common.packed import AgentClass, BatchedPack, SeedMetrics, draw
from algos.common.tables import Params, Scalar, Table, linear, sequential, twin_q
from algos.common.replay import Batch
from algos.hasac import CategoricalActor, Hasac, SquashedGaussianActor, actor_loss, temperature_loss
from envs.base import Step
from envs.errors import ConfigError


class UpdateNoise(NamedTuple):
    """One update's noise of every seed, in the lone order: [k][i] by agent id for the
    next-step and pre-update samples, [k][m] by position for the actor steps and resamples."""

    next: list[list[torch.Tensor]]
    pre: list[list[torch.Tensor]]
    actor: list[list[torch.Tensor]]
    post: list[list[torch.Tensor]]


class PackedHasac(BatchedPack):
    """K seeds of Hasac trained as one batched computation."""

    learners: list[Hasac]
    learner_class = Hasac

    def __init__(self, learners: list[Hasac]):
        if learners[0].spec.discrete:
            self.check(learners[0].config)
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
            actions[ci], log_probs[ci] = sample(c, c.table.view(None), c.buffers, self.by_class(obs, c),
                                                self.by_class(avail, c), rows_noise)
        return self.per_agent(actions), self.per_agent(log_probs)

    # -- the update --------------------------------------------------------------------------
    def update(self) -> list[dict[str, float]]:
        N = self.spec.n_agents
        batch = self.sample()
        orders = [l.rng.permutation(N) for l in self.learners]  # the lone update draws it after sampling too
        noise = self.update_noise(orders)
        metrics = SeedMetrics(self.K)
        with self.learners[0].autocast():
            self.critic_step(batch, self.soft_next_value(batch, noise.next), metrics)
            with torch.no_grad():
                actions, log_probs = self.sample_all(batch.obs, batch.avail, noise.pre)
            x = torch.cat([batch.state, *actions], dim=-1)  # critic inputs [K, B, D], updated in place
            log_probs = torch.stack(log_probs, dim=1)  # [K, N, B, 1]
            class_obs = {id(c): (self.by_class(batch.obs, c), self.by_class(batch.avail, c)) for c in self.classes}
            for m in range(N):
                agents = [int(o[m]) for o in orders]
                for c, seeds, rows in self.seed_groups(agents):
                    self.actor_group(batch, class_obs[id(c)], c, seeds, rows, agents, m, noise, x, log_probs, metrics)
            every_row = torch.ones_like(batch.reward.squeeze(-1))
            critic_log_prob = sum(log_probs[:, i] for i in range(N))
            self.temperature_step(list(range(self.K)), [N] * self.K, critic_log_prob, every_row, metrics)
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
        q1, q2 = twin_q(self.critic_target.view(None), torch.cat([batch.next_state, *actions], dim=-1))
        alpha_c = self.log_alpha.params["value"].detach().view(self.K, -1)[:, -1].exp().view(-1, 1, 1)
        return torch.min(q1, q2).float() - alpha_c * sum(log_probs)

    def actor_group(self, batch: Batch, class_obs: tuple, c: AgentClass, seeds: list[int], rows: torch.Tensor,
                    agents: list[int], m: int, noise: UpdateNoise, x: torch.Tensor, log_probs: torch.Tensor,
                    metrics: SeedMetrics) -> None:
        """Hasac.actor_step, temperature_step and the post-step resample of position m for the
        seeds whose agent there is of class c (seed k updates agent agents[k])."""
        own = [agents[k] for k in seeds]
        obs, avail = class_obs[0].index_select(0, rows), None if class_obs[1] is None else class_obs[1].index_select(0, rows)
        buffers = {n: b.index_select(0, rows) for n, b in c.buffers.items()}
        index = torch.tensor(seeds, device=self.device)
        p = c.table.leaves(rows)
        action, log_prob = sample(c, p, buffers, obs, avail, torch.stack([noise.actor[k][m] for k in seeds]))
        q1, q2 = twin_q(self.critic.view(self.seed_index(seeds)), self.replace_columns(x, seeds, own, action))
        alpha_rows = index * (self.spec.n_agents + 1) + torch.tensor(own, device=self.device)
        alpha = self.log_alpha.params["value"].detach().index_select(0, alpha_rows).exp()
        valid = batch.valid[index, :, torch.tensor(own, device=self.device)]  # [S, B]
        loss, values = torch.vmap(actor_loss)(torch.min(q1, q2).float(), log_prob, alpha, valid)
        c.table.step_rows(rows, p, loss.sum(), steps=c.table.steps)
        for key, value in values.items():
            metrics.add(seeds, [f"{key}/agent_{i}" for i in own], value)
        self.temperature_step(seeds, own, log_prob.detach(), valid, metrics)
        if m + 1 < self.spec.n_agents or self.config.auto_alpha:  # agents after i see agent i's new policy
            with torch.no_grad():
                new, new_log_prob = sample(c, c.table.view(rows), buffers, obs, avail, torch.stack([noise.post[k][m] for k in seeds]))
                x.index_copy_(0, index, self.replace_columns(x, seeds, own, new))
                flat = log_probs.view(-1, *log_probs.shape[2:])
                flat.index_copy_(0, index * self.spec.n_agents + torch.tensor(own, device=self.device), new_log_prob.to(flat.dtype))

    def temperature_step(self, seeds: list[int], agents: list[int], log_prob: torch.Tensor, valid: torch.Tensor,
                         metrics: SeedMetrics) -> None:
        """Hasac.temperature_step for (seed, agent) pairs; agent N is the critic's α_c.
        log_prob [S, B, 1], valid [S, B]."""
        N = self.spec.n_agents
        rows = torch.tensor([k * (N + 1) + i for k, i in zip(seeds, agents)], device=self.device)
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
        return squashed_gaussian(linear(p, "mu", h).float(), log_std, buffers["low"].unsqueeze(1), buffers["high"].unsqueeze(1), noise)
    assert isinstance(c.template, CategoricalActor)
    return gumbel_softmax_hard(sequential(c.template.body, p, "body", obs).float(), avail, noise)


def squashed_gaussian(mu: torch.Tensor, log_std: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
                      eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """distributions.squashed_gaussian_sample with the standard normal draw `eps` given."""
    u = mu + log_std.exp() * eps
    log_normal = -0.5 * eps.pow(2) - log_std - 0.5 * math.log(2.0 * math.pi)
    log_prob = (log_normal - tanh_log_det(u) - torch.log((high - low) / 2.0)).sum(dim=-1, keepdim=True)
    return scale_action(torch.tanh(u), low, high), log_prob


def gumbel_softmax_hard(logits: torch.Tensor, avail: torch.Tensor | None, gumbel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """distributions.gumbel_softmax_hard (temperature 1) with the Gumbel draw given."""
    log_pi = F.log_softmax(masked_logits(logits, avail), dim=-1)
    perturbed = log_pi + gumbel
    soft = F.softmax(perturbed, dim=-1)
    choice = perturbed if avail is None else perturbed.masked_fill(~avail, -math.inf)
    onehot = F.one_hot(choice.argmax(dim=-1), log_pi.shape[-1]).to(soft.dtype) - soft.detach() + soft
    return onehot, (onehot * log_pi).sum(dim=-1, keepdim=True)
