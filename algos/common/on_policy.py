"""What HAPPO and MAPPO share (HARL's on-policy HA runner): the config fields and the
learner that acts, stores a rollout and trains actors and critic on it. The pieces live
beside it: PPO's pure functions in ppo.py, the networks in actor_critic.py, the typed
rollout and actor batches in rollout.py. Each algorithm file keeps only how its actors are
grouped and the order and weighting of their updates.

Rollout layout: T = episode_length vectorised steps, E env copies, N agents (rollout.py).
The critic has V rows per env copy: V = 1 on one centralised state, V = N on one state per
agent (HARL's FP state, EnvSpec.agent_states): then every agent has its own V(s_i), GAE
and returns per row (reward and episode ends shared), the advantages normalised once over
all agents' active entries and agent i trained on its own row's (HARL
on_policy_ha_runner.py [47ba706] l.35-43; the critic's loss a plain mean over T·E·N rows,
v_critic.py [690fb1d] l.112).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from algos.base import AlgoConfig, Algorithm, PolicySample
from algos.common.actor_critic import Policy, VCritic, sample
from algos.common.ppo import ACTOR_METRICS, ValueNorm, gae, normalise_advantage, ppo_actor_loss, value_loss
from algos.common.rollout import ActorBatch, Rollout, RolloutBuffer, agent_batch, to_chunks
from envs.base import EnvSpec, Step
from envs.errors import ConfigError
from envs.fidelity import Switch, check_switches


@dataclass
class OnPolicyConfig(AlgoConfig):
    """Fields of HARL's on-policy HA runner; defaults are HARL's happo.yaml / mappo.yaml
    (harl/configs/algos_cfgs/), which agree on all of these."""

    on_policy: ClassVar[bool] = True
    agent_states: ClassVar[bool] = True

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
    """GRU actors whose hidden state resets at episode starts (and a GRU critic, see
    recurrent_critic)."""
    recurrent_n: int = 1
    """GRU layers."""
    data_chunk_length: int = 10
    """Steps per training sequence of a GRU actor or critic (truncated BPTT from the stored
    state)."""

    # Fidelity switches (docs/fidelity.md): "official" is HARL's behaviour.
    truncation: str = "official"
    """GAE at a time-limit truncation. 'official': HARL's bad_masks
    (on_policy_critic_buffer_ep.py l.97-125): the truncated step's advantage is 0 and its
    return V(s_t), so the step before bootstraps from V(s_t); 'bootstrap': the truncated step
    keeps δ = r + γ V(s_final) − V(s) with V of the true final state."""
    advantage_norm: str = "official"
    """Advantage normalisation. 'official': each actor over the active entries of the agents
    it trains (HARL happo.py/mappo.py train l.117-122 per agent, share_param_train
    l.165-180 over all agents for a shared actor); 'joint': once over every agent's active
    entries, the same advantages for every actor. With one state per agent HARL normalises
    once over every agent's active entries (happo.py l.117-122 apply to the EP state only),
    so the switch does not apply there."""
    recurrent_critic: str = "official"
    """Critic of GRU actors. 'official': V(s) has a GRU after its MLP too (HARL v_net.py
    l.33-39), its state carried through the rollout and reset at episode starts
    (on_policy_base_runner.py collect/insert), V and the bootstrap value read from the stored
    states (compute: get_values on the last state with rnn_states_critic[-1]), trained on
    data_chunk_length chunks from the stored states (v_critic.py train,
    on_policy_critic_buffer_ep.py recurrent_generator_critic); 'mlp': an MLP V(s) trained
    on single steps, as without GRU actors."""

    fidelity: ClassVar[dict[str, Switch]] = {
        "truncation": Switch(("bootstrap",)),
        "advantage_norm": Switch(("joint",), "HAPPO and per-agent MAPPO actors of several agents",
                                 lambda spec, c: spec.n_agents > 1 and not getattr(c, "share_params", False) and not spec.agent_states),
        "recurrent_critic": Switch(("mlp",), "GRU actors (use_recurrent_policy)", lambda spec, c: c.use_recurrent_policy),
    }

    def validate(self, spec: EnvSpec) -> None:
        check_switches(self, "algo", spec)
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


# -- the learner ----------------------------------------------------------------------------
class OnPolicyLearner(Algorithm):
    """Actors (one per group of agents; `actor_groups` decides sharing), one V(s) critic
    (recurrent with GRU actors, as HARL), ValueNorm, a rollout buffer. Subclasses define the
    groups and `train_actors`."""

    config: OnPolicyConfig

    def __init__(self, spec: EnvSpec, config: OnPolicyConfig, n_envs: int, device: torch.device, seed: int):
        super().__init__(spec, config, n_envs, device, seed)
        config.validate(spec)
        c, N = config, spec.n_agents
        self.groups = self.actor_groups()
        self.group_of = {i: g for g, agents in enumerate(self.groups) for i in agents}
        recurrent_critic = c.use_recurrent_policy and c.recurrent_critic == "official"
        self.L = c.data_chunk_length if c.use_recurrent_policy else 1  # actor chunk length
        self.critic_L = self.L if recurrent_critic else 1
        self.V = spec.critic_rows  # critic rows per env copy
        smallest = min((c.episode_length // self.critic_L) * n_envs * self.V,
                       (c.episode_length // self.L) * n_envs * min(len(g) for g in self.groups))
        if c.num_mini_batch > smallest:
            raise ConfigError(f"algo: num_mini_batch ({c.num_mini_batch}) exceeds the {smallest} samples of a rollout "
                              f"(episode_length {c.episode_length} × n_envs {n_envs}); lower num_mini_batch")
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        with torch.random.fork_rng(devices=[]):  # initial weights from the run's seed only
            torch.manual_seed(seed)
            self.actors = nn.ModuleList(
                [Policy(self.input_dim(g[0]), spec.action_spaces[g[0]], c.hidden_sizes, c.recurrent_n if c.use_recurrent_policy else None,
                        c.std_x_coef, c.std_y_coef) for g in self.groups]).to(self.device)
            self.critic = VCritic(spec.state_space.shape[0] // self.V, c.hidden_sizes, c.recurrent_n if recurrent_critic else None).to(self.device)
        self.value_norm = ValueNorm().to(self.device)
        self.actor_optimizers = [torch.optim.Adam(a.parameters(), lr=c.lr, eps=c.opti_eps) for a in self.actors]
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr, eps=c.opti_eps)
        self.hidden_shape = (c.recurrent_n, c.hidden_sizes[-1]) if c.use_recurrent_policy else None
        critic_hidden = (self.V * c.recurrent_n, c.hidden_sizes[-1]) if recurrent_critic else None
        self.buffer = RolloutBuffer(spec, c.episode_length, n_envs, self.hidden_shape, critic_hidden)
        self.hidden: list[torch.Tensor] | None = None  # training GRU states, N × [E, R, H]
        self.critic_hidden: torch.Tensor | None = None  # the recurrent critic's, [E·V, R, H]
        self.eval_hidden: list[torch.Tensor] | None = None  # evaluation GRU states
        self.pending: dict[str, np.ndarray] | None = None  # what act() drew, for observe()
        self.bounds = [(s.low, s.high) if isinstance(s, spaces.Box) else None for s in spec.action_spaces]
        self.env_steps = 0
        self.updates = 0

    @abstractmethod
    def actor_groups(self) -> list[list[int]]:
        """Agents served by each actor network, e.g. [[0], [1], [2]] or [[0, 1, 2]]."""

    @abstractmethod
    def train_actors(self, rollout: Rollout, advantage: torch.Tensor) -> dict[str, float]:
        """Train every actor on the rollout; `advantage` [T, E] (or [T, E, N], one per agent,
        with per-agent states) is GAE's, not yet normalised."""

    def adds_agent_id(self, g: int) -> bool:
        """Whether actor g's input carries a one-hot agent id after the observation."""
        return False

    def input_dim(self, i: int) -> int:
        """Actor input width: obs, plus N for a one-hot agent id where the actor adds one."""
        return self.spec.obs_spaces[i].shape[0] + (self.spec.n_agents if self.adds_agent_id(self.group_of[i]) else 0)

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
        # HARL sends the raw Gaussian sample (or mean) to the env, unclipped: the env decides
        # (MPE clips; MaMuJoCo's env.action_clip; docs/fidelity.md P8, E9)
        actions = [a if b is None else a.astype(np.float32) for a, b in zip(raw, self.bounds)]
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
        x = self.with_agent_id(torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device), i)
        mask = None
        if avail is not None and self.bounds[i] is None:
            mask = torch.as_tensor(np.asarray(avail[i]), dtype=torch.bool, device=self.device)
        return x, mask

    def with_agent_id(self, obs: torch.Tensor, i: int) -> torch.Tensor:
        """obs [..., O] ⊕ agent i's one-hot id [..., N] where its actor adds one, else obs."""
        if not self.adds_agent_id(self.group_of[i]):
            return obs
        return torch.cat([obs, F.one_hot(torch.full(obs.shape[:-1], i, device=obs.device), self.spec.n_agents).to(obs.dtype)], -1)

    @torch.no_grad()
    def critic_step(self, state: np.ndarray, starts: np.ndarray) -> np.ndarray | None:
        """The recurrent critic's GRU states fed at this step, one per critic row, stored as
        [E, V·R, H]; zero where an episode starts, and the next ones carried (HARL collect:
        get_values(share_obs[step], rnn_states_critic[step], masks[step])); None for an MLP
        critic."""
        if self.critic.rnn is None:
            return None
        E, V = len(starts), self.V
        h = self.critic_hidden
        if h is None or h.shape[0] != E * V:
            h = torch.zeros(E * V, *self.hidden_shape, device=self.device)
        starts_t = torch.as_tensor(np.repeat(starts, V), device=self.device)
        h = h * (~starts_t).view(-1, 1, 1).float()
        rows = torch.as_tensor(state, dtype=torch.float32, device=self.device).reshape(E * V, -1)
        _, self.critic_hidden = self.critic(rows[None], h, starts_t[None])
        return h.reshape(E, V * h.shape[1], h.shape[2]).cpu().numpy()

    def observe(self, step: Step, actions: list[np.ndarray], nxt: Step) -> None:
        assert self.pending is not None, "observe() needs the act(explore=True) that chose the actions"
        p, self.pending = self.pending, None
        avail = [None if b is not None else True if step.avail_actions is None else step.avail_actions[i]
                 for i, b in enumerate(self.bounds)]  # Discrete without masks: all available
        self.buffer.add(Rollout(
            state=step.state, final_state=nxt.info.get("final_state", nxt.state), alive=step.alive, reward=nxt.reward,
            terminated=nxt.terminated, truncated=nxt.truncated, starts=p["starts"], obs=list(step.obs),
            action=p["raw"], log_prob=p["log_prob"], avail=avail, hidden=p["hidden"],
            critic_hidden=self.critic_step(step.state, p["starts"])))
        self.env_steps += step.n_envs

    def ready(self, total_env_steps: int) -> bool:
        return self.buffer.full

    # -- learning -----------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        if self.config.use_linear_lr_decay:
            self.decay_learning_rates()
        rollout = self.buffer.tensors(self.device)
        v_old, returns, advantage = self.returns(rollout)
        metrics = self.train_actors(rollout, advantage)
        metrics |= self.train_critic(rollout, v_old, returns)
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
    def returns(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(V_old normalised, returns, Â) from the critic before this update: V_old and the
        returns [T, E·V] per critic row, Â [T, E] (or [T, E, N] with per-agent states)
        (HARL computes V at rollout time with the same parameters). A recurrent critic reads
        V(s_t) from the GRU state stored at t and V(s'_t) from the state it left after t: the
        next step's V where the episode goes on, the rollout's bootstrap value at its last
        step (HARL compute: get_values(share_obs[-1], rnn_states_critic[-1])), and at an
        episode end V(final state) from the episode's carried state (used by
        truncation='bootstrap' only; HARL masks it out)."""
        c, V = self.config, self.V
        T, E = rollout.reward.shape
        rows = T * E * V
        hidden = None if rollout.critic_hidden is None else split_rows(rollout.critic_hidden, V).flatten(0, 1)
        one_step = torch.zeros(1, rows, dtype=torch.bool, device=self.device)  # every row once, from its own state
        v_old, after = self.critic(split_rows(rollout.state, V).reshape(1, rows, -1), hidden, one_step)
        v_next, _ = self.critic(split_rows(rollout.final_state, V).reshape(1, rows, -1), after, one_step)
        v_old, v_next = v_old.view(T, E * V), v_next.view(T, E * V)
        if c.use_valuenorm:
            value, next_value = self.value_norm.denormalize(v_old), self.value_norm.denormalize(v_next)
        else:
            value, next_value = v_old, v_next
        reward, terminated, truncated = (repeat_rows(x, V) for x in (rollout.reward, rollout.terminated, rollout.truncated))
        advantage, returns = gae(reward, value, next_value, terminated, truncated,
                                 c.gamma, c.gae_lambda, bootstrap_truncation=c.truncation == "bootstrap")
        return v_old, returns, advantage if V == 1 else advantage.view(T, E, V)

    def actor_batch(self, rollout: Rollout, advantage: torch.Tensor, agents: list[int],
                    factor: torch.Tensor | None = None) -> ActorBatch:
        """The actor data of `agents` side by side (rollout.py `ActorBatch`), Â normalised
        over these agents' active entries (every agent's with advantage_norm 'joint', and
        with per-agent advantages [T, E, N], each agent then taking its own).
        `factor` is already in the chunked layout (HAPPO passes on the previous agent's)."""
        per_agent = advantage.dim() == 3
        joint = per_agent or self.config.advantage_norm == "joint"
        advantage = normalise_advantage(advantage, rollout.alive if joint else rollout.alive[..., agents])
        parts = []
        for i in agents:
            active = rollout.alive[..., i] if self.config.use_policy_active_masks else torch.ones_like(rollout.alive[..., i])
            own = advantage[..., i] if per_agent else advantage
            parts.append(agent_batch(rollout, i, self.with_agent_id(rollout.obs[i], i), own, active, self.L))
        batch = ActorBatch.cat(parts)
        return batch if factor is None else replace(batch, factor=factor)

    def minibatches(self, n_columns: int) -> list[np.ndarray]:
        return np.array_split(self.rng.permutation(n_columns), self.config.num_mini_batch)

    def train_group(self, g: int, batch: ActorBatch) -> dict[str, float]:
        """ppo_epoch × num_mini_batch clipped-surrogate steps of actor g; mean metrics. An
        actor whose samples are all inactive is left as it is, metrics 0 (HARL happo.py
        train l.114-115)."""
        c, actor, history = self.config, self.actors[g], []
        name = self.group_name(g)
        if not batch.active.any():
            return {f"{k}/{name}": 0.0 for k in ACTOR_METRICS}
        for _ in range(c.ppo_epoch):
            for idx in self.minibatches(batch.obs.shape[1]):
                mb = batch.columns(idx)
                log_prob, entropy = actor.evaluate(mb.obs, mb.hidden, mb.starts, mb.action, mb.avail)
                ratio = torch.exp(log_prob - mb.old_log_prob)
                loss, metrics = ppo_actor_loss(ratio, mb.advantage, mb.factor, entropy, mb.active, c.clip_param, c.entropy_coef)
                self.actor_optimizers[g].zero_grad()
                loss.backward()
                metrics["grad_norm/actor"] = nn.utils.clip_grad_norm_(actor.parameters(), c.max_grad_norm).item()
                self.actor_optimizers[g].step()
                history.append(metrics)
        return {f"{k}/{name}": float(np.mean([m[k] for m in history])) for k in ACTOR_METRICS}

    @torch.no_grad()
    def group_log_prob(self, g: int, batch: ActorBatch) -> torch.Tensor:
        """log π_g(a|o) [L, C] of the stored actions under actor g's current parameters."""
        return self.actors[g].evaluate(batch.obs, batch.hidden, batch.starts, batch.action, batch.avail)[0]

    def group_name(self, g: int) -> str:
        agents = self.groups[g]
        return f"agent_{agents[0]}" if len(agents) == 1 else "shared"

    def train_critic(self, rollout: Rollout, v_old: torch.Tensor, returns: torch.Tensor) -> dict[str, float]:
        """critic_epoch × num_mini_batch value-loss steps on the rollout's states with V_old
        and returns [T, E·V] (one column per critic row), in columns of critic_L steps: data_chunk_length chunks run from
        their stored GRU state for a recurrent critic (HARL recurrent_generator_critic),
        single steps otherwise. ValueNorm is updated with each mini-batch's returns before
        normalising them (as HARL)."""
        c, history, L, V = self.config, [], self.critic_L, self.V
        state, starts = split_rows(rollout.state, V), repeat_rows(rollout.starts, V)
        state, starts, v_old, returns_ = (to_chunks(x, L) for x in (state, starts, v_old, returns))
        hidden = None if rollout.critic_hidden is None else to_chunks(split_rows(rollout.critic_hidden, V), L)[0]
        for _ in range(c.critic_epoch):
            for idx in self.minibatches(state.shape[1]):
                target = returns_[:, idx].flatten()
                if c.use_valuenorm:
                    self.value_norm.update(target)
                    target = self.value_norm.normalize(target)
                value, _ = self.critic(state[:, idx], None if hidden is None else hidden[idx], starts[:, idx])
                loss, metrics = value_loss(value.flatten(), v_old[:, idx].flatten(), target, c.clip_param,
                                           c.huber_delta if c.use_huber else None, c.use_clipped_value_loss)
                self.critic_optimizer.zero_grad()
                (loss * c.value_loss_coef).backward()
                metrics["grad_norm/critic"] = nn.utils.clip_grad_norm_(self.critic.parameters(), c.max_grad_norm).item()
                self.critic_optimizer.step()
                history.append(metrics)
        out = {k: float(np.mean([m[k] for m in history])) for k in history[0]}
        return out | {"value/mean": float(returns.mean())}

    # -- checkpointing and probabilities -------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state |= {"actors": self.actors.state_dict(), "critic": self.critic.state_dict(), "value_norm": self.value_norm.state_dict(),
                  "critic_optimizer": self.critic_optimizer.state_dict(),
                  "actor_optimizers": [o.state_dict() for o in self.actor_optimizers],
                  "generator": self.generator.get_state(), "buffer": self.buffer.state_dict(),
                  "hidden": None if self.hidden is None else [h.cpu().clone() for h in self.hidden],
                  "eval_hidden": None if self.eval_hidden is None else [h.cpu().clone() for h in self.eval_hidden],
                  "critic_hidden": None if self.critic_hidden is None else self.critic_hidden.cpu().clone(),
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
        critic_hidden = state.get("critic_hidden")  # absent from checkpoints of before the recurrent critic
        self.critic_hidden = None if critic_hidden is None else critic_hidden.to(self.device)
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
        distribution: categorical, or the Gaussian (the entropy the PPO bonus uses; its sample
        goes to the env unclipped, as in `act`). GRU actors: None (their state along an episode is not tracked
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
                actions.append(a.astype(np.int64) if self.bounds[i] is None else a.astype(np.float32))
                entropies.append(entropy.cpu().numpy())
        return PolicySample(actions, np.stack(entropies).astype(np.float64))


def split_rows(x: torch.Tensor, V: int) -> torch.Tensor:
    """[T, E, V·k, ...] → [T, E·V, k, ...]: each env copy's V critic rows (a per-agent state
    [T, E, N·d] → [T, E·N, d]; stored GRU states [T, E, V·R, H] → [T, E·V, R, H])."""
    return x.reshape(x.shape[0], x.shape[1] * V, x.shape[2] // V, *x.shape[3:])


def repeat_rows(x: torch.Tensor, V: int) -> torch.Tensor:
    """[T, E] → [T, E·V]: a per-env quantity (reward, episode end) for each of its V rows."""
    return x.repeat_interleave(V, dim=1)
