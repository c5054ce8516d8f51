"""HAPPO: Heterogeneous-Agent Proximal Policy Optimisation (Kuba et al., "Trust Region
Policy Optimisation in Multi-Agent Reinforcement Learning", ICLR 2022; HARL happo.py and
on_policy_ha_runner.py). A baseline of the HASAC paper.

Critic: centralised V(s), GAE(λ) with HARL's time-limit handling (bad_masks), clipped Huber
value loss on ValueNorm-normalised returns (algos/common/on_policy.py, ppo.py).
Actors (separate parameters), every iteration in a fresh random permutation i_1..i_N:
    L(θ^{i_m}) = −E[M^{i_m} · min(r Â, clip(r, 1 ± ε) Â)] − c_H H(π^{i_m}),
    M^{i_m} = Π_{k<m} π^{i_k}_new(a^{i_k}|o^{i_k}) / π^{i_k}_old(a^{i_k}|o^{i_k})   (detached)
where the ratios of the agents already updated are evaluated after their update. Each agent's
advantages are normalised over its own active entries (HARL happo.py train l.117-122).

Every default is HARL's behaviour (PKU-MARL/HARL). Our alternatives are the fidelity
switches of OnPolicyConfig (`truncation`, `advantage_norm`), and what is not reproduced
(a recurrent critic, the FP state, the factor of a GRU actor over whole rollouts) is listed
too: one row each in docs/fidelity.md, section "On-policy algorithms (HAPPO, MAPPO) and QMIX".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algos.common.on_policy import OnPolicyConfig, OnPolicyLearner
from algos.common.rollout import Rollout


@dataclass
class HappoConfig(OnPolicyConfig):
    """HAPPO hyperparameters; defaults are HARL's happo.yaml (tuned per task in
    conf/tuned/happo.yaml). Every field is documented on OnPolicyConfig."""


class Happo(OnPolicyLearner):
    """Per-agent stochastic actors updated sequentially with the HAPPO factor."""

    Config = HappoConfig
    config: HappoConfig

    def actor_groups(self) -> list[list[int]]:
        return [[i] for i in range(self.spec.n_agents)]

    def train_actors(self, rollout: Rollout, advantage: torch.Tensor) -> dict[str, float]:
        factor, metrics = None, {}
        for i in self.rng.permutation(self.spec.n_agents):
            batch = self.actor_batch(rollout, advantage, [int(i)], factor)
            metrics[f"factor/agent_{i}"] = float(batch.factor.mean())
            metrics |= self.train_group(int(i), batch)
            new_log_prob = self.group_log_prob(int(i), batch)
            factor = update_factor(batch.factor, new_log_prob, batch.old_log_prob)
        return metrics


def update_factor(factor: torch.Tensor, new_log_prob: torch.Tensor, old_log_prob: torch.Tensor) -> torch.Tensor:
    """M ← M · π_new(a|o) / π_old(a|o) for the agent just updated (HARL
    on_policy_ha_runner.py: factor *= prod(exp(new − old))). All [L, C]; no gradient."""
    return (factor * torch.exp(new_log_prob - old_log_prob)).detach()
