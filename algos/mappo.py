"""MAPPO: Multi-Agent PPO (Yu et al., "The Surprising Effectiveness of PPO in Cooperative
Multi-Agent Games", NeurIPS 2022 D&B; HARL mappo.py with share_param True, fixed_order True).
A baseline of the HASAC paper.

Same critic, losses and rollout machinery as HAPPO (algos/common/on_policy.py), but the
actors are updated simultaneously with the plain PPO-clip loss (no factor):
    L(θ) = −E_{i, active}[min(rⁱ Â, clip(rⁱ, 1 ± ε) Â)] − c_H H(π).
With `share_params` (default, as the official MAPPO) one actor serves every agent on its raw
observation (HARL on_policy_base_runner.py l.97-114); that needs identical observation and
action spaces. Its advantages are normalised over every agent's active entries, a
per-agent actor's over its own (HARL mappo.py l.113-118, l.165-180).

Every default is HARL's behaviour; the alternatives are the fidelity switches of
OnPolicyConfig and `shared_actor_input`, one row each in docs/fidelity.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from algos.common.on_policy import OnPolicyConfig, OnPolicyLearner
from algos.common.rollout import Rollout
from envs.base import EnvSpec
from envs.errors import ConfigError
from envs.fidelity import Switch


@dataclass
class MappoConfig(OnPolicyConfig):
    """MAPPO hyperparameters; defaults are HARL's mappo.yaml (tuned per task in
    harness/tuned/mappo.yaml). Other fields are documented on OnPolicyConfig."""

    share_params: bool = True
    """One actor for all agents (HARL share_param); false: one actor per agent."""
    shared_actor_input: str = "official"
    """Input of a shared actor (fidelity switch). 'official': the agent's raw observation,
    as HARL (on_policy_base_runner.py l.97-114 builds one actor on observation_space[0]);
    'agent_id': the observation ⊕ a one-hot agent id, so agents can act differently on
    equal observations."""

    fidelity: ClassVar[dict[str, Switch]] = OnPolicyConfig.fidelity | {
        "shared_actor_input": Switch(("agent_id",), "a shared actor of several agents",
                                     lambda spec, c: c.share_params and spec.n_agents > 1),
    }

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

    def adds_agent_id(self, g: int) -> bool:
        return len(self.groups[g]) > 1 and self.config.shared_actor_input == "agent_id"

    def train_actors(self, rollout: Rollout, advantage: torch.Tensor) -> dict[str, float]:
        metrics = {}
        for g, agents in enumerate(self.groups):  # independent parameters: order is irrelevant
            metrics |= self.train_group(g, self.actor_batch(rollout, advantage, agents))
        return metrics
