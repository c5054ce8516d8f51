"""HAPPO: Heterogeneous-Agent Proximal Policy Optimisation (Kuba et al., "Trust Region
Policy Optimisation in Multi-Agent Reinforcement Learning", ICLR 2022; HARL happo.py and
on_policy_ha_runner.py). A baseline of the HASAC paper.

Critic: centralised V(s), GAE(λ) with HARL's time-limit handling (bad_masks), clipped Huber
value loss on ValueNorm-normalised returns (algos/common/on_policy.py, ppo.py).
Actors (separate parameters), every iteration in a fresh random permutation i_1..i_N:
    L(θ^{i_m}) = −E[M^{i_m} · min(r Â, clip(r, 1 ± ε) Â)] − c_H H(π^{i_m}),
    M^{i_m} = Π_{k<m} π^{i_k}_new(a^{i_k}|o^{i_k}) / π^{i_k}_old(a^{i_k}|o^{i_k})   (detached)
where the ratios of the agents already updated are evaluated after their update (for GRU
actors by running the actor once over the whole rollout from its first hidden state, as
HARL on_policy_ha_runner.py train). Each agent's advantages are normalised over its own
active entries (HARL happo.py train l.117-122).

Every default is HARL's behaviour (PKU-MARL/HARL). Our alternatives are the fidelity
switches of OnPolicyConfig (`truncation`, `advantage_norm`, `recurrent_critic`) and
HappoConfig (`factor_hidden`), one row each in docs/fidelity.md, section "On-policy
algorithms (HAPPO, MAPPO) and QMIX". With one state per agent (HARL's FP state) each agent
has its own critic row and advantages (algos/common/on_policy.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from algos.common.on_policy import OnPolicyConfig, OnPolicyLearner
from algos.common.rollout import Rollout, to_chunks
from envs.fidelity import Switch


@dataclass
class HappoConfig(OnPolicyConfig):
    """HAPPO hyperparameters; defaults are HARL's happo.yaml (tuned per task in
    harness/tuned/happo.yaml). Other fields are documented on OnPolicyConfig."""

    factor_hidden: str = "official"
    """Log-probs of a GRU actor in the factor passed on (fidelity switch). 'official': old
    (before its update) and new (after) from running the actor once over the whole rollout,
    from the rollout's first hidden state, resetting at episode starts (HARL
    on_policy_ha_runner.py train l.61-79, l.91-120: evaluate_actions on obs[:-1] with
    rnn_states[0:1] and masks[:-1]); 'chunks': new over the training chunks from each
    chunk's stored hidden state, old the stored log-probs of acting."""

    fidelity: ClassVar[dict[str, Switch]] = OnPolicyConfig.fidelity | {
        "factor_hidden": Switch(("chunks",), "GRU actors (use_recurrent_policy)", lambda spec, c: c.use_recurrent_policy),
    }


class Happo(OnPolicyLearner):
    """Per-agent stochastic actors updated sequentially with the HAPPO factor."""

    Config = HappoConfig
    config: HappoConfig

    def actor_groups(self) -> list[list[int]]:
        return [[i] for i in range(self.spec.n_agents)]

    def train_actors(self, rollout: Rollout, advantage: torch.Tensor) -> dict[str, float]:
        whole = self.hidden_shape is not None and self.config.factor_hidden == "official"
        factor, metrics = None, {}
        for i in map(int, self.rng.permutation(self.spec.n_agents)):
            batch = self.actor_batch(rollout, advantage, [i], factor)
            metrics[f"factor/agent_{i}"] = float(batch.factor.mean())
            old_log_prob = self.rollout_log_prob(i, rollout) if whole else batch.old_log_prob
            metrics |= self.train_group(i, batch)
            new_log_prob = self.rollout_log_prob(i, rollout) if whole else self.group_log_prob(i, batch)
            factor = update_factor(batch.factor, new_log_prob, old_log_prob)
        return metrics

    @torch.no_grad()
    def rollout_log_prob(self, i: int, rollout: Rollout) -> torch.Tensor:
        """log π_i(a|o) of agent i's stored actions under its current actor run once over the
        whole rollout (T steps) from the GRU state of the rollout's first step, resetting at
        episode starts; in the chunked layout [L, C] of its batch."""
        log_prob, _ = self.actors[i].evaluate(self.with_agent_id(rollout.obs[i], i), rollout.hidden[i][0], rollout.starts,
                                              rollout.action[i], rollout.avail[i])
        return to_chunks(log_prob, self.L)


def update_factor(factor: torch.Tensor, new_log_prob: torch.Tensor, old_log_prob: torch.Tensor) -> torch.Tensor:
    """M ← M · π_new(a|o) / π_old(a|o) for the agent just updated (HARL
    on_policy_ha_runner.py: factor *= prod(exp(new − old))). All [L, C]; no gradient."""
    return (factor * torch.exp(new_log_prob - old_log_prob)).detach()
