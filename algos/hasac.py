"""HASAC: Heterogeneous-Agent Soft Actor-Critic (Liu et al., "Maximum Entropy
Heterogeneous-Agent Reinforcement Learning", ICLR 2024, arXiv 2306.10715).

Joint max-entropy objective J(π) = E[Σ_t γᵗ (r_t + α Σ_i H(πⁱ(·|s_t)))], π = Π_i πⁱ.

Critic (centralised twin soft Q on state and joint action, targets Q̄1, Q̄2):
    y = R⁽ⁿ⁾ + γᵏ (1 − term) [min_j Q̄_j(s', a') − α_c Σ_i log πⁱ(a'ⁱ|o'ⁱ)],  a'ⁱ ~ πⁱ (current actors)
Actors, every update, in a fresh random permutation i_1..i_N (sequential HA update):
    L(θ^{i_m}) = −E[min_j Q_j(s, a^{i_1:m−1}_new, a^{i_m}, a^{i_m+1:N}_old) − α_{i_m} log π^{i_m}(a^{i_m})]
    (agents already updated contribute new-policy samples, the rest pre-update samples)
Temperature (auto_alpha): L(log αᵢ) = −E[log αᵢ · (log πⁱ + H̄ᵢ)], H̄ = −act_dim (Box) or
    0 (Discrete, what HARL computes) / 0.98·log n (Discrete, what its comment intends).

Every default is the official code's behaviour (PKU-MARL/HARL d539bad). Our alternatives are
fidelity switches (`HasacConfig.fidelity`, envs/fidelity.py), each a row of docs/fidelity.md
with the official file and line: `box_action`, `discrete_target_entropy`,
`critic_alpha_logp`, `episode_end_avail`. `discrete_actor_loss: expected` is an addition.
`use_valuenorm` is HARL's ValueNorm of its SMAC files (the targets normalised, the actors
reading the normalised Q). With one state per agent (HARL's FP state, EnvSpec.agent_states)
the critic has one row per agent and transition: Q(s_k, a) on agent k's state with the
joint action, each agent's n-step row ended by its own death (algos/common/replay.py), the
critic loss over living agents' rows, and agent i's actor loss over every agent's row,
weighted by agent i's own alive flag (off_policy_ha_runner.py [47ba706] `train`, its FP branches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from algos.common.distributions import (BOX_ACTIONS, box_action, box_log_det, gumbel_noise, gumbel_softmax_hard,
                                        masked_argmax_onehot, masked_logits, squashed_gaussian_sample)
from algos.common.networks import layernorm_mlp, masked_mean, orthogonal, plain_mlp
from algos.common.off_policy import HaOffPolicy, OffPolicyConfig, read_metrics
from algos.common.policy_sample import PolicySample, sample_stochastic_actors
from algos.common.ppo import ValueNorm
from algos.common.replay import Batch
from envs.base import EnvSpec, Step
from envs.errors import ConfigError
from envs.fidelity import Switch, check_switches


def has_box(spec: EnvSpec, config=None) -> bool:
    return any(isinstance(s, spaces.Box) for s in spec.action_spaces)


def has_discrete(spec: EnvSpec, config=None) -> bool:
    return any(isinstance(s, spaces.Discrete) for s in spec.action_spaces)


@dataclass
class HasacConfig(OffPolicyConfig):
    """HASAC hyperparameters; defaults are HARL's hasac.yaml (tuned per task in harness/tuned/hasac.yaml)."""

    action_spaces: ClassVar[frozenset[str]] = frozenset({"box", "discrete"})
    on_policy: ClassVar[bool] = False
    agent_states: ClassVar[bool] = True
    packed: ClassVar[str | None] = "algos.hasac_packed:PackedHasac"

    alpha: float = 1e-3
    """Fixed temperature α of every agent and of the critic target (when auto_alpha is false)."""
    auto_alpha: bool = False
    """Learn one log α per agent, plus the critic's, against the target entropies."""
    initial_alpha: float = 1.0
    """Starting α when auto_alpha (HARL starts every log α at 0 and ignores `alpha`)."""
    alpha_lr: float = 3e-4
    """Adam learning rate of every log α."""
    discrete_target_entropy: str = "official"
    """Discrete H̄: 'official' = 0, what HARL computes (off_policy_base_runner.py l.189-193:
    Discrete(n).shape is ()); 'intended' = 0.98·log(n_actions), what its comment promises."""
    box_action: str = "official"
    """Box policy output: 'official' = high[0]·tanh(u), log π of tanh(u) alone
    (squashed_gaussian_policy.py l.43, l.71-77; the env clips to the box); 'affine' =
    low + (tanh(u) + 1)(high − low)/2 with the map's log-det in log π."""
    critic_alpha_logp: str = "official"
    """log π the critic's α_c is trained on (auto_alpha): 'official' = each agent's sample in
    its own actor loss (off_policy_ha_runner.py l.92, l.133); 'resampled' = each agent's
    resample after its step (the joint policy at the end of the update)."""
    episode_end_avail: str = "official"
    """Discrete next-step masks of a transition that ends an episode: 'official' = the reset
    episode's first masks (off_policy_base_runner.py l.248, l.408-411 replace only obs and
    state); 'final' = the ended episode's last masks."""
    use_valuenorm: bool = False
    """HARL's ValueNorm on the critic (train.use_valuenorm: false in hasac.yaml and every MPE
    and MaMuJoCo file, true in every SMAC file, so tuned/hasac.yaml sets it there): the
    targets update running statistics (μ, σ) and the Q-nets regress on (y − μ)/σ, the target
    nets' output is denormalised inside y, and the actors read the normalised Q, so α acts
    as α/σ there (soft_twin_continuous_q_critic.py l.125-141, off_policy_ha_runner.py l.102)."""
    discrete_actor_loss: str = "gumbel"
    """Discrete actor loss: 'gumbel' (straight-through Gumbel-Softmax sample, HARL) or
    'expected' (exact Σ_a π(a)[Q(s, a, a₋ᵢ) − α log π(a)] over the agent's own actions)."""

    fidelity: ClassVar[dict[str, Switch]] = {
        "box_action": Switch(("affine",), "Box action spaces", has_box),
        "discrete_target_entropy": Switch(("intended",), "Discrete action spaces with auto_alpha",
                                          lambda spec, c: has_discrete(spec) and c.auto_alpha),
        "critic_alpha_logp": Switch(("resampled",), "auto_alpha runs", lambda spec, c: c.auto_alpha),
        "episode_end_avail": Switch(("final",), "Discrete action spaces", has_discrete),
    }

    def fixed_alpha(self) -> float | None:
        return None if self.auto_alpha else self.alpha

    def temperature_label(self) -> str | None:
        if not self.auto_alpha:
            return f"{float(self.alpha):g}"
        return "auto (intended H̄)" if self.discrete_target_entropy == "intended" else "auto"

    def validate(self, spec: EnvSpec) -> None:
        super().validate(spec)
        check_switches(self, "algo", spec)
        if not self.alpha > 0 or not self.initial_alpha > 0:
            raise ConfigError(f"algo: alpha and initial_alpha must be > 0, got {self.alpha} and {self.initial_alpha}")
        if self.alpha_lr <= 0:
            raise ConfigError(f"algo: alpha_lr must be > 0, got {self.alpha_lr}")
        if self.discrete_actor_loss not in ("gumbel", "expected"):
            raise ConfigError(f"algo: discrete_actor_loss must be 'gumbel' or 'expected', got {self.discrete_actor_loss!r}")


class SquashedGaussianActor(nn.Module):
    """HARL squashed_gaussian_policy.py: PlainMLP trunk (ReLU, tanh on the last hidden
    layer), linear heads for μ and log σ (clamped to [−20, 2]); a = box_action(tanh(u))."""

    def __init__(self, obs_dim: int, low: torch.Tensor, high: torch.Tensor, hidden_sizes: list[int], mode: str = "official"):
        super().__init__()
        assert mode in BOX_ACTIONS
        self.trunk = plain_mlp([obs_dim, *hidden_sizes], nn.ReLU, nn.Tanh)
        self.mu = nn.Linear(hidden_sizes[-1], low.numel())
        self.log_std = nn.Linear(hidden_sizes[-1], low.numel())
        self.mode = mode
        self.register_buffer("low", low.clone())
        self.register_buffer("high", high.clone())

    def forward(self, obs: torch.Tensor, avail: torch.Tensor | None, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample: (action [B, A], log_prob [B, 1]); the distribution's
        arithmetic stays float32 under bf16 autocast."""
        h = self.trunk(obs)
        log_std = self.log_std(h).float().clamp(-20.0, 2.0)
        x, log_prob = squashed_gaussian_sample(self.mu(h).float(), log_std, generator)
        return box_action(x, self.low, self.high, self.mode), log_prob - box_log_det(self.low, self.high, self.mode)

    def draw_noise(self, batch_size: int, generator: torch.Generator) -> None:
        """Advance `generator` exactly as forward() on `batch_size` rows would, without the
        network: for a sample update() never reads, so the random stream stays the same."""
        torch.randn((batch_size, self.low.numel()), generator=generator, device=self.low.device)

    def mode_action(self, obs: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """Deterministic action box_action(tanh(μ)) [B, A]."""
        return box_action(torch.tanh(self.mu(self.trunk(obs))), self.low, self.high, self.mode)


class CategoricalActor(nn.Module):
    """HARL stochastic_mlp_policy.py: input LayerNorm, [Linear → ReLU → LayerNorm] per hidden
    layer (orthogonal init, ReLU gain), categorical head (gain 0.01, zero bias), masked logits."""

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: list[int]):
        super().__init__()
        self.body = nn.Sequential(*layernorm_mlp(obs_dim, hidden_sizes), orthogonal(nn.Linear(hidden_sizes[-1], n_actions), 0.01))

    def forward(self, obs: torch.Tensor, avail: torch.Tensor | None, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Straight-through Gumbel-Softmax sample: (one-hot [B, n], log_prob [B, 1])."""
        return gumbel_softmax_hard(self.body(obs).float(), avail, generator)

    def draw_noise(self, batch_size: int, generator: torch.Generator) -> None:
        """Advance `generator` exactly as forward() on `batch_size` rows would (see
        SquashedGaussianActor.draw_noise)."""
        head = self.body[-1].weight
        gumbel_noise(torch.Size((batch_size, head.shape[0])), generator, head.device, torch.float32)

    def mode_action(self, obs: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """One-hot of the most likely available action [B, n]."""
        return masked_argmax_onehot(self.body(obs), avail)

    def log_probs(self, obs: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """log πⁱ(·|o) over all actions [B, n]; unavailable ones get probability 0."""
        return F.log_softmax(masked_logits(self.body(obs).float(), avail), dim=-1)


class Hasac(HaOffPolicy):
    """Per-agent stochastic actors, centralised twin soft-Q critic, sequential updates."""

    Config = HasacConfig
    config: HasacConfig

    def __init__(self, spec: EnvSpec, config: HasacConfig, n_envs: int, device: torch.device, seed: int):
        super().__init__(spec, config, n_envs, device, seed)
        c = self.config
        self.target_entropy = [target_entropy(s, c.discrete_target_entropy) for s in spec.action_spaces]
        start = math.log(c.initial_alpha if c.auto_alpha else c.alpha)
        # log α of agents 0..N−1, then the critic's own α_c (HARL keeps a separate one there)
        self.log_alpha = nn.ParameterList(
            [nn.Parameter(torch.tensor(start, device=self.device)) for _ in range(spec.n_agents + 1)]
        )
        self.alpha_optimizers = [torch.optim.Adam([p], lr=c.alpha_lr) for p in self.log_alpha]
        self.value_norm = ValueNorm().to(self.device) if c.use_valuenorm else None

    def build_actors(self) -> nn.ModuleList:
        actors = []
        for i, (obs_space, bounds) in enumerate(zip(self.spec.obs_spaces, self.bounds)):
            if bounds is None:
                actors.append(CategoricalActor(obs_space.shape[0], self.spec.action_spaces[i].n, self.config.hidden_sizes))
            else:
                actors.append(SquashedGaussianActor(obs_space.shape[0], *bounds, self.config.hidden_sizes, self.config.box_action))
        return nn.ModuleList(actors)

    def policy(self, step: Step, explore: bool) -> list[torch.Tensor]:
        inputs = [self.step_inputs(step, i) for i in range(self.spec.n_agents)]
        if explore:
            return self.sample_joint(*zip(*inputs))[0]
        return [actor.mode_action(obs, avail) for actor, (obs, avail) in zip(self.actors, inputs)]

    def update(self) -> dict[str, float]:
        batch = self.buffer.sample(self.config.batch_size, self.rng)
        with self.autocast():
            metrics = self.critic_step(batch, self.soft_next_value(batch), self.value_norm)
            self.critic.requires_grad_(False)  # actor losses need dQ/da only
            order = self.rng.permutation(self.spec.n_agents)
            with torch.no_grad():  # pre-update samples; the first agent replaces its own before anyone reads it
                actions, resampled = self.sample_joint(batch.obs, batch.avail, skip=order[0])
            in_loss = list(resampled)  # log π of each agent's sample in its own actor loss
            every_row = torch.ones_like(batch.valid[:, :1])  # one per transition, not per critic row
            for m, i in enumerate(order):
                in_loss[i], actor_metrics = self.actor_step(i, batch, actions)
                # HARL's per-agent α loss averages over every row (off_policy_ha_runner.py l.121-122)
                metrics |= actor_metrics | self.temperature_step(i, in_loss[i], every_row)
                with torch.no_grad():  # agents after i see agent i's new policy
                    if m + 1 < len(order) or self.resample_last():
                        actions[i], resampled[i] = self.actors[i](batch.obs[i], batch.avail[i], self.generator)
                    else:  # nobody reads the last agent's new sample
                        self.actors[i].draw_noise(self.config.batch_size, self.generator)
            self.critic.requires_grad_(True)
            critic_log_probs = in_loss if self.config.critic_alpha_logp == "official" else resampled
            metrics |= self.temperature_step(self.spec.n_agents, sum(critic_log_probs), every_row)
        self.soft_update([(self.critic_target, self.critic)])
        self.updates += 1
        return read_metrics(metrics)

    def resample_last(self) -> bool:
        """Whether the last agent's post-step sample is read: by the critic's α_c update
        when it trains on resamples (`critic_alpha_logp: resampled`)."""
        return self.config.auto_alpha and self.config.critic_alpha_logp == "resampled"

    def next_avail_after_reset(self) -> bool:
        return self.config.episode_end_avail == "official"

    def checkpointed(self) -> dict:
        objects = super().checkpointed() | {"log_alpha": self.log_alpha}
        if self.value_norm is not None:
            objects["value_norm"] = self.value_norm
        return objects | {f"alpha_optimizer_{k}": opt for k, opt in enumerate(self.alpha_optimizers)}

    def policy_probs(self, step: Step) -> list[np.ndarray] | None:
        if not self.spec.discrete:
            return None
        probs = []
        with torch.no_grad():
            for i, actor in enumerate(self.actors):
                obs, avail = self.step_inputs(step, i)
                probs.append(actor.log_probs(obs[:1], None if avail is None else avail[:1]).exp()[0].cpu().numpy())
        return probs

    # -- steps of update() -------------------------------------------------------------------
    def sample_joint(self, obs: list[torch.Tensor], avail: list[torch.Tensor | None],
                     skip: int | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """aⁱ ~ πⁱ(·|oⁱ) for every agent: (N × [B, A_i] critic encoding, N × [B, 1] log π).
        Agent `skip` only draws its noise (same random stream) and gets zeros."""
        actions, log_probs = [], []
        for i, (actor, o, m) in enumerate(zip(self.actors, obs, avail)):
            if i == skip:
                actor.draw_noise(o.shape[0], self.generator)
                width = self.spec.action_spaces[i].n if self.bounds[i] is None else self.bounds[i][0].numel()
                action, log_prob = o.new_zeros((o.shape[0], width)), o.new_zeros((o.shape[0], 1))
            else:
                action, log_prob = actor(o, m, self.generator)
            actions.append(action)
            log_probs.append(log_prob)
        return actions, log_probs

    @torch.no_grad()
    def soft_next_value(self, batch: Batch) -> torch.Tensor:
        """min_j Q̄_j(s', a') − α_c Σ_i log πⁱ(a'ⁱ|o'ⁱ), a' from the current actors with the
        next-step availability masks, per critic row [R, 1] (a' the same on every agent's
        row, as HARL tiles it); with ValueNorm min_j Q̄_j is denormalised first."""
        next_actions, next_log_probs = self.sample_joint(batch.next_obs, batch.next_avail)
        q1, q2 = self.critic_target(batch.next_state, [self.rows(a) for a in next_actions])
        return denormalised(torch.min(q1, q2).float(), self.value_norm) - self.log_alpha[-1].exp() * self.rows(sum(next_log_probs))

    def actor_step(self, i: int, batch: Batch, actions: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One Adam step on agent i's loss against the current joint `actions`; returns the
        log π used (for the temperature step) and the metrics. Per-agent states: the loss
        runs over every agent's critic row, each weighted by agent i's alive flag."""
        actor, obs, avail, valid = self.actors[i], batch.obs[i], batch.avail[i], self.rows(batch.valid[:, i])
        alpha = self.log_alpha[i].exp().detach()
        if self.bounds[i] is None and self.config.discrete_actor_loss == "expected":
            log_pi = actor.log_probs(obs, avail)
            q_all = self.q_per_own_action(batch.state, [self.rows(a) for a in actions], i)
            loss, metrics = expected_actor_loss(q_all, self.rows(log_pi), alpha, valid)
            log_prob = (log_pi.exp() * log_pi).sum(dim=-1, keepdim=True)
        else:
            action, log_prob = actor(obs, avail, self.generator)
            q1, q2 = self.critic(batch.state, [self.rows(action if j == i else a) for j, a in enumerate(actions)])
            loss, metrics = actor_loss(torch.min(q1, q2).float(), self.rows(log_prob), alpha, valid)
        loss = loss + self.drift_penalty(i, batch)
        self.actor_optimizers[i].zero_grad()
        loss.backward()
        self.actor_optimizers[i].step()
        return log_prob.detach(), {f"{k}/agent_{i}": v for k, v in metrics.items()}

    def drift_penalty(self, i: int, batch: Batch) -> torch.Tensor | float:
        """MEHAML drift D added to agent i's loss; HASAC is the instance with D ≡ 0
        (algos/mehaml_kl.py adds a KL drift)."""
        return 0.0

    def sample_policy(self, step: Step, generator: torch.Generator) -> PolicySample:
        inputs = [self.step_inputs(step, i) for i in range(self.spec.n_agents)]
        return sample_stochastic_actors(self.actors, inputs, [b is None for b in self.bounds], generator)

    def q_per_own_action(self, state: torch.Tensor, actions: list[torch.Tensor], i: int) -> torch.Tensor:
        """min_j Q_j(s, a, a₋ᵢ) for each of agent i's actions a, others fixed: [B, n_i]."""
        n, B = actions[i].shape[-1], state.shape[0]
        joint = [a.repeat(n, 1) for a in actions]
        joint[i] = torch.eye(n, device=state.device).repeat_interleave(B, dim=0)
        q1, q2 = self.critic(state.repeat(n, 1), joint)
        return torch.min(q1, q2).float().view(n, B).T

    def temperature_step(self, k: int, log_prob: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
        """Adam step on log α_k (k = N is the critic's α_c) when auto_alpha; metrics always."""
        name = "critic" if k == self.spec.n_agents else f"agent_{k}"
        metrics = {}
        if self.config.auto_alpha:
            entropy = self.target_entropy if k == self.spec.n_agents else [self.target_entropy[k]]
            loss, metrics = temperature_loss(self.log_alpha[k], log_prob, sum(entropy), valid)
            self.alpha_optimizers[k].zero_grad()
            loss.backward()
            self.alpha_optimizers[k].step()
        return {f"{key}/{name}": v for key, v in metrics.items()} | {f"alpha/{name}": self.log_alpha[k].detach().exp()}


def denormalised(q: torch.Tensor, value_norm: ValueNorm | None) -> torch.Tensor:
    """A critic's output on the return scale: μ + σ·q with ValueNorm, q itself without."""
    return q if value_norm is None else value_norm.denormalize(q)


def target_entropy(space: spaces.Space, discrete_mode: str) -> float:
    """H̄ for one agent: −act_dim (Box, HARL off_policy_base_runner.py l.186-188); for
    Discrete, 0 ('official': l.190-193 compute −0.98·log(1/prod(shape)) and
    Discrete(n).shape == ()) or 0.98·log n ('intended', what the comment on l.189 promises)."""
    if isinstance(space, spaces.Discrete):
        return 0.98 * math.log(space.n) if discrete_mode == "intended" else 0.0
    return -float(np.prod(space.shape))


def actor_loss(q: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SAC actor loss of one agent on a reparameterised sample (Box rsample, Discrete
    straight-through Gumbel-Softmax): −E_valid[min_j Q_j(s, a) − α log πⁱ(aⁱ)].
    q, log_prob: [B, 1]; valid [B] (agent alive, HARL use_policy_active_masks)."""
    loss = masked_mean(alpha * log_prob - q, valid)
    return loss, {"loss/actor": loss.detach(), "entropy": -masked_mean(log_prob.detach(), valid)}


def expected_actor_loss(q_all: torch.Tensor, log_pi: torch.Tensor, alpha: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Exact discrete actor loss, the expectation over the agent's own actions:
    −E_valid[Σ_a πⁱ(a)(min_j Q_j(s, a, a₋ᵢ) − α log πⁱ(a))]. q_all, log_pi: [B, n]."""
    pi = log_pi.exp()
    loss = masked_mean((pi * (alpha * log_pi - q_all)).sum(dim=-1, keepdim=True), valid)
    entropy = -(pi * log_pi).sum(dim=-1, keepdim=True)
    return loss, {"loss/actor": loss.detach(), "entropy": masked_mean(entropy.detach(), valid)}


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float, valid: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Temperature loss on log α, as in HARL/SB3 (not on α as in CleanRL):
    −E_valid[log α · (log π + H̄)], with log π detached. log_prob [B, 1], valid [B]
    (update() passes every row, as HARL's mean over the batch)."""
    loss = -masked_mean(log_alpha * (log_prob.detach() + target_entropy), valid)
    return loss, {"loss/alpha": loss.detach()}
