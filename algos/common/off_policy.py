"""What HASAC and HATD3 share: the config fields of HARL's off-policy HA runner, the
replay buffer and update schedule, the centralised twin critic and its loss, and
checkpointing. Each algorithm file keeps its own actors, losses and `update()`.

Schedule (HARL off_policy_base_runner.py, expressed in env steps so it does not depend on
n_envs): the first `warmup_steps` env steps act uniformly at random; afterwards, every
`train_every` env steps, `updates_per_train` gradient updates are owed. HARL's defaults
(train_interval 50 vectorised steps × 20 threads, update_per_train 1) are 50 updates per
1000 env steps, i.e. one update per 20 transitions.

Speed (docs/speed.md, harness/bench.py): the replay table lives on the update device, the
twin critic's heads share one pass on a GPU, Adam is the fused kernel, Polyak one foreach
op, and an update's metrics stay on the device as 0-d tensors until `read_metrics` moves
them to the host in one transfer. `bf16` runs the update's network passes under bfloat16
autocast (fp32 weights and optimiser state, losses in fp32): opt-in, because it changes
the numbers and only pays on hardware with native bf16 matrix units.
"""

from __future__ import annotations

import copy
import math
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from algos.base import AlgoConfig, Algorithm
from algos.common.networks import TwinQ, polyak_update
from algos.common.ppo import ValueNorm
from algos.common.replay import Batch, Layout, ReplayBuffer
from algos.common.spaces import uniform_actions
from envs.base import EnvSpec, Step
from envs.errors import ConfigError


@dataclass
class OffPolicyConfig(AlgoConfig):
    """Fields of HARL's off-policy HA runner (defaults: hasac.yaml)."""

    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden layer widths of every actor and critic MLP."""
    lr: float = 5e-4
    """Adam learning rate of the actors."""
    critic_lr: float = 5e-4
    """Adam learning rate of the twin critic."""
    gamma: float = 0.99
    """Discount factor γ."""
    tau: float = 0.005
    """Polyak rate of the target networks: θ' ← (1 − τ)θ' + τθ (HARL `polyak`)."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    batch_size: int = 1000
    """Transitions per gradient update, drawn without replacement."""
    n_step: int = 20
    """Steps in the n-step return (stops early at episode ends)."""
    warmup_steps: int = 10_000
    """Env steps of uniformly random actions before the policy acts (counted in the budget)."""
    train_every: int = 1000
    """Env steps between training rounds (HARL train_interval × n_rollout_threads: 50 × 20)."""
    updates_per_train: int = 50
    """Gradient updates per training round (HARL update_per_train × train_interval: 1 × 50)."""
    use_huber: bool = True
    """Huber critic loss instead of MSE (HARL use_huber_loss)."""
    huber_delta: float = 10.0
    """δ of the Huber loss."""
    bf16: bool = False
    """Run the update's network passes under bfloat16 autocast (faster only where the
    hardware has bf16 matrix units; results differ from fp32 in the last bits)."""

    def validate(self, spec: EnvSpec) -> None:
        checks = [
            (self.lr > 0 and self.critic_lr > 0, "lr and critic_lr must be > 0"),
            (0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}"),
            (0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}"),
            (self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}"),
            (self.buffer_size >= self.batch_size, f"buffer_size ({self.buffer_size}) must be >= batch_size ({self.batch_size})"),
            (self.n_step >= 1, f"n_step must be >= 1, got {self.n_step}"),
            (self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}"),
            (self.train_every >= 1, f"train_every must be >= 1, got {self.train_every}"),
            (self.updates_per_train >= 0, f"updates_per_train must be >= 0, got {self.updates_per_train}"),
            (len(self.hidden_sizes) > 0 and min(self.hidden_sizes) > 0, f"hidden_sizes must be positive widths, got {list(self.hidden_sizes)}"),
            (self.huber_delta > 0, f"huber_delta must be > 0, got {self.huber_delta}"),
        ]
        for i, space in enumerate(spec.action_spaces):  # tanh policies are scaled onto [low, high]
            if isinstance(space, spaces.Box) and not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
                checks.append((False, f"agent {i}'s Box action space must be bounded, got {space}"))
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"algo: {message}")

    def memory_bytes(self, spec: EnvSpec, n_envs: int) -> int:
        """The replay table: buffer_size transitions (rounded up to whole rows of n_envs)."""
        return -(-self.buffer_size // n_envs) * n_envs * Layout(spec).bytes_per_transition()


class HaOffPolicy(Algorithm):
    """Off-policy heterogeneous-agent learner: per-agent actors (built by the subclass),
    one centralised twin critic with targets, a replay buffer, HARL's update schedule.

    Actors produce actions in the critic encoding (Box: scaled to the bounds; Discrete:
    one-hot), so `torch.cat([state, *joint])` is always the critic's input."""

    config: OffPolicyConfig

    def __init__(self, spec: EnvSpec, config: OffPolicyConfig, n_envs: int, device: torch.device, seed: int):
        super().__init__(spec, config, n_envs, device, seed)
        config.validate(spec)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.buffer = ReplayBuffer(spec, config.buffer_size, n_envs, config.gamma, config.n_step, self.device,
                                   next_avail_after_reset=self.next_avail_after_reset())
        self.env_steps = 0  # transitions observed
        self.updates = 0  # update() calls paid
        self.bounds = [
            (self.tensor(s.low), self.tensor(s.high)) if isinstance(s, spaces.Box) else None for s in spec.action_spaces
        ]
        joint_dim = sum(action_width(s) for s in spec.action_spaces)
        self.V = spec.critic_rows  # critic rows per transition (N with per-agent states)
        with torch.random.fork_rng(devices=[]):  # initial weights from the run's seed only
            torch.manual_seed(seed)
            self.critic = TwinQ(spec.state_space.shape[0] // self.V, joint_dim, config.hidden_sizes).to(self.device)
            self.actors = self.build_actors().to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_optimizer = adam(self.critic.parameters(), config.critic_lr)
        self.actor_optimizers = [adam(a.parameters(), config.lr) for a in self.actors]

    @abstractmethod
    def build_actors(self) -> nn.ModuleList:
        """One actor per agent (separate parameters), in agent-id order."""

    def next_avail_after_reset(self) -> bool:
        """Which Discrete masks a transition ending an episode stores as its next masks:
        the reset episode's first ones (True, HARL: off_policy_base_runner.py l.248 and
        l.408-411 replace only the observations and the state with the ended episode's) or
        the ended episode's last ones (False). Irrelevant for Box-only algorithms."""
        return True

    @abstractmethod
    def policy(self, step: Step, explore: bool) -> list[torch.Tensor]:
        """N × [E, A_i] actions in the critic encoding for the rows of `step`."""

    def act(self, step: Step, explore: bool = True) -> list[np.ndarray]:
        if explore and self.env_steps < self.config.warmup_steps:
            return uniform_actions(self.spec, step.n_envs, step.avail_actions, self.rng)
        with torch.no_grad():
            encoded = self.policy(step, explore)
            columns = [a.argmax(dim=-1, keepdim=True).float() if b is None else a.float() for a, b in zip(encoded, self.bounds)]
            joint = torch.cat(columns, dim=-1).cpu().numpy()  # one device→host copy per step
        parts = np.split(joint, np.cumsum([c.shape[-1] for c in columns])[:-1], axis=-1)
        return [p[:, 0].astype(np.int64) if b is None else p.astype(np.float32) for p, b in zip(parts, self.bounds)]

    def observe(self, step: Step, actions: list[np.ndarray], nxt: Step) -> None:
        self.buffer.add(step, actions, nxt)
        self.env_steps += step.n_envs

    def ready(self, total_env_steps: int) -> bool:
        c = self.config
        rounds = max(0, total_env_steps - c.warmup_steps) // c.train_every
        return len(self.buffer) >= c.batch_size and self.updates < rounds * c.updates_per_train

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update({name: obj.state_dict() for name, obj in self.checkpointed().items()})
        state.update(generator=self.generator.get_state(), buffer=self.buffer.state_dict(), env_steps=self.env_steps, updates=self.updates)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for name, obj in self.checkpointed().items():
            obj.load_state_dict(state[name])
        self.generator.set_state(state["generator"])
        self.buffer.load_state_dict(state["buffer"])
        self.env_steps, self.updates = state["env_steps"], state["updates"]

    def checkpointed(self) -> dict[str, Any]:
        """Everything with a state_dict that a resumed run needs; subclasses extend it."""
        objects: dict[str, Any] = {
            "critic": self.critic,
            "critic_target": self.critic_target,
            "critic_optimizer": self.critic_optimizer,
            "actors": self.actors,
        }
        objects.update({f"actor_optimizer_{i}": opt for i, opt in enumerate(self.actor_optimizers)})
        return objects

    # -- shared steps ------------------------------------------------------------------------
    def tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=torch.float32, device=self.device)

    def step_inputs(self, step: Step, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Agent i's (obs [E, O_i], avail [E, n_i] bool or None) from a Step."""
        avail = None
        if self.bounds[i] is None and step.avail_actions is not None:
            avail = torch.as_tensor(step.avail_actions[i], device=self.device)
        return self.tensor(step.obs[i]), avail

    def autocast(self) -> torch.autocast:
        """The context update() runs in: bfloat16 autocast when `bf16`, else a no-op. Losses
        and distributions take `.float()` values, so only the matrix products run in bf16."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16)

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """A per-transition tensor [B, ...] for each critic row: unchanged, or tiled N times
        (agent-major, HARL's torch.tile) with per-agent states."""
        return x if self.V == 1 else x.repeat(self.V, *[1] * (x.dim() - 1))

    def critic_step(self, batch: Batch, next_value: torch.Tensor, value_norm: ValueNorm | None = None) -> dict[str, torch.Tensor]:
        """One Adam step of both Q-nets towards y = R⁽ⁿ⁾ + γᵏ(1 − term)·next_value, or, with a
        ValueNorm (HASAC use_valuenorm), towards its normalised y after updating it with y.
        With per-agent states every agent's row sees the joint action and the loss counts
        the rows of living agents only (HARL soft_twin_continuous_q_critic.py [2a7510e]
        `train`, its FP branch under use_policy_active_masks)."""
        target = normalised_target(batch.reward + batch.discount * (1.0 - batch.terminated) * next_value.float(), value_norm)
        q1, q2 = self.critic(batch.state, [self.rows(a) for a in batch.actions])
        valid = None if self.V == 1 else batch.valid.T.reshape(-1, 1)  # agent k's alive flag on its rows
        loss, metrics = critic_loss(q1.float(), q2.float(), target, self.config.huber_delta if self.config.use_huber else None, valid)
        self.critic_optimizer.zero_grad()
        loss.backward()
        self.critic_optimizer.step()
        return metrics

    def soft_update(self, pairs: list[tuple[nn.Module, nn.Module]]) -> None:
        for target, source in pairs:
            polyak_update(target, source, self.config.tau)


def normalised_target(target: torch.Tensor, value_norm: ValueNorm | None) -> torch.Tensor:
    """y as the Q-nets regress on it: unchanged, or with a ValueNorm (μ, σ) first updated with
    the batch's y, then (y − μ)/σ (HARL soft_twin_continuous_q_critic.py l.125-141)."""
    if value_norm is None:
        return target
    value_norm.update(target)
    return value_norm.normalize(target)


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (CPU and CUDA): one op per step instead of several per
    parameter, ~3× faster on the critic; equal to the per-tensor loop within float rounding."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def read_metrics(metrics: dict[str, torch.Tensor | float]) -> dict[str, float]:
    """An update's metrics as floats with a single device→host transfer (each `.item()`
    would be a synchronisation on a GPU); floats pass through."""
    tensors = {k: v for k, v in metrics.items() if isinstance(v, torch.Tensor)}
    values = dict(zip(tensors, torch.stack([v.detach().float().reshape(()) for v in tensors.values()]).tolist())) if tensors else {}
    return {k: values[k] if k in values else float(v) for k, v in metrics.items()}


def action_width(space: spaces.Space) -> int:
    """Width of one agent's action in the critic input: Box dims or Discrete one-hot size."""
    return int(space.n) if isinstance(space, spaces.Discrete) else int(math.prod(space.shape))


def critic_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor, huber_delta: float | None,
                valid: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Twin-critic regression, L = ℓ(Q1, y) + ℓ(Q2, y) with ℓ(q, y) = mean ½(q − y)², or the
    Huber loss with δ = huber_delta (HARL twin_continuous_q_critic.py: loss1 + loss2, one
    optimiser; models_tools.py l.64-74: both with the ½).
    With `valid` [R, 1] (per-agent state rows, HARL's FP branch of
    soft_twin_continuous_q_critic.py [2a7510e] `train`) each ℓ is Σ ℓ·v / Σ v, except
    Q2's Huber loss, which HARL averages before dividing by Σ v: Σ ℓ·v / (R · Σ v).
    q1, q2, target: [R, 1]; target carries no gradient. Metrics are detached 0-d tensors
    (read_metrics moves them to the host once per update)."""
    target = target.detach()
    if valid is not None:
        ell = [0.5 * (q - target) ** 2 if huber_delta is None else
               F.huber_loss(q, target, delta=huber_delta, reduction="none") for q in (q1, q2)]
        total = valid.sum().clamp_min(1.0)
        second = (ell[1] * valid).sum() if huber_delta is None else (ell[1] * valid).mean()
        loss = (ell[0] * valid).sum() / total + second / total
    elif huber_delta is None:
        loss = 0.5 * (F.mse_loss(q1, target) + F.mse_loss(q2, target))
    else:
        loss = F.huber_loss(q1, target, delta=huber_delta) + F.huber_loss(q2, target, delta=huber_delta)
    return loss, {"loss/critic": loss.detach(), "q/mean": q1.detach().mean(), "q/target_mean": target.mean()}
