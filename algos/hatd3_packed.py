"""HATD3 with packed seeds: `Hatd3.update` of K seeds as one batched computation
(algos/common/packed.py explains the tables, the noise and the grouping of agents).

Step for step Hatd3.update: each seed's minibatch and, on actor rounds, agent order from its
numpy generator; its target-smoothing and exploration noise from its torch generator in the
lone order (by agent id); the critic loss and algos/hatd3.py's actor_loss under vmap; the
same Adam steps, delayed actor rounds and Polyak targets (tests/test_packed.py).
"""

from __future__ import annotations

import torch

from algos.common.distributions import scale_action
from algos.common.packed import AgentClass, BatchedPack, SeedMetrics, draw, index
from algos.common.tables import Params, Table, sequential, twin_q
from algos.common.replay import Batch
from algos.hatd3 import Hatd3, actor_loss
from envs.base import Step


class PackedHatd3(BatchedPack):
    """K seeds of Hatd3 trained as one batched computation."""

    learners: list[Hatd3]
    learner_class = Hatd3

    def __init__(self, learners: list[Hatd3]):
        self.actor = deterministic  # the actors' batched pass; `compile` may replace it
        super().__init__(learners)

    def reload(self) -> None:
        super().reload()
        self.actors_target = [Table([l.actors_target[i] for l in self.learners for i in c.agents], moments=False)
                              for c in self.classes]

    def sync(self) -> list[Hatd3]:
        learners = super().sync()
        for c, table in zip(self.classes, self.actors_target):
            table.store([l.actors_target[i] for l in learners for i in c.agents])
        return learners

    def policy(self, steps: list[Step]) -> list[torch.Tensor]:
        """Hatd3.policy(explore=True): clip(μⁱ(oⁱ) + N(0, (σ·s)²), low, high), noise per seed
        by agent id."""
        E, N = steps[0].n_envs, self.spec.n_agents
        noise = [[self.noise(l.generator, i, E) for i in range(N)] for l in self.learners]
        obs = [self.step_obs(steps, i)[0] for i in range(N)]
        return self.act_all(obs, noise, [c.table for c in self.classes], self.config.expl_noise, None)

    def noise(self, generator: torch.Generator, i: int, rows: int) -> torch.Tensor:
        return draw(generator, (rows, self.learners[0].bounds[i][0].numel()), self.device, gumbel=False)

    def act_all(self, obs: list[torch.Tensor], noise: list[list[torch.Tensor]], tables: list[Table], std: float,
                clip: float | None) -> list[torch.Tensor]:
        """Perturbed deterministic actions of every seed and agent from `tables` (the actors or
        their targets), one batched pass per class: N × [K, R, A_i]."""
        out = {}
        for ci, (c, table) in enumerate(zip(self.classes, tables)):
            rows_noise = torch.stack([noise[k][i] for k in range(self.K) for i in c.agents])
            out[ci] = perturb(c.buffers, self.actor(c, table.view(None), self.by_class(obs, c)), rows_noise, std, clip)
        return self.per_agent(out)

    def update(self) -> list[dict[str, float]]:
        c, N = self.config, self.spec.n_agents
        self.begin()
        batch = self.sample()
        B = c.batch_size
        noise = [[self.noise(l.generator, i, B) for i in range(N)] for l in self.learners]
        metrics = SeedMetrics(self.K)
        with self.learners[0].autocast():
            with torch.no_grad():
                next_actions = self.act_all(batch.next_obs, noise, self.actors_target, c.policy_noise, c.noise_clip)
                next_value = torch.min(*self.twin_q(self.critic_target.view(None), torch.cat([batch.next_state, *next_actions], dim=-1)))
            self.critic_step(batch, next_value, metrics)
            for learner in self.learners:
                learner.updates += 1
            if self.learners[0].updates % c.policy_freq == 0:
                self.actor_round(batch, metrics)
        return metrics.read()

    def actor_round(self, batch: Batch, metrics: SeedMetrics) -> None:
        """Hatd3.update's delayed actor round: agents in each seed's fresh order, each step
        against the joint action with the earlier agents' new actions; then the targets."""
        N = self.spec.n_agents
        orders = [l.rng.permutation(N) for l in self.learners]
        class_obs = {id(c): self.by_class(batch.obs, c) for c in self.classes}
        with torch.no_grad():
            actions = self.per_agent({ci: self.actor(c, c.table.view(None), class_obs[id(c)]) for ci, c in enumerate(self.classes)})
        x = torch.cat([batch.state, *actions], dim=-1)  # critic inputs [K, B, D], updated in place
        for m in range(N):
            agents = [int(o[m]) for o in orders]
            for c, seeds, rows in self.seed_groups(agents):
                own = [agents[k] for k in seeds]
                seed_index = index(seeds, self.device)
                obs = class_obs[id(c)].index_select(0, rows)
                p = c.table.leaves(rows)
                action = self.actor(c, p, obs, {n: b.index_select(0, rows) for n, b in c.buffers.items()})
                q1 = self.twin_q(self.critic.view(self.seed_index(seeds)), self.replace_columns(x, seeds, own, action), heads=1)[0]
                loss, values = torch.vmap(actor_loss)(q1.float(), batch.valid[seed_index, :, index(own, self.device)])
                c.table.step_rows(rows, p, loss.sum(), steps=c.table.steps)
                for key, value in values.items():
                    metrics.add(seeds, [f"{key}/agent_{i}" for i in own], value)
                if m + 1 < N:  # agents after i see agent i's new action
                    with torch.no_grad():
                        new = self.actor(c, c.table.view(rows), obs, {n: b.index_select(0, rows) for n, b in c.buffers.items()})
                        x.index_copy_(0, seed_index, self.replace_columns(x, seeds, own, new))
        for c in self.classes:
            c.table.steps += 1
        self.soft_update([(self.critic_target, self.critic), *((t, c.table) for c, t in zip(self.classes, self.actors_target))])


# -- HATD3's actors with each row's parameters ---------------------------------------------------
def deterministic(c: AgentClass, p: Params, obs: torch.Tensor, buffers: Params | None = None) -> torch.Tensor:
    """DeterministicActor.forward of every row: μ(o) [S, R, A] in [low, high]."""
    b = c.buffers if buffers is None else buffers
    return scale_action(sequential(c.template.net, p, "net", obs).float(), b["low"].unsqueeze(1), b["high"].unsqueeze(1))


def perturb(buffers: Params, action: torch.Tensor, noise: torch.Tensor, std: float, clip: float | None) -> torch.Tensor:
    """DeterministicActor.perturb with the standard normal draw `noise` given:
    clip(a + clip(ε, ±clip·s), low, high), ε = noise·std·s, s = (high − low)/2."""
    low, high = buffers["low"].unsqueeze(1), buffers["high"].unsqueeze(1)
    scale = (high - low) / 2.0
    noise = noise * std * scale
    if clip is not None:
        noise = torch.max(torch.min(noise, clip * scale), -clip * scale)
    return torch.max(torch.min(action + noise, high), low)
