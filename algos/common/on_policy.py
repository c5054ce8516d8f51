"""What HAPPO and MAPPO share (HARL's on-policy HA runner, actors and VCritic): the config
fields, the rollout buffer, GAE(λ) with truncation bootstrapping, ValueNorm, the PPO-clip
losses, Gaussian and masked categorical policies (optionally recurrent), the centralised
V(s) critic, and the learner that acts, stores, and trains. Each algorithm file keeps
only how its actors are grouped and the order/weighting of their updates.

Rollout layout: T = episode_length vectorised steps, E env copies, N agents; a rollout is
T × E transitions. Actor data is cut into chunks of L = data_chunk_length steps for GRU
policies (L = 1 otherwise): tensors [L, C, ...] with C = (T / L) · E chunk columns per agent.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from algos.base import AlgoConfig, Algorithm, PolicySample
from algos.common.distributions import masked_logits
from algos.common.recurrent import ResettingGru
from envs.base import EnvSpec, Step
from envs.errors import ConfigError


@dataclass
class OnPolicyConfig(AlgoConfig):
    """Fields of HARL's on-policy HA runner; defaults are HARL's happo.yaml / mappo.yaml
    (reference: algorithms_and_paper.md §2.2-2.3), which agree on all of these."""

    on_policy: ClassVar[bool] = True

    episode_length: int = 200
    """Vectorised steps per rollout (HARL train.episode_length); one update per rollout."""
    hidden_sizes: list[int] = field(default_factory=lambda: [128, 128])
    """Hidden widths of the actor and critic MLPs (LayerNorm after each ReLU)."""
    lr: float = 5e-4
    """Adam learning rate of the actors."""
    critic_lr: float = 5e-4
    """Adam learning rate of the critic."""
    opti_eps: float = 1e-5
    """Adam epsilon (HARL opti_eps)."""
    use_linear_lr_decay: bool = False
    """Decay both learning rates linearly to 0 over `lr_decay_steps` env steps (HARL)."""
    lr_decay_steps: int = 10_000_000
    """Env steps of the linear decay: HARL decays over num_env_steps (10M in its configs)."""
    ppo_epoch: int = 5
    """Passes over the rollout per actor update."""
    critic_epoch: int = 5
    """Passes over the rollout per critic update."""
    num_mini_batch: int = 1
    """Mini-batches per pass, for actors and critic (HARL actor_/critic_num_mini_batch)."""
    clip_param: float = 0.2
    """PPO clip ε of the ratio, and of the value change in the clipped value loss."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus in the actor loss."""
    value_loss_coef: float = 1.0
    """Weight of the value loss."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip of every actor and critic step."""
    gamma: float = 0.99
    """Discount factor γ."""
    gae_lambda: float = 0.95
    """GAE λ."""
    use_valuenorm: bool = True
    """Regress the critic on running-mean/std-normalised returns (HARL ValueNorm)."""
    use_clipped_value_loss: bool = True
    """max(ℓ(V − R), ℓ(V_clipped − R)) with V_clipped = V_old + clip(V − V_old, ±ε)."""
    use_huber: bool = True
    """Huber value loss instead of ½ squared error (HARL use_huber_loss)."""
    huber_delta: float = 10.0
    """δ of the Huber loss."""
    use_policy_active_masks: bool = True
    """Drop dead agents' samples from the actor loss and entropy (death masking)."""
    std_x_coef: float = 1.0
    """Gaussian σ = sigmoid(log_std / std_x_coef) · std_y_coef; log_std starts at std_x_coef."""
    std_y_coef: float = 0.5
    """Upper bound of the Gaussian σ (see std_x_coef); initial σ = 0.5·sigmoid(1) ≈ 0.37."""
    use_recurrent_policy: bool = False
    """GRU actors whose hidden state resets at episode starts."""
    recurrent_n: int = 1
    """GRU layers."""
    data_chunk_length: int = 10
    """Steps per training sequence of a GRU actor (truncated BPTT from the stored state)."""

    def validate(self, spec: EnvSpec) -> None:
        checks = [
            (self.lr > 0 and self.critic_lr > 0, f"lr and critic_lr must be > 0, got {self.lr} and {self.critic_lr}"),
            (self.clip_param > 0, f"clip_param must be > 0, got {self.clip_param}"),
            (self.ppo_epoch >= 1 and self.critic_epoch >= 1, f"ppo_epoch and critic_epoch must be >= 1, got {self.ppo_epoch} and {self.critic_epoch}"),
            (self.num_mini_batch >= 1, f"num_mini_batch must be >= 1, got {self.num_mini_batch}"),
            (self.episode_length >= 1, f"episode_length must be >= 1, got {self.episode_length}"),
            (0.0 <= self.gamma <= 1.0 and 0.0 <= self.gae_lambda <= 1.0, f"gamma and gae_lambda must be in [0, 1], got {self.gamma} and {self.gae_lambda}"),
            (self.entropy_coef >= 0 and self.value_loss_coef > 0, "entropy_coef must be >= 0 and value_loss_coef > 0"),
            (self.max_grad_norm > 0 and self.huber_delta > 0 and self.opti_eps > 0, "max_grad_norm, huber_delta and opti_eps must be > 0"),
            (self.std_x_coef > 0 and self.std_y_coef > 0, "std_x_coef and std_y_coef must be > 0"),
            (self.lr_decay_steps >= 1, f"lr_decay_steps must be >= 1, got {self.lr_decay_steps}"),
            (len(self.hidden_sizes) > 0 and min(self.hidden_sizes) > 0, f"hidden_sizes must be positive widths, got {list(self.hidden_sizes)}"),
        ]
        if self.use_recurrent_policy:
            checks += [
                (self.recurrent_n >= 1 and self.data_chunk_length >= 1, "recurrent_n and data_chunk_length must be >= 1"),
                (self.episode_length % self.data_chunk_length == 0,
                 f"episode_length ({self.episode_length}) must be a multiple of data_chunk_length ({self.data_chunk_length})"),
            ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"algo: {message}")


# -- value normalisation and returns ---------------------------------------------------------
class ValueNorm(nn.Module):
    """Running mean/std of the returns with debiased exponential averages (HARL ValueNorm,
    β = 0.99999, variance floored at 1e-2). normalize(x) = (x − μ)/σ, denormalize inverts it."""

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5):
        super().__init__()
        self.beta, self.epsilon = beta, epsilon
        self.register_buffer("running_mean", torch.zeros(1, dtype=torch.float64))
        self.register_buffer("running_mean_sq", torch.zeros(1, dtype=torch.float64))
        self.register_buffer("debiasing_term", torch.zeros(1, dtype=torch.float64))

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        debias = self.debiasing_term.clamp(min=self.epsilon)
        mean, mean_sq = self.running_mean / debias, self.running_mean_sq / debias
        return mean, (mean_sq - mean**2).clamp(min=1e-2)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.detach().double()
        w = self.beta
        self.running_mean.mul_(w).add_(x.mean() * (1.0 - w))
        self.running_mean_sq.mul_(w).add_((x**2).mean() * (1.0 - w))
        self.debiasing_term.mul_(w).add_(1.0 - w)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.mean_var()
        return ((x.double() - mean) / var.sqrt()).to(x.dtype)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.mean_var()
        return (x.double() * var.sqrt() + mean).to(x.dtype)


def gae(reward: torch.Tensor, value: torch.Tensor, next_value: torch.Tensor, terminated: torch.Tensor,
        done: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(λ) (Schulman et al. 2016) with proper time limits. All inputs [T, E]:
    next_value = V(true next state) — info["final_state"] where the episode ended — so a
    truncated step bootstraps from its final state and a terminated one from 0:
        δ_t = r_t + γ (1 − term_t) V(s'_t) − V(s_t),   Â_t = δ_t + γλ (1 − done_t) Â_{t+1}.
    Returns (advantage, return = advantage + value), both [T, E]."""
    advantage = torch.zeros_like(reward)
    running = torch.zeros_like(reward[0])
    for t in reversed(range(reward.shape[0])):
        delta = reward[t] + gamma * (1.0 - terminated[t]) * next_value[t] - value[t]
        running = delta + gamma * lam * (1.0 - done[t]) * running
        advantage[t] = running
    return advantage, advantage + value


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over entries where mask (same shape, 0/1) is 1."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def normalise_advantage(advantage: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """(Â − mean)/(std + 1e-5) over active entries only (HARL nanmean/nanstd over alive
    agents). advantage [T, E], active [T, E, N] → [T, E]."""
    weights = active.to(advantage.dtype).sum(-1)
    total = weights.sum().clamp_min(1.0)
    mean = (advantage * weights).sum() / total
    std = (((advantage - mean) ** 2 * weights).sum() / total).sqrt()
    return (advantage - mean) / (std + 1e-5)


# -- losses ---------------------------------------------------------------------------------
def ppo_actor_loss(ratio: torch.Tensor, advantage: torch.Tensor, factor: torch.Tensor, entropy: torch.Tensor,
                   active: torch.Tensor, clip: float, entropy_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
    """HAPPO/MAPPO actor loss (Kuba et al. 2022, eq. 11):
        L = −E_active[ M · min(r Â, clip(r, 1 ± ε) Â) ] − c_H · E_active[H(π)],
    with r = π_new(a|o)/π_old(a|o) (product over action dims) and M = `factor`, the
    product of the ratios of the agents already updated (1 for MAPPO). The factor is
    detached: it weights agent i's surrogate but carries no gradient to agent i.
    All tensors share one shape ([L, C]); active is the alive mask."""
    surrogate = torch.min(ratio * advantage, ratio.clamp(1.0 - clip, 1.0 + clip) * advantage)
    policy_loss = -masked_mean(factor.detach() * surrogate, active)
    entropy_mean = masked_mean(entropy, active)
    with torch.no_grad():
        log_ratio = ratio.log()
        metrics = {
            "loss/actor": policy_loss.item(),
            "entropy": entropy_mean.item(),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, active).item(),
            "clip_fraction": masked_mean(((ratio - 1.0).abs() > clip).float(), active).item(),
            "ratio": masked_mean(ratio, active).item(),
        }
    return policy_loss - entropy_coef * entropy_mean, metrics


def value_loss(value: torch.Tensor, old_value: torch.Tensor, target: torch.Tensor, clip: float,
               huber_delta: float | None, clipped: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO value loss in normalised space (HARL v_critic.cal_value_loss):
    ℓ = Huber_δ or ½e²; loss = mean(max(ℓ(R − V), ℓ(R − V_clipped))) when clipped, with
    V_clipped = V_old + clip(V − V_old, ±ε). value, old_value, target: [B]."""
    def ell(error: torch.Tensor) -> torch.Tensor:
        if huber_delta is None:
            return 0.5 * error**2
        return F.huber_loss(error, torch.zeros_like(error), delta=huber_delta, reduction="none")

    loss = ell(target - value)
    if clipped:
        value_clipped = old_value + (value - old_value).clamp(-clip, clip)
        loss = torch.max(loss, ell(target - value_clipped))
    loss = loss.mean()
    return loss, {"loss/critic": loss.item()}


# -- networks -------------------------------------------------------------------------------
def layernorm_mlp(input_dim: int, hidden_sizes: list[int]) -> nn.Sequential:
    """HARL MLPBase: LayerNorm on the input (use_feature_normalization), then per hidden
    layer Linear (orthogonal, ReLU gain, zero bias) → ReLU → LayerNorm."""
    layers: list[nn.Module] = [nn.LayerNorm(input_dim)]
    for n_in, n_out in zip([input_dim, *hidden_sizes[:-1]], hidden_sizes):
        layers += [orthogonal(nn.Linear(n_in, n_out), nn.init.calculate_gain("relu")), nn.ReLU(), nn.LayerNorm(n_out)]
    return nn.Sequential(*layers)


def orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


class Policy(nn.Module):
    """Stochastic actor: MLP base, optional GRU, then a Gaussian head (mean from a linear
    layer, state-independent σ = sigmoid(log_std/x)·y as HARL DiagGaussian) for Box, or a
    categorical head over masked logits for Discrete (unavailable actions get π = 0).
    Head weights orthogonal with gain 0.01 (HARL `gain`)."""

    def __init__(self, input_dim: int, action_space: spaces.Space, c: OnPolicyConfig):
        super().__init__()
        width = c.hidden_sizes[-1]
        self.base = layernorm_mlp(input_dim, c.hidden_sizes)
        self.rnn = ResettingGru(width, width, c.recurrent_n) if c.use_recurrent_policy else None
        self.discrete = isinstance(action_space, spaces.Discrete)
        n_out = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.head = orthogonal(nn.Linear(width, n_out), 0.01)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((n_out,), float(c.std_x_coef)))
        self.x_coef, self.y_coef = c.std_x_coef, c.std_y_coef

    def features(self, obs: torch.Tensor, hidden: torch.Tensor | None, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """obs [L, B, O], hidden [B, R, H] or None, starts [L, B] → (features [L, B, H], last hidden)."""
        x = self.base(obs)
        if self.rnn is None:
            return x, None
        return self.rnn(x, hidden, starts)

    def distribution(self, x: torch.Tensor, avail: torch.Tensor | None) -> torch.distributions.Distribution:
        out = self.head(x)
        if self.discrete:
            return torch.distributions.Categorical(logits=masked_logits(out, avail), validate_args=False)
        std = torch.sigmoid(self.log_std / self.x_coef) * self.y_coef
        return torch.distributions.Normal(out, std.expand_as(out), validate_args=False)  # no per-call argument checks

    def evaluate(self, obs, hidden, starts, actions, avail) -> tuple[torch.Tensor, torch.Tensor]:
        """(log π(a|o) [L, B], entropy [L, B]) of stored actions; Box dims are summed
        (HARL action_aggregation 'prod' of the per-dimension ratios)."""
        dist = self.distribution(self.features(obs, hidden, starts)[0], avail)
        if self.discrete:
            return dist.log_prob(actions), dist.entropy()
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1)


def sample(dist: torch.distributions.Distribution, generator: torch.Generator) -> torch.Tensor:
    """One draw from `dist` with an explicit generator (Box: raw, unclipped)."""
    if isinstance(dist, torch.distributions.Categorical):
        return torch.multinomial(dist.probs.reshape(-1, dist.probs.shape[-1]), 1, generator=generator).view(dist.probs.shape[:-1])
    eps = torch.randn(dist.mean.shape, generator=generator, device=dist.mean.device, dtype=dist.mean.dtype)
    return dist.mean + dist.stddev * eps


class VCritic(nn.Module):
    """Centralised V(s) (HARL VCritic, EP state): MLP base → Linear(1). Outputs are in
    ValueNorm's normalised space when use_valuenorm."""

    def __init__(self, state_dim: int, hidden_sizes: list[int]):
        super().__init__()
        self.base = layernorm_mlp(state_dim, hidden_sizes)
        self.v_out = orthogonal(nn.Linear(hidden_sizes[-1], 1), 1.0)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """state [..., S] → value [...]."""
        return self.v_out(self.base(state)).squeeze(-1)


# -- rollout buffer -------------------------------------------------------------------------
class RolloutBuffer:
    """T × E transitions as numpy arrays, filled step by step (position `pos`)."""

    def __init__(self, spec: EnvSpec, T: int, E: int, hidden_shape: tuple[int, int] | None):
        N = spec.n_agents
        self.spec, self.T, self.E, self.pos = spec, T, E, 0
        f32 = np.float32
        self.arrays: dict[str, np.ndarray] = {
            "state": np.zeros((T, E, spec.state_space.shape[0]), f32),
            "final_state": np.zeros((T, E, spec.state_space.shape[0]), f32),
            "alive": np.zeros((T, E, N), bool), "reward": np.zeros((T, E), f32),
            "terminated": np.zeros((T, E), bool), "done": np.zeros((T, E), bool), "starts": np.zeros((T, E), bool),
        }
        for i, (obs, act) in enumerate(zip(spec.obs_spaces, spec.action_spaces)):
            discrete = isinstance(act, spaces.Discrete)
            self.arrays[f"obs_{i}"] = np.zeros((T, E, obs.shape[0]), f32)
            self.arrays[f"action_{i}"] = np.zeros((T, E), np.int64) if discrete else np.zeros((T, E, *act.shape), f32)
            self.arrays[f"log_prob_{i}"] = np.zeros((T, E), f32)
            if discrete:  # all ones where the family gives no masks
                self.arrays[f"avail_{i}"] = np.ones((T, E, act.n), bool)
            if hidden_shape is not None:
                self.arrays[f"hidden_{i}"] = np.zeros((T, E, *hidden_shape), f32)

    def add(self, values: dict[str, np.ndarray]) -> None:
        for key, value in values.items():
            self.arrays[key][self.pos] = value
        self.pos += 1

    @property
    def full(self) -> bool:
        return self.pos >= self.T

    def tensors(self, device: torch.device) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(v, device=device) for k, v in self.arrays.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos, "arrays": {k: v.copy() for k, v in self.arrays.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos = state["pos"]
        for k, v in state["arrays"].items():
            self.arrays[k][...] = v


def to_chunks(x: torch.Tensor, L: int) -> torch.Tensor:
    """[T, E, ...] → [L, (T/L)·E, ...]: consecutive L-step pieces of each env's stream."""
    T, E = x.shape[:2]
    x = x.reshape(T // L, L, E, *x.shape[2:]).transpose(0, 1)
    return x.reshape(L, (T // L) * E, *x.shape[3:])


# -- the learner ----------------------------------------------------------------------------
class OnPolicyLearner(Algorithm):
    """Actors (one per group of agents; `actor_groups` decides sharing), one V(s) critic,
    ValueNorm, a rollout buffer. Subclasses define the groups and `train_actors`."""

    config: OnPolicyConfig

    def __init__(self, spec: EnvSpec, config: OnPolicyConfig, n_envs: int, device: torch.device, seed: int):
        super().__init__(spec, config, n_envs, device, seed)
        config.validate(spec)
        c, N = config, spec.n_agents
        self.groups = self.actor_groups()
        self.group_of = {i: g for g, agents in enumerate(self.groups) for i in agents}
        self.L = c.data_chunk_length if c.use_recurrent_policy else 1
        smallest = min(c.episode_length * n_envs, (c.episode_length // self.L) * n_envs * min(len(g) for g in self.groups))
        if c.num_mini_batch > smallest:
            raise ConfigError(f"algo: num_mini_batch ({c.num_mini_batch}) exceeds the {smallest} samples of a rollout "
                              f"(episode_length {c.episode_length} × n_envs {n_envs}); lower num_mini_batch")
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        with torch.random.fork_rng(devices=[]):  # initial weights from the run's seed only
            torch.manual_seed(seed)
            self.actors = nn.ModuleList(
                [Policy(self.input_dim(g[0]), spec.action_spaces[g[0]], c) for g in self.groups]).to(self.device)
            self.critic = VCritic(spec.state_space.shape[0], c.hidden_sizes).to(self.device)
        self.value_norm = ValueNorm().to(self.device)
        self.actor_optimizers = [torch.optim.Adam(a.parameters(), lr=c.lr, eps=c.opti_eps) for a in self.actors]
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr, eps=c.opti_eps)
        self.hidden_shape = (c.recurrent_n, c.hidden_sizes[-1]) if c.use_recurrent_policy else None
        self.buffer = RolloutBuffer(spec, c.episode_length, n_envs, self.hidden_shape)
        self.hidden: list[torch.Tensor] | None = None  # training GRU states, N × [E, R, H]
        self.eval_hidden: list[torch.Tensor] | None = None  # evaluation GRU states
        self.pending: dict[str, np.ndarray] | None = None  # what act() drew, for observe()
        self.bounds = [(s.low, s.high) if isinstance(s, spaces.Box) else None for s in spec.action_spaces]
        self.env_steps = 0
        self.updates = 0

    @abstractmethod
    def actor_groups(self) -> list[list[int]]:
        """Agents served by each actor network, e.g. [[0], [1], [2]] or [[0, 1, 2]]."""

    @abstractmethod
    def train_actors(self, data: dict[str, torch.Tensor]) -> dict[str, float]:
        """Train every actor on the prepared rollout (see `prepare`)."""

    def input_dim(self, i: int) -> int:
        """Actor input width: obs, plus a one-hot agent id when the actor is shared."""
        shared = len(self.groups[self.group_of[i]]) > 1
        return self.spec.obs_spaces[i].shape[0] + (self.spec.n_agents if shared else 0)

    # -- acting -------------------------------------------------------------------------------
    def act(self, step: Step, explore: bool = True) -> list[np.ndarray]:
        E = step.n_envs
        starts = np.asarray(step.done, bool).copy()
        hidden = self.hidden if explore else self.eval_hidden
        if explore:
            self.eval_hidden = None  # the next evaluation starts fresh episodes
        if self.hidden_shape is not None and (hidden is None or hidden[0].shape[0] != E):
            hidden, starts[:] = [torch.zeros(E, *self.hidden_shape, device=self.device) for _ in range(self.spec.n_agents)], True
        drawn, hidden_in, hidden_out = [], [], []  # drawn: per agent, action [E, A_i or 1] and log π [E, 1]
        with torch.no_grad():
            starts_t = torch.as_tensor(starts, device=self.device)
            for i in range(self.spec.n_agents):
                obs, avail = self.actor_inputs(step.obs[i], step.avail_actions, i)
                h = None if hidden is None else hidden[i] * (~starts_t).view(-1, 1, 1).float()
                x, h_next = self.actors[self.group_of[i]].features(obs[None], h, starts_t[None])
                dist = self.actors[self.group_of[i]].distribution(x[0], avail)
                if explore:
                    a = sample(dist, self.generator)
                    log_prob = dist.log_prob(a) if self.bounds[i] is None else dist.log_prob(a).sum(-1)
                else:
                    a, log_prob = (dist.probs.argmax(-1) if self.bounds[i] is None else dist.mean), torch.zeros(E, device=self.device)
                drawn += [a.float().reshape(E, -1), log_prob.reshape(E, 1)]
                hidden_in.append(h)
                hidden_out.append(h_next)
            joint = torch.cat(drawn, dim=-1).cpu().numpy()  # one device→host copy per step
        host = np.split(joint, np.cumsum([d.shape[-1] for d in drawn])[:-1], axis=-1)
        raw = [a[:, 0].astype(np.int64) if b is None else a for a, b in zip(host[0::2], self.bounds)]
        log_probs = [lp[:, 0] for lp in host[1::2]]
        actions = [a if b is None else np.clip(a, *b).astype(np.float32) for a, b in zip(raw, self.bounds)]  # HARL clips to the Box
        if hidden is not None:
            if explore:
                self.hidden = hidden_out
            else:
                self.eval_hidden = hidden_out
        if explore:
            self.pending = {"raw": raw, "log_prob": log_probs, "starts": starts,
                            "hidden": None if hidden is None else [h.cpu().numpy() for h in hidden_in]}
        return actions

    def actor_inputs(self, obs: np.ndarray, avail: list[np.ndarray] | None, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Agent i's actor input [E, O(+N)] and availability mask [E, n] (or None)."""
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        if len(self.groups[self.group_of[i]]) > 1:
            one_hot = torch.zeros(x.shape[0], self.spec.n_agents, device=self.device)
            one_hot[:, i] = 1.0
            x = torch.cat([x, one_hot], dim=-1)
        mask = None
        if avail is not None and self.bounds[i] is None:
            mask = torch.as_tensor(np.asarray(avail[i]), dtype=torch.bool, device=self.device)
        return x, mask

    def observe(self, step: Step, actions: list[np.ndarray], nxt: Step) -> None:
        assert self.pending is not None, "observe() needs the act(explore=True) that chose the actions"
        p, self.pending = self.pending, None
        row = {"state": step.state, "final_state": nxt.info.get("final_state", nxt.state), "alive": step.alive,
               "reward": nxt.reward, "terminated": nxt.terminated, "done": nxt.done, "starts": p["starts"]}
        for i in range(self.spec.n_agents):
            row |= {f"obs_{i}": step.obs[i], f"action_{i}": p["raw"][i], f"log_prob_{i}": p["log_prob"][i]}
            if f"avail_{i}" in self.buffer.arrays:
                row[f"avail_{i}"] = True if step.avail_actions is None else step.avail_actions[i]
            if p["hidden"] is not None:
                row[f"hidden_{i}"] = p["hidden"][i]
        self.buffer.add(row)
        self.env_steps += step.n_envs

    def ready(self, total_env_steps: int) -> bool:
        return self.buffer.full

    # -- learning -----------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        if self.config.use_linear_lr_decay:
            self.decay_learning_rates()
        data = self.prepare()
        metrics = self.train_actors(data)
        metrics |= self.train_critic(data)
        self.buffer.pos = 0
        self.updates += 1
        return metrics

    def decay_learning_rates(self) -> None:
        """lr_k = lr · (1 − k·T·E / lr_decay_steps) at the k-th update (k from 0), floored at 0:
        HARL's update_linear_schedule with episode k of num_env_steps / (T·E)."""
        c = self.config
        done = self.updates * c.episode_length * self.n_envs / c.lr_decay_steps
        scale = max(0.0, 1.0 - done)
        for opt in self.actor_optimizers:
            for group in opt.param_groups:
                group["lr"] = c.lr * scale
        for group in self.critic_optimizer.param_groups:
            group["lr"] = c.critic_lr * scale

    @torch.no_grad()
    def prepare(self) -> dict[str, torch.Tensor]:
        """Buffer tensors plus V_old (normalised) [T, E], returns [T, E], normalised Â [T, E]."""
        c, data = self.config, self.buffer.tensors(self.device)
        v_old = self.critic(data["state"])
        v_next = self.critic(data["final_state"])
        if c.use_valuenorm:
            value, next_value = self.value_norm.denormalize(v_old), self.value_norm.denormalize(v_next)
        else:
            value, next_value = v_old, v_next
        advantage, returns = gae(data["reward"], value, next_value, data["terminated"].float(), data["done"].float(),
                                 c.gamma, c.gae_lambda)
        data |= {"v_old": v_old, "returns": returns, "advantage": normalise_advantage(advantage, data["alive"])}
        return data

    def group_batch(self, data: dict[str, torch.Tensor], agents: list[int], factor: torch.Tensor | None = None) -> dict[str, Any]:
        """The actor data of `agents`, chunked and concatenated along the columns: obs
        [L, C, O], actions, old log_prob, advantage, active, starts, factor [L, C];
        avail [L, C, n] or None; hidden [C, R, H] or None. `factor` is already in this
        chunked layout (HAPPO passes on the previous agent's); default ones."""
        L, parts = self.L, []
        for i in agents:
            obs = data[f"obs_{i}"]
            if len(agents) > 1:
                obs = torch.cat([obs, F.one_hot(torch.full(obs.shape[:2], i, device=self.device), self.spec.n_agents).float()], -1)
            active = data["alive"][..., i] if self.config.use_policy_active_masks else torch.ones_like(data["alive"][..., i])
            part = {"obs": obs, "action": data[f"action_{i}"], "old_log_prob": data[f"log_prob_{i}"],
                    "advantage": data["advantage"], "active": active.float(), "starts": data["starts"],
                    "factor": torch.ones_like(data["advantage"])}
            if f"avail_{i}" in data:
                part["avail"] = data[f"avail_{i}"]
            chunked = {k: to_chunks(v, L) for k, v in part.items()}
            if self.hidden_shape is not None:
                chunked["hidden"] = to_chunks(data[f"hidden_{i}"], L)[0]
            parts.append(chunked)
        batch = {k: torch.cat([p[k] for p in parts], dim=1 if k != "hidden" else 0) for k in parts[0]}
        if factor is not None:
            batch["factor"] = factor
        batch.setdefault("avail", None)
        batch.setdefault("hidden", None)
        return batch

    def minibatches(self, n_columns: int) -> list[np.ndarray]:
        return np.array_split(self.rng.permutation(n_columns), self.config.num_mini_batch)

    def train_group(self, g: int, batch: dict[str, Any]) -> dict[str, float]:
        """ppo_epoch × num_mini_batch clipped-surrogate steps of actor g; mean metrics."""
        c, actor, history = self.config, self.actors[g], []
        for _ in range(c.ppo_epoch):
            for idx in self.minibatches(batch["obs"].shape[1]):
                mb = {k: None if v is None else (v[idx] if k == "hidden" else v[:, idx]) for k, v in batch.items()}
                log_prob, entropy = actor.evaluate(mb["obs"], mb["hidden"], mb["starts"], mb["action"], mb["avail"])
                ratio = torch.exp(log_prob - mb["old_log_prob"])
                loss, metrics = ppo_actor_loss(ratio, mb["advantage"], mb["factor"], entropy, mb["active"], c.clip_param, c.entropy_coef)
                self.actor_optimizers[g].zero_grad()
                loss.backward()
                metrics["grad_norm/actor"] = nn.utils.clip_grad_norm_(actor.parameters(), c.max_grad_norm).item()
                self.actor_optimizers[g].step()
                history.append(metrics)
        name = self.group_name(g)
        return {f"{k}/{name}": float(np.mean([m[k] for m in history])) for k in history[0]}

    @torch.no_grad()
    def group_log_prob(self, g: int, batch: dict[str, Any]) -> torch.Tensor:
        """log π_g(a|o) [L, C] of the stored actions under actor g's current parameters."""
        return self.actors[g].evaluate(batch["obs"], batch["hidden"], batch["starts"], batch["action"], batch["avail"])[0]

    def group_name(self, g: int) -> str:
        agents = self.groups[g]
        return f"agent_{agents[0]}" if len(agents) == 1 else "shared"

    def train_critic(self, data: dict[str, torch.Tensor]) -> dict[str, float]:
        """critic_epoch × num_mini_batch value-loss steps on T·E (state, return) pairs; ValueNorm
        is updated with each mini-batch's returns before normalising them (as HARL)."""
        c, history = self.config, []
        state, v_old, returns = data["state"].flatten(0, 1), data["v_old"].flatten(), data["returns"].flatten()
        for _ in range(c.critic_epoch):
            for idx in self.minibatches(state.shape[0]):
                target = returns[idx]
                if c.use_valuenorm:
                    self.value_norm.update(target)
                    target = self.value_norm.normalize(target)
                loss, metrics = value_loss(self.critic(state[idx]), v_old[idx], target, c.clip_param,
                                           c.huber_delta if c.use_huber else None, c.use_clipped_value_loss)
                self.critic_optimizer.zero_grad()
                (loss * c.value_loss_coef).backward()
                metrics["grad_norm/critic"] = nn.utils.clip_grad_norm_(self.critic.parameters(), c.max_grad_norm).item()
                self.critic_optimizer.step()
                history.append(metrics)
        out = {k: float(np.mean([m[k] for m in history])) for k in history[0]}
        return out | {"value/mean": float(data["returns"].mean())}

    # -- checkpointing and probabilities -------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state |= {"actors": self.actors.state_dict(), "critic": self.critic.state_dict(), "value_norm": self.value_norm.state_dict(),
                  "critic_optimizer": self.critic_optimizer.state_dict(),
                  "actor_optimizers": [o.state_dict() for o in self.actor_optimizers],
                  "generator": self.generator.get_state(), "buffer": self.buffer.state_dict(),
                  "hidden": None if self.hidden is None else [h.cpu().clone() for h in self.hidden],
                  "eval_hidden": None if self.eval_hidden is None else [h.cpu().clone() for h in self.eval_hidden],
                  "pending": self.pending, "env_steps": self.env_steps, "updates": self.updates}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.actors.load_state_dict(state["actors"])
        self.critic.load_state_dict(state["critic"])
        self.value_norm.load_state_dict(state["value_norm"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        for opt, s in zip(self.actor_optimizers, state["actor_optimizers"]):
            opt.load_state_dict(s)
        self.generator.set_state(state["generator"])
        self.buffer.load_state_dict(state["buffer"])
        to_device = lambda hs: None if hs is None else [h.to(self.device) for h in hs]  # noqa: E731
        self.hidden, self.eval_hidden = to_device(state["hidden"]), to_device(state["eval_hidden"])
        self.pending, self.env_steps, self.updates = state["pending"], state["env_steps"], state["updates"]

    def policy_probs(self, step: Step) -> list[np.ndarray] | None:
        if not self.spec.discrete:
            return None
        probs = []
        with torch.no_grad():
            for i in range(self.spec.n_agents):
                obs, avail = self.actor_inputs([o[:1] for o in step.obs][i], None if step.avail_actions is None else [a[:1] for a in step.avail_actions], i)
                h = None if self.hidden_shape is None else torch.zeros(1, *self.hidden_shape, device=self.device)
                actor = self.actors[self.group_of[i]]
                x, _ = actor.features(obs[None], h, torch.ones(1, 1, dtype=torch.bool, device=self.device))
                probs.append(actor.distribution(x[0], avail).probs[0].cpu().numpy())
        return probs

    def sample_policy(self, step: Step, generator: torch.Generator) -> PolicySample | None:
        """a ~ πⁱ with the caller's generator and the exact entropy of each agent's
        distribution: categorical, or the Gaussian before clipping to the Box (the entropy
        the PPO bonus uses). GRU actors: None (their state along an episode is not tracked
        outside `act`)."""
        if self.hidden_shape is not None:
            return None
        actions, entropies = [], []
        with torch.no_grad():
            for i in range(self.spec.n_agents):
                obs, avail = self.actor_inputs(step.obs[i], step.avail_actions, i)
                actor = self.actors[self.group_of[i]]
                x, _ = actor.features(obs[None], None, torch.ones(1, obs.shape[0], dtype=torch.bool, device=self.device))
                dist = actor.distribution(x[0], avail)
                a = sample(dist, generator).cpu().numpy()
                entropy = dist.entropy() if self.bounds[i] is None else dist.entropy().sum(-1)
                actions.append(a.astype(np.int64) if self.bounds[i] is None else np.clip(a, *self.bounds[i]).astype(np.float32))
                entropies.append(entropy.cpu().numpy())
        return PolicySample(actions, np.stack(entropies).astype(np.float64))
