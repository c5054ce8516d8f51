"""HATD3: Heterogeneous-Agent TD3 (Zhong et al., "Heterogeneous-Agent Reinforcement
Learning", JMLR 2024), the deterministic baseline of the HASAC paper (arXiv 2306.10715).

Critic (centralised twin Q on state and joint action; target actors μ̄ⁱ, target critics Q̄):
    ã'ⁱ = clip(μ̄ⁱ(o'ⁱ) + clip(ε, −c·s, c·s), low, high),  ε ~ N(0, (σ̃·s)²),  s = (high − low)/2
    y = R⁽ⁿ⁾ + γᵏ (1 − term) min_j Q̄_j(s', ã')
Actors, every `policy_freq` critic steps, in a fresh random permutation i_1..i_N:
    L(θ^{i_m}) = −E[Q1(s, a^{i_1:m−1}_new, μ^{i_m}(o^{i_m}), a^{i_m+1:N}_old)]
    starting from the current deterministic actions; each agent's new action is substituted
    before the next agent's step. Target actors and critics then move by Polyak τ.
Exploration: aⁱ = clip(μⁱ(oⁱ) + N(0, (σ·s)²), low, high); evaluation: μⁱ(oⁱ).

Continuous actions only (the registry refuses Discrete tasks with one line).
Deviations from HARL (PKU-MARL/HARL d539bad), see docs/algorithms/hatd3.md: EP state
only; warm-up steps count towards the env-step budget.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from algos.common.distributions import scale_action
from algos.common.networks import masked_mean, plain_mlp
from algos.common.off_policy import HaOffPolicy, OffPolicyConfig, read_metrics
from algos.common.replay import Batch
from envs.base import EnvSpec, Step
from envs.errors import ConfigError


@dataclass
class Hatd3Config(OffPolicyConfig):
    """HATD3 hyperparameters; defaults are HARL's hatd3.yaml (tuned per task in harness/tuned/hatd3.yaml)."""

    action_spaces: ClassVar[frozenset[str]] = frozenset({"box"})
    on_policy: ClassVar[bool] = False
    packed: ClassVar[str | None] = "algos.hatd3_packed:PackedHatd3"

    hidden_sizes: list[int] = field(default_factory=lambda: [128, 128])
    """Hidden layer widths of every actor and critic MLP."""
    critic_lr: float = 1e-3
    """Adam learning rate of the twin critic."""
    n_step: int = 1
    """Steps in the n-step return (stops early at episode ends)."""
    train_every: int = 500
    """Env steps between training rounds (HARL train_interval × n_rollout_threads: 50 × 10)."""
    use_huber: bool = False
    """Huber critic loss instead of MSE (HATD3 uses MSE)."""
    policy_freq: int = 2
    """Critic steps per actor round (delayed policy updates); targets move on actor rounds."""
    expl_noise: float = 0.1
    """Std of the Gaussian exploration noise, in units of the half-range (high − low)/2."""
    policy_noise: float = 0.2
    """Std of the target-policy smoothing noise, in units of the half-range."""
    noise_clip: float = 0.5
    """Bound of the smoothing noise, in units of the half-range."""

    def validate(self, spec: EnvSpec) -> None:
        super().validate(spec)
        if self.policy_freq < 1:
            raise ConfigError(f"algo: policy_freq must be >= 1, got {self.policy_freq}")
        if min(self.expl_noise, self.policy_noise, self.noise_clip) < 0:
            raise ConfigError("algo: expl_noise, policy_noise and noise_clip must be >= 0")


class DeterministicActor(nn.Module):
    """HARL deterministic_policy.py: PlainMLP (ReLU, tanh output) scaled onto [low, high]."""

    def __init__(self, obs_dim: int, low: torch.Tensor, high: torch.Tensor, hidden_sizes: list[int]):
        super().__init__()
        self.net = plain_mlp([obs_dim, *hidden_sizes, low.numel()], nn.ReLU, nn.Tanh)
        self.register_buffer("low", low.clone())
        self.register_buffer("high", high.clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """μ(o) [B, A] in [low, high] (float32 under bf16 autocast too)."""
        return scale_action(self.net(obs).float(), self.low, self.high)

    def perturb(self, action: torch.Tensor, std: float, clip: float | None, generator: torch.Generator) -> torch.Tensor:
        """clip(a + clip(ε, ±clip·s), low, high), ε ~ N(0, (std·s)²), s = (high − low)/2."""
        scale = (self.high - self.low) / 2.0
        noise = torch.randn(action.shape, generator=generator, device=action.device) * std * scale
        if clip is not None:
            noise = torch.max(torch.min(noise, clip * scale), -clip * scale)
        return torch.max(torch.min(action + noise, self.high), self.low)


class Hatd3(HaOffPolicy):
    """Per-agent deterministic actors with targets, centralised twin critic, sequential
    delayed actor updates."""

    Config = Hatd3Config
    config: Hatd3Config

    def __init__(self, spec: EnvSpec, config: Hatd3Config, n_envs: int, device: torch.device, seed: int):
        super().__init__(spec, config, n_envs, device, seed)
        self.actors_target = copy.deepcopy(self.actors).requires_grad_(False)

    def build_actors(self) -> nn.ModuleList:
        return nn.ModuleList(
            DeterministicActor(o.shape[0], *bounds, self.config.hidden_sizes) for o, bounds in zip(self.spec.obs_spaces, self.bounds)
        )

    def policy(self, step: Step, explore: bool) -> list[torch.Tensor]:
        actions = []
        for i, actor in enumerate(self.actors):
            action = actor(self.step_inputs(step, i)[0])
            actions.append(actor.perturb(action, self.config.expl_noise, None, self.generator) if explore else action)
        return actions

    def update(self) -> dict[str, float]:
        batch = self.buffer.sample(self.config.batch_size, self.rng)
        with self.autocast():
            metrics = self.critic_step(batch, self.target_next_value(batch))
            self.updates += 1
            if self.updates % self.config.policy_freq == 0:
                self.critic.requires_grad_(False)  # actor losses need dQ/da only
                # μⁱ(oⁱ) with its graph: the others read it detached, agent i's own step
                # differentiates it, so no agent runs its pre-update forward twice
                actions = [actor(obs) for actor, obs in zip(self.actors, batch.obs)]
                order = self.rng.permutation(self.spec.n_agents)
                for m, i in enumerate(order):
                    metrics |= self.actor_step(i, batch, actions)
                    if m + 1 < len(order):  # agents after i see agent i's new action
                        with torch.no_grad():
                            actions[i] = self.actors[i](batch.obs[i])
                self.critic.requires_grad_(True)
                self.soft_update([(self.critic_target, self.critic), (self.actors_target, self.actors)])
        return read_metrics(metrics)

    def checkpointed(self) -> dict:
        return super().checkpointed() | {"actors_target": self.actors_target}

    # -- steps of update() -------------------------------------------------------------------
    @torch.no_grad()
    def target_next_value(self, batch: Batch) -> torch.Tensor:
        """min_j Q̄_j(s', ã') with smoothed target actions ã' [B, 1]."""
        c = self.config
        next_actions = [
            target.perturb(target(obs), c.policy_noise, c.noise_clip, self.generator)
            for target, obs in zip(self.actors_target, batch.next_obs)
        ]
        return torch.min(*self.critic_target(batch.next_state, next_actions))

    def actor_step(self, i: int, batch: Batch, actions: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """One Adam step on agent i's deterministic policy-gradient loss. actions[i] is
        μⁱ(oⁱ) with its graph when update() made it; without one it is recomputed."""
        own = actions[i] if actions[i].requires_grad else self.actors[i](batch.obs[i])
        joint = [own if j == i else a.detach() for j, a in enumerate(actions)]
        loss, metrics = actor_loss(self.critic.q1(batch.state, joint).float(), batch.valid[:, i])
        self.actor_optimizers[i].zero_grad()
        loss.backward()
        self.actor_optimizers[i].step()
        return {f"{k}/agent_{i}": v for k, v in metrics.items()}


def actor_loss(q1: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Deterministic policy-gradient loss of one agent (TD3 uses Q1 only): −E_valid[Q1(s, a)].
    q1 [B, 1]; valid [B] (agent alive, HARL use_policy_active_masks)."""
    loss = -masked_mean(q1, valid)
    return loss, {"loss/actor": loss.detach()}
