"""QMIX: monotonic value function factorisation (Rashid et al., ICML 2018, arXiv 1803.11485;
JMLR 2020, arXiv 2003.08839). Defaults: PyMARL's SMAC setting (oxwhirl/pymarl
src/config/algs/qmix.yaml + default.yaml), see docs/algorithms/qmix.md.

Agents: recurrent utilities Qᵢ(τᵢ, ·) from FC → ReLU → GRUCell → FC, input = obs ⊕ one-hot
agent id (shared parameters) ⊕ one-hot last action. Mixer (algos/common/mixing.py):
Q_tot = |w₂(s)|ᵀ ELU(|W₁(s)|ᵀ q + b₁(s)) + V(s), monotonic in every qᵢ.

Loss over whole episodes (padding masked):
    L = Σ_{b,t} filled · (Q_tot(q_taken_t, s_t) − y_t)² / Σ filled
    y_t = r_t + γ (1 − end_t) Q̄_tot(q̄_{t+1}, s_{t+1})                      (1-step)
    q̄ⁱ_{t+1} = Q̄ᵢ(τ_{t+1}, argmax_{a avail} Qᵢ(τ_{t+1}, a))                (double Q)
    TD(λ) (pymarl2): y_t = r_t + γ(1 − end_t)[(1 − λ) Q̄_tot,t+1 + λ y_{t+1}]
Exploration: ε-greedy over the available actions, ε linear from ε_start to ε_finish over
`epsilon_anneal_steps` env steps; evaluation (explore=False) is greedy.

end_t is the episode's end, a time-out included, as PyMARL runs SMAC (its sc2.yaml sets
continuing_episode False, so SMAC never reports `episode_limit` and episode_runner.py l.75
stores a time-out as terminated); `truncation: bootstrap` bootstraps a time-out from the true
last view (`info["final_*"]`). Dead agents' utilities are mixed as they are (PyMARL
q_learner.py l.82, SMAC offers a dead agent only the no-op); `dead_agent_q: zero` sets them
to 0 first. One update per finished episode once batch_size are stored: with one env copy
(PyMARL's episode runner, the suites' setting) exactly PyMARL's schedule. Every difference
is a row of docs/fidelity.md.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from algos.base import AlgoConfig, Algorithm
from algos.common.distributions import MASKED_LOGIT
from algos.common.episode_buffer import EpisodeBuffer
from algos.common.mixing import QMixer
from algos.common.networks import polyak_update
from algos.common.spaces import masked_uniform_choice
from envs.base import EnvSpec, Step
from envs.errors import ConfigError
from envs.fidelity import Switch, check_switches


@dataclass
class QmixConfig(AlgoConfig):
    """QMIX hyperparameters; defaults are PyMARL's SMAC QMIX (src/config/algs/qmix.yaml,
    src/config/default.yaml)."""

    action_spaces: ClassVar[frozenset[str]] = frozenset({"discrete"})
    on_policy: ClassVar[bool] = False

    hidden_dim: int = 64
    """Width of the agent network's FC layer and GRUCell (PyMARL rnn_hidden_dim 64)."""
    share_params: bool = True
    """One agent network for all agents, told apart by a one-hot id (PyMARL obs_agent_id);
    false: one network per agent (no id input)."""
    obs_last_action: bool = True
    """Feed the agent's previous action (one-hot, zeros at an episode start) to its network."""
    mixing_embed_dim: int = 32
    """Mixer embedding width E (PyMARL mixing_embed_dim 32)."""
    hypernet_layers: int = 2
    """Layers of the weight hypernetworks (PyMARL SMAC setting: 2)."""
    hypernet_embed: int = 64
    """Hidden width of two-layer hypernetworks (PyMARL hypernet_embed 64)."""
    gamma: float = 0.99
    """Discount factor γ."""
    lr: float = 5e-4
    """Learning rate of agents and mixer (PyMARL 5e-4; pymarl2 fine-tuned: Adam 1e-3)."""
    optimizer: str = "rmsprop"
    """'rmsprop' (PyMARL: α = optim_alpha, eps = optim_eps) or 'adam' (pymarl2)."""
    optim_alpha: float = 0.99
    """RMSprop smoothing constant (PyMARL optim_alpha)."""
    optim_eps: float = 1e-5
    """RMSprop/Adam epsilon (PyMARL optim_eps)."""
    grad_norm_clip: float = 10.0
    """Clip the global gradient norm of agents and mixer to this value."""
    batch_size: int = 32
    """Episodes per update (PyMARL batch_size 32)."""
    buffer_size: int = 5000
    """Replay capacity in episodes (PyMARL buffer_size 5000)."""
    epsilon_start: float = 1.0
    """ε at the start of training."""
    epsilon_finish: float = 0.05
    """ε after annealing (PyMARL epsilon_finish)."""
    epsilon_anneal_steps: int = 50_000
    """Env steps over which ε falls linearly (PyMARL epsilon_anneal_time 50000)."""
    double_q: bool = True
    """Double-Q targets: online argmax over available actions, target network evaluation."""
    target_update: str = "hard"
    """'hard': copy every target_update_interval episodes (PyMARL); 'polyak': θ̄ ← (1−τ)θ̄ + τθ
    after every update."""
    target_update_interval: int = 200
    """Episodes between hard target copies (PyMARL target_update_interval 200)."""
    tau: float = 0.005
    """Polyak rate when target_update is 'polyak'."""
    td_lambda: float = 0.0
    """λ of TD(λ) targets (pymarl2 uses 0.6); 0 is PyMARL's 1-step target."""

    # Fidelity switches (docs/fidelity.md): "official" is PyMARL's behaviour on SMAC.
    truncation: str = "official"
    """Target at a time-limit truncation. 'official': no bootstrap, y = r, as PyMARL on SMAC
    (sc2.yaml continuing_episode False: SMAC reports no episode_limit, episode_runner.py l.75
    stores terminated); 'bootstrap': y = r + γ Q̄_tot at the episode's true last view."""
    dead_agent_q: str = "official"
    """Utilities of dead agents in the mixer. 'official': mixed as they are (PyMARL
    q_learner.py l.55, l.82-83; SMAC offers a dead agent only the no-op); 'zero': set to 0
    before mixing, at s_t and at the bootstrap view, so a dead agent's inputs cannot reach
    the loss."""

    fidelity: ClassVar[dict[str, Switch]] = {"truncation": Switch(("bootstrap",)), "dead_agent_q": Switch(("zero",))}

    def validate(self, spec: EnvSpec) -> None:
        check_switches(self, "algo", spec)
        checks = [
            (min(self.hidden_dim, self.mixing_embed_dim, self.hypernet_embed) > 0, "hidden_dim, mixing_embed_dim and hypernet_embed must be > 0"),
            (self.hypernet_layers in (1, 2), f"hypernet_layers must be 1 or 2, got {self.hypernet_layers}"),
            (0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}"),
            (self.lr > 0 and self.optim_eps > 0, "lr and optim_eps must be > 0"),
            (self.optimizer in ("rmsprop", "adam"), f"optimizer must be 'rmsprop' or 'adam', got {self.optimizer!r}"),
            (self.grad_norm_clip > 0, f"grad_norm_clip must be > 0, got {self.grad_norm_clip}"),
            (self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}"),
            (self.buffer_size >= self.batch_size, f"buffer_size ({self.buffer_size}) must be >= batch_size ({self.batch_size}) episodes"),
            (0.0 <= self.epsilon_finish <= self.epsilon_start <= 1.0, "need 0 <= epsilon_finish <= epsilon_start <= 1"),
            (self.epsilon_anneal_steps >= 0, f"epsilon_anneal_steps must be >= 0, got {self.epsilon_anneal_steps}"),
            (self.target_update in ("hard", "polyak"), f"target_update must be 'hard' or 'polyak', got {self.target_update!r}"),
            (self.target_update_interval >= 1, f"target_update_interval must be >= 1, got {self.target_update_interval}"),
            (0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}"),
            (0.0 <= self.td_lambda <= 1.0, f"td_lambda must be in [0, 1], got {self.td_lambda}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"algo: {message}")


class RnnAgent(nn.Module):
    """PyMARL rnn_agent: FC(D, H) → ReLU → GRUCell(H, H) → FC(H, A)."""

    def __init__(self, input_dim: int, hidden_dim: int, n_actions: int):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRUCell(hidden_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, D], h [B, H] -> (q [B, A], h' [B, H])."""
        h = self.rnn(F.relu(self.fc1(x)), h)
        return self.fc2(h), h


class AgentQNets(nn.Module):
    """All agents' utilities: one shared RnnAgent (inputs carry the id) or one per agent."""

    def __init__(self, n_agents: int, input_dim: int, hidden_dim: int, n_actions: int, share: bool):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.nets = nn.ModuleList([RnnAgent(input_dim, hidden_dim, n_actions) for _ in range(1 if share else n_agents)])

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, N, D], h [B, N, H] -> (q [B, N, A], h' [B, N, H])."""
        B, N, _ = x.shape
        if len(self.nets) == 1:
            q, h = self.nets[0](x.reshape(B * N, -1), h.reshape(B * N, -1))
            return q.view(B, N, -1), h.view(B, N, -1)
        outs = [net(x[:, i], h[:, i]) for i, net in enumerate(self.nets)]
        return torch.stack([q for q, _ in outs], 1), torch.stack([h for _, h in outs], 1)


class Qmix(Algorithm):
    """Recurrent agent utilities, monotonic mixer, episode replay, ε-greedy exploration."""

    Config = QmixConfig
    config: QmixConfig

    def __init__(self, spec: EnvSpec, config: QmixConfig, n_envs: int, device: torch.device, seed: int):
        super().__init__(spec, config, n_envs, device, seed)
        config.validate(spec)
        c, N = config, spec.n_agents
        self.buffer = EpisodeBuffer(spec, c.buffer_size, n_envs)
        O, A = self.buffer.O, self.buffer.A
        input_dim = O + (N if c.share_params else 0) + (A if c.obs_last_action else 0)
        with torch.random.fork_rng(devices=[]):  # initial weights from the run's seed only
            torch.manual_seed(seed)
            self.agents = AgentQNets(N, input_dim, c.hidden_dim, A, c.share_params).to(self.device)
            self.mixer = QMixer(N, spec.state_space.shape[0], c.mixing_embed_dim, c.hypernet_layers, c.hypernet_embed).to(self.device)
        self.target_agents = copy.deepcopy(self.agents).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)
        params = [*self.agents.parameters(), *self.mixer.parameters()]
        if c.optimizer == "rmsprop":
            self.optimizer = torch.optim.RMSprop(params, lr=c.lr, alpha=c.optim_alpha, eps=c.optim_eps)
        else:
            self.optimizer = torch.optim.Adam(params, lr=c.lr, eps=c.optim_eps)
        self.env_steps = 0  # transitions observed (drives ε)
        self.updates = 0
        self.trained_at_episode = 0  # buffer.episodes at the last update
        self.target_updated_at_episode = 0
        # recurrent acting state per mode: explore=True (training copies) / False (evaluation)
        self.hidden: dict[bool, torch.Tensor | None] = {True: None, False: None}  # [E, N, H]
        self.last_action: dict[bool, np.ndarray | None] = {True: None, False: None}  # [E, N], −1 = none
        self.greedy_stale = True  # a training act since the last greedy act: evaluation restarted

    # -- acting ------------------------------------------------------------------------------
    @property
    def epsilon(self) -> float:
        c = self.config
        frac = 1.0 if c.epsilon_anneal_steps == 0 else min(1.0, self.env_steps / c.epsilon_anneal_steps)
        return c.epsilon_start + frac * (c.epsilon_finish - c.epsilon_start)

    def act(self, step: Step, explore: bool = True) -> list[np.ndarray]:
        """ε-greedy (explore) or greedy actions over the available ones, N × [E] int64.
        The GRU state of a row restarts where `step.done` marks a new episode; evaluation
        (explore=False) restarts entirely after any training act, since `evaluate` resets
        its envs before every evaluation."""
        E, N = step.n_envs, self.spec.n_agents
        fresh = self.hidden[explore] is None or self.hidden[explore].shape[0] != E or (not explore and self.greedy_stale)
        if fresh:
            self.hidden[explore] = torch.zeros(E, N, self.agents.hidden_dim, device=self.device)
            self.last_action[explore] = np.full((E, N), -1, np.int64)
        hidden, last = self.hidden[explore], self.last_action[explore]
        hidden[torch.as_tensor(step.done, device=self.device)] = 0.0
        last[step.done] = -1
        views = self.buffer.views(step, final=False)
        with torch.no_grad():
            obs, avail = torch.as_tensor(views["obs"], device=self.device), torch.as_tensor(views["avail"], device=self.device)
            q, self.hidden[explore] = self.agents(self.agent_inputs(obs, torch.as_tensor(last, device=self.device)), hidden)
            greedy = masked_q(q, avail).argmax(dim=-1).cpu().numpy()  # [E, N]
        if explore:
            self.greedy_stale = True
            random = np.stack([masked_uniform_choice(views["avail"][:, i], self.rng) for i in range(N)], axis=1)
            greedy = np.where(self.rng.random((E, N)) < self.epsilon, random, greedy)
        else:
            self.greedy_stale = False
        self.last_action[explore] = greedy.astype(np.int64)
        return [greedy[:, i].astype(np.int64) for i in range(N)]

    def agent_inputs(self, obs: torch.Tensor, last_action: torch.Tensor) -> torch.Tensor:
        """obs [..., N, O], last_action [..., N] (−1 = none) -> inputs [..., N, D]:
        obs ⊕ one-hot id (shared networks) ⊕ one-hot last action."""
        parts = [obs]
        N, A = self.spec.n_agents, self.buffer.A
        if self.config.share_params:
            parts.append(torch.eye(N, device=obs.device).expand(*obs.shape[:-1], N))
        if self.config.obs_last_action:
            parts.append(F.one_hot(last_action + 1, A + 1)[..., 1:].to(obs.dtype))
        return torch.cat(parts, dim=-1)

    def observe(self, step: Step, actions: list[np.ndarray], nxt: Step) -> None:
        self.buffer.add(step, actions, nxt)
        self.env_steps += step.n_envs

    def ready(self, total_env_steps: int) -> bool:
        """batch_size episodes stored and a new episode finished since the last update."""
        return len(self.buffer) >= self.config.batch_size and self.buffer.episodes > self.trained_at_episode

    # -- learning ----------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        c = self.config
        batch = self.buffer.sample(c.batch_size, self.rng, self.device)
        loss, metrics = self.loss(batch)
        self.optimizer.zero_grad()
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_([*self.agents.parameters(), *self.mixer.parameters()], c.grad_norm_clip)
        self.optimizer.step()
        self.updates += 1
        self.trained_at_episode = self.buffer.episodes
        self.update_targets()
        return metrics | {"grad_norm": float(grad_norm), "epsilon": self.epsilon}

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked TD loss of a batch of episodes against `targets`."""
        q = self.unroll(self.agents, batch)  # [B, L+1, N, A]
        targets = self.targets(batch, q.detach())
        q_taken = q[:, :-1].gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)
        if self.config.dead_agent_q == "zero":
            q_taken = torch.where(batch["alive"][:, :-1], q_taken, 0.0)
        q_tot = self.mixer(q_taken, batch["state"][:, :-1]).squeeze(-1)
        return td_loss(q_tot, targets, batch["filled"])

    @torch.no_grad()
    def targets(self, batch: dict[str, torch.Tensor], q: torch.Tensor) -> torch.Tensor:
        """y [B, L] (double-Q, TD(λ)); q [B, L+1, N, A] are the online utilities. A time-out
        ends the target unless `truncation` is 'bootstrap'; dead agents' bootstrap utilities
        are 0 when `dead_agent_q` is 'zero'."""
        c = self.config
        ends = batch["terminated"] if c.truncation == "bootstrap" else batch["terminated"] | batch["truncated"]
        q_next, _ = next_agent_values(q[:, 1:], self.unroll(self.target_agents, batch)[:, 1:], batch["avail"][:, 1:], c.double_q)
        if c.dead_agent_q == "zero":
            q_next = torch.where(batch["alive"][:, 1:], q_next, 0.0)
        value_next = self.target_mixer(q_next, batch["state"][:, 1:]).squeeze(-1)  # [B, L]
        return lambda_targets(batch["reward"], ends, batch["filled"], value_next, c.gamma, c.td_lambda)

    def unroll(self, agents: AgentQNets, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Utilities at every view of the sampled episodes from a zero GRU state: [B, L+1, N, A]."""
        obs, actions = batch["obs"], batch["actions"]
        B, L1, N, _ = obs.shape
        last = torch.cat([torch.full((B, 1, N), -1, dtype=actions.dtype, device=actions.device), actions], dim=1)
        inputs = self.agent_inputs(obs, last)
        h = torch.zeros(B, N, agents.hidden_dim, device=obs.device)
        qs = []
        for t in range(L1):
            q, h = agents(inputs[:, t], h)
            qs.append(q)
        return torch.stack(qs, dim=1)

    def update_targets(self) -> None:
        c = self.config
        if c.target_update == "polyak":
            polyak_update(self.target_agents, self.agents, c.tau)
            polyak_update(self.target_mixer, self.mixer, c.tau)
        elif self.buffer.episodes - self.target_updated_at_episode >= c.target_update_interval:
            self.target_agents.load_state_dict(self.agents.state_dict())
            self.target_mixer.load_state_dict(self.mixer.state_dict())
            self.target_updated_at_episode = self.buffer.episodes

    def policy_probs(self, step: Step) -> list[np.ndarray] | None:
        """The greedy (evaluation) policy at the first row from an episode start: one-hot."""
        views = self.buffer.views(step, final=False)
        with torch.no_grad():
            obs, avail = torch.as_tensor(views["obs"][:1], device=self.device), torch.as_tensor(views["avail"][:1], device=self.device)
            h = torch.zeros(1, self.spec.n_agents, self.agents.hidden_dim, device=self.device)
            none = torch.full((1, self.spec.n_agents), -1, dtype=torch.int64, device=self.device)
            q, _ = self.agents(self.agent_inputs(obs, none), h)
            best = masked_q(q, avail).argmax(dim=-1)[0].cpu().numpy()
        return [np.eye(s.n)[best[i]] for i, s in enumerate(self.spec.action_spaces)]

    # -- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        for name in ("agents", "mixer", "target_agents", "target_mixer", "optimizer"):
            state[name] = getattr(self, name).state_dict()
        state["buffer"] = self.buffer.state_dict()
        state["hidden"] = {k: None if v is None else v.cpu().clone() for k, v in self.hidden.items()}
        state["last_action"] = {k: None if v is None else v.copy() for k, v in self.last_action.items()}
        for name in ("env_steps", "updates", "trained_at_episode", "target_updated_at_episode", "greedy_stale"):
            state[name] = getattr(self, name)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for name in ("agents", "mixer", "target_agents", "target_mixer", "optimizer"):
            getattr(self, name).load_state_dict(state[name])
        self.buffer.load_state_dict(state["buffer"])
        self.hidden = {k: None if v is None else v.to(self.device).clone() for k, v in state["hidden"].items()}
        self.last_action = {k: None if v is None else v.copy() for k, v in state["last_action"].items()}
        for name in ("env_steps", "updates", "trained_at_episode", "target_updated_at_episode", "greedy_stale"):
            setattr(self, name, state[name])


def masked_q(q: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """q [..., A] with unavailable actions (avail False) set to MASKED_LOGIT (finite, so a row
    with no available action, e.g. padding, stays finite)."""
    return q.masked_fill(~avail, MASKED_LOGIT)


def next_agent_values(q_online: torch.Tensor, q_target: torch.Tensor, avail: torch.Tensor, double_q: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-agent bootstrap utilities at the next views. Double Q: Q̄ᵢ(τ', argmax_{a avail} Qᵢ(τ', a));
    else max_{a avail} Q̄ᵢ(τ', a). q_online, q_target [..., N, A], avail [..., N, A] bool.
    Returns (values [..., N], actions [..., N]); rows without any available action give 0."""
    chooser = q_online if double_q else q_target
    actions = masked_q(chooser, avail).argmax(dim=-1)
    values = q_target.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return torch.where(avail.any(dim=-1), values, 0.0), actions


def lambda_targets(reward: torch.Tensor, terminated: torch.Tensor, filled: torch.Tensor, value_next: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """TD(λ) targets, backwards in time (pymarl2 build_td_lambda_targets):
    y_t = r_t + γ(1 − end_t)·[(1 − λ) V̄_{t+1} + λ y_{t+1}], where y_{t+1} is replaced by V̄_{t+1}
    at an episode's last transition; λ = 0 is the 1-step target. All [B, L]; `terminated` marks
    the transitions that end the target (end_t); V̄_{t+1} = Q̄_tot at the view after transition
    t (the true last view for the final one)."""
    not_done = 1.0 - terminated.float()
    targets = torch.zeros_like(value_next)
    ahead = value_next[:, -1]
    for t in reversed(range(reward.shape[1])):
        cont = value_next[:, t]
        if lam > 0 and t + 1 < reward.shape[1]:
            cont = torch.where(filled[:, t + 1], (1 - lam) * value_next[:, t] + lam * ahead, value_next[:, t])
        targets[:, t] = reward[:, t] + gamma * not_done[:, t] * cont
        ahead = targets[:, t]
    return targets


def td_loss(q_tot: torch.Tensor, targets: torch.Tensor, filled: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Masked squared TD error, Σ filled·(Q_tot − y)² / Σ filled (padding excluded).
    q_tot, targets [B, L]; filled [B, L] bool; targets carry no gradient."""
    td = torch.where(filled, q_tot - targets.detach(), 0.0)
    n = filled.sum().clamp_min(1)
    loss = td.pow(2).sum() / n
    metrics = {
        "loss": loss.item(),
        "td_error_abs": (td.abs().sum() / n).item(),
        "q_taken_mean": (torch.where(filled, q_tot, 0.0).sum() / n).item(),
        "target_mean": (torch.where(filled, targets, 0.0).sum() / n).item(),
    }
    return loss, metrics
