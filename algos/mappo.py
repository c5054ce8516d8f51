"""MAPPO: Multi-Agent PPO (Yu et al., "The Surprising Effectiveness of PPO in Cooperative
Multi-Agent Games", NeurIPS 2022 D&B; HARL mappo.py with share_param True, fixed_order True).
A baseline of the HASAC paper.

Same critic, losses and rollout machinery as HAPPO (algos/common/on_policy.py), but the
actors are updated simultaneously with the plain PPO-clip loss (no factor):
    L(θ) = −E_{i, active}[min(rⁱ Â, clip(rⁱ, 1 ± ε) Â)] − c_H H(π).
With `share_params` (default, as the official MAPPO) one actor serves every agent and sees
obs ⊕ one-hot(agent id); that needs identical observation and action spaces.

Deviations from HARL are those of HAPPO (docs/algorithms/mappo.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algos.common.on_policy import OnPolicyConfig, OnPolicyLearner
from algos.common.rollout import Rollout
from envs.base import EnvSpec
from envs.errors import ConfigError


@dataclass
class MappoConfig(OnPolicyConfig):
    """MAPPO hyperparameters; defaults are HARL's mappo.yaml (tuned per task in
    conf/tuned/mappo.yaml). Other fields are documented on OnPolicyConfig."""

    share_params: bool = True
    """One actor for all agents, input obs ⊕ one-hot agent id (HARL share_param)."""

    def validate(self, spec: EnvSpec) -> None:
        super().validate(spec)
        if self.share_params:
            same_obs = len({s.shape for s in spec.obs_spaces}) == 1
            same_act = all(s == spec.action_spaces[0] for s in spec.action_spaces)
            if not (same_obs and same_act):
                raise ConfigError(f"mappo: share_params needs identical observation and action spaces; {spec.family}/{spec.task} "
                                  "has heterogeneous agents — set algo.share_params=false")


class Mappo(OnPolicyLearner):
    """Shared (or per-agent) actors trained simultaneously with PPO-clip."""

    Config = MappoConfig
    config: MappoConfig

    def actor_groups(self) -> list[list[int]]:
        agents = list(range(self.spec.n_agents))
        return [agents] if self.config.share_params else [[i] for i in agents]

    def train_actors(self, rollout: Rollout, advantage: torch.Tensor) -> dict[str, float]:
        metrics = {}
        for g, agents in enumerate(self.groups):  # independent parameters: order is irrelevant
            metrics |= self.train_group(g, self.actor_batch(rollout, advantage, agents))
        return metrics
