"""Every speed-up keeps the results (docs/speed.md): each test runs the fast path and a
plain reference of the same computation — written here as the code was before the
speed-up — on the same seed, and asserts equal values (CPU, tolerance 1e-6)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

import envs
from algos.common.networks import TwinQ, plain_mlp, polyak_update
from algos.common.off_policy import read_metrics
from algos.common.actor_critic import sample
from algos.common.registry import algorithm_class
from algos.common.replay import Batch, ReplayBuffer
from algos.hatd3 import actor_loss as hatd3_actor_loss
from envs.base import EnvSpec, Step

from algo_helpers import small_config, toy_env

torch.set_num_threads(1)
TOL = dict(rtol=1e-6, atol=1e-6)


# -- plain references ------------------------------------------------------------------------
class PlainReplay:
    """The replay buffer before the speed-up: numpy arrays per field on the host, one
    Python step per n-step offset, tensors built field by field at sampling time."""

    def __init__(self, spec: EnvSpec, capacity: int, n_envs: int, gamma: float, n_step: int):
        self.spec, self.n_envs, self.gamma, self.n_step = spec, n_envs, gamma, n_step
        self.T, self.pos, self.filled, self.data = -(-capacity // n_envs), 0, 0, {}

    def __len__(self) -> int:
        return self.filled * self.n_envs

    def add(self, step: Step, actions: list[np.ndarray], nxt: Step) -> None:
        row = {"state": step.state, "next_state": nxt.info["final_state"], "alive": step.alive, "reward": nxt.reward,
               "terminated": nxt.terminated, "done": nxt.terminated | nxt.truncated}
        final_avail = nxt.avail_actions  # next masks at an episode end: the reset episode's (HARL)
        for i, space in enumerate(self.spec.action_spaces):
            row |= {f"obs_{i}": step.obs[i], f"next_obs_{i}": nxt.info["final_obs"][i], f"action_{i}": actions[i]}
            if isinstance(space, spaces.Discrete):
                row[f"avail_{i}"] = np.broadcast_to(True if step.avail_actions is None else step.avail_actions[i], (self.n_envs, space.n))
                row[f"next_avail_{i}"] = np.broadcast_to(True if final_avail is None else final_avail[i], (self.n_envs, space.n))
        for key, value in row.items():
            value = np.asarray(value)
            self.data.setdefault(key, np.zeros((self.T, *value.shape), value.dtype))[self.pos] = value
        self.pos, self.filled = (self.pos + 1) % self.T, min(self.filled + 1, self.T)

    def n_step_window(self, t: np.ndarray, e: np.ndarray):
        age = ((self.pos - 1) % self.T - t) % self.T
        reward, going, last, k = np.zeros(t.shape), np.ones(t.shape, bool), t.copy(), np.zeros(t.shape, np.int64)
        for j in range(self.n_step):
            going &= j <= age
            row = (t + j) % self.T
            reward += np.where(going, self.gamma**j * self.data["reward"][row, e], 0.0)
            last = np.where(going, row, last)
            k += going
            going &= ~self.data["done"][row, e]
        return last, reward.astype(np.float32), (self.gamma**k).astype(np.float32)

    def sample(self, batch_size: int, rng: np.random.Generator, device=None) -> Batch:
        flat = rng.choice(len(self), size=batch_size, replace=False)
        t, e = flat // self.n_envs, flat % self.n_envs
        last, reward, discount = self.n_step_window(t, e)
        d, f = self.data, lambda x: torch.as_tensor(np.asarray(x, np.float32))
        actions, avail, next_avail = [], [], []
        for i, space in enumerate(self.spec.action_spaces):
            discrete = isinstance(space, spaces.Discrete)
            actions.append(f(np.eye(space.n)[d[f"action_{i}"][t, e]]) if discrete else f(d[f"action_{i}"][t, e]))
            avail.append(torch.as_tensor(d[f"avail_{i}"][t, e]) if discrete else None)
            next_avail.append(torch.as_tensor(d[f"next_avail_{i}"][last, e]) if discrete else None)
        n = self.spec.n_agents
        return Batch(f(d["state"][t, e]), [f(d[f"obs_{i}"][t, e]) for i in range(n)], actions, avail, f(d["alive"][t, e]),
                     f(reward)[:, None], f(discount)[:, None], f(d["terminated"][last, e])[:, None], f(d["next_state"][last, e]),
                     [f(d[f"next_obs_{i}"][last, e]) for i in range(n)], next_avail)


def plain_twin_q(critic: TwinQ) -> tuple[nn.Sequential, nn.Sequential]:
    """Two ordinary PlainMLPs holding the stacked critic's weights, head by head."""
    sizes = [critic.weights[0].shape[2], *(w.shape[1] for w in critic.weights)]
    heads = (plain_mlp(sizes), plain_mlp(sizes))
    with torch.no_grad():
        for k, head in enumerate(heads):
            for layer, (w, b) in zip([m for m in head if isinstance(m, nn.Linear)], zip(critic.weights, critic.biases)):
                layer.weight.copy_(w[k])
                layer.bias.copy_(b[k])
    return heads


def plain_polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.mul_(1 - tau).add_(s, alpha=tau)
        for t, s in zip(target.buffers(), source.buffers()):
            t.copy_(s)


def plain_hasac_update(algo) -> dict[str, float]:
    """HASAC's update() before the speed-ups: every agent's pre-update sample is drawn,
    every agent's post-update sample is redrawn, metrics are read one by one; the
    temperatures as HARL (every row; α_c on the log π of the actor losses)."""
    batch = algo.buffer.sample(algo.config.batch_size, algo.rng)
    metrics = algo.critic_step(batch, algo.soft_next_value(batch))
    algo.critic.requires_grad_(False)
    with torch.no_grad():
        actions, log_probs = algo.sample_joint(batch.obs, batch.avail)
    every_row = torch.ones_like(batch.reward)
    for i in algo.rng.permutation(algo.spec.n_agents):
        log_probs[i], actor_metrics = algo.actor_step(i, batch, actions)
        metrics |= actor_metrics | algo.temperature_step(i, log_probs[i], every_row)
        with torch.no_grad():
            actions[i], _ = algo.actors[i](batch.obs[i], batch.avail[i], algo.generator)
    algo.critic.requires_grad_(True)
    metrics |= algo.temperature_step(algo.spec.n_agents, sum(log_probs), every_row)
    plain_polyak(algo.critic_target, algo.critic, algo.config.tau)
    algo.updates += 1
    return {k: float(v) for k, v in metrics.items()}


def plain_hatd3_update(algo) -> dict[str, float]:
    """HATD3's update() before the speed-ups: a no-grad pre-update pass, then each agent's
    own forward again inside its step through both critic heads, and a post-update pass
    for every agent."""
    batch = algo.buffer.sample(algo.config.batch_size, algo.rng)
    metrics = algo.critic_step(batch, algo.target_next_value(batch))
    algo.updates += 1
    if algo.updates % algo.config.policy_freq == 0:
        algo.critic.requires_grad_(False)
        with torch.no_grad():
            actions = [actor(obs) for actor, obs in zip(algo.actors, batch.obs)]
        for i in algo.rng.permutation(algo.spec.n_agents):
            joint = [algo.actors[i](batch.obs[i]) if j == i else a for j, a in enumerate(actions)]
            loss, actor_metrics = hatd3_actor_loss(algo.critic(batch.state, joint)[0], batch.valid[:, i])  # both heads run
            algo.actor_optimizers[i].zero_grad()
            loss.backward()
            algo.actor_optimizers[i].step()
            metrics |= {f"{k}/agent_{i}": v for k, v in actor_metrics.items()}
            with torch.no_grad():
                actions[i] = algo.actors[i](batch.obs[i])
        algo.critic.requires_grad_(True)
        plain_polyak(algo.critic_target, algo.critic, algo.config.tau)
        plain_polyak(algo.actors_target, algo.actors, algo.config.tau)
    return {k: float(v) for k, v in metrics.items()}


PLAIN_UPDATES = {"hasac": plain_hasac_update, "hatd3": plain_hatd3_update}


def make_plain(algo) -> Any:
    """The same learner with every speed-up replaced by its plain reference: host replay,
    per-tensor Adam, per-head critic, the update above."""
    c = algo.config
    plain_buffer = PlainReplay(algo.spec, c.buffer_size, algo.n_envs, c.gamma, c.n_step)
    algo.buffer = plain_buffer
    algo.critic.batched = algo.critic_target.batched = False
    algo.critic_optimizer = torch.optim.Adam(algo.critic.parameters(), lr=c.critic_lr, foreach=False)
    algo.actor_optimizers = [torch.optim.Adam(a.parameters(), lr=c.lr, foreach=False) for a in algo.actors]
    if hasattr(algo, "alpha_optimizers"):
        algo.alpha_optimizers = [torch.optim.Adam([p], lr=c.alpha_lr, foreach=False) for p in algo.log_alpha]
    algo.update = lambda: PLAIN_UPDATES[type(algo).__name__.lower()](algo)
    return algo


# -- synthetic transitions ---------------------------------------------------------------------
def mixed_spec() -> EnvSpec:
    """Agent 0 Box(2), agent 1 Discrete(4) with masks; state 3."""
    return EnvSpec("toy", "mixed", 2, (spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (2,), np.float32)),
                   spaces.Box(-1, 1, (3,), np.float32), (spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(4)), 10)


def random_transitions(spec: EnvSpec, E: int, steps: int, seed: int = 0):
    """(step, actions, nxt) triples with random views, masks, deaths and both kinds of end."""
    rng = np.random.default_rng(seed)

    def view() -> Step:
        avail = rng.random((E, 4)) < 0.7
        avail[:, 0] = True
        return Step([rng.standard_normal((E, 3)).astype(np.float32), rng.standard_normal((E, 2)).astype(np.float32)],
                    rng.standard_normal((E, 3)).astype(np.float32), rng.standard_normal(E).astype(np.float32),
                    rng.random(E) < 0.1, rng.random(E) < 0.1, [np.ones((E, 2), bool), avail], rng.random((E, 2)) < 0.9, {})

    step = view()
    for _ in range(steps):
        nxt = view()
        final = view()
        nxt.info = {"final_obs": final.obs, "final_state": final.state, "final_avail_actions": final.avail_actions}
        yield step, [rng.uniform(-1, 1, (E, 2)).astype(np.float32), rng.integers(0, 4, E)], nxt
        step = nxt


# -- tests -----------------------------------------------------------------------------------
@pytest.mark.parametrize("capacity", [24, 1000])  # with and without wraparound
def test_device_replay_samples_what_the_host_replay_sampled(capacity):
    spec, E = mixed_spec(), 3
    fast, plain = ReplayBuffer(spec, capacity, E, 0.9, 4), PlainReplay(spec, capacity, E, 0.9, 4)
    for step, actions, nxt in random_transitions(spec, E, 17):
        fast.add(step, actions, nxt)
        plain.add(step, actions, nxt)
    for seed in range(3):
        a, b = fast.sample(20, np.random.default_rng(seed)), plain.sample(20, np.random.default_rng(seed))
        for name, x, y in zip(Batch._fields, a, b):
            for u, v in zip(x, y) if isinstance(x, list) else [(x, y)]:
                assert (u is None) == (v is None), name
                if u is not None:
                    torch.testing.assert_close(u, v, **TOL, msg=name)


def test_replay_state_dict_round_trips_and_refuses_another_layout():
    spec, E = mixed_spec(), 2
    buffer = ReplayBuffer(spec, 40, E, 0.9, 3)
    for step, actions, nxt in random_transitions(spec, E, 7):
        buffer.add(step, actions, nxt)
    copy_ = ReplayBuffer(spec, 40, E, 0.9, 3)
    copy_.load_state_dict(buffer.state_dict())
    assert torch.equal(copy_.sample(10, np.random.default_rng(1)).state, buffer.sample(10, np.random.default_rng(1)).state)
    with pytest.raises(ValueError, match="layout"):
        ReplayBuffer(toy_env().spec, 40, E, 0.9, 3).load_state_dict(buffer.state_dict())


@pytest.mark.parametrize("batched", [False, True])
def test_twin_critic_heads_equal_two_plain_mlps_in_values_and_gradients(batched):
    torch.manual_seed(0)
    critic = TwinQ(5, 3, [16, 8], batched=batched)
    torch.manual_seed(0)  # the stacked heads start as two PlainMLPs built one after the other
    heads = (plain_mlp([8, 16, 8, 1]), plain_mlp([8, 16, 8, 1]))
    state, action = torch.randn(7, 5), torch.randn(7, 3, requires_grad=True)
    q1, q2 = critic(state, [action])
    x = torch.cat([state, action], -1)
    torch.testing.assert_close(q1, heads[0](x), **TOL)
    torch.testing.assert_close(q2, heads[1](x), **TOL)
    (q1.square().sum() + q2.sum()).backward()
    (heads[0](x).square().sum() + heads[1](x).sum()).backward()
    for k, head in enumerate(heads):
        for layer, w in zip([m for m in head if isinstance(m, nn.Linear)], critic.weights):
            torch.testing.assert_close(w.grad[k], layer.weight.grad, **TOL)


def test_foreach_polyak_equals_per_tensor_update():
    source, target = TwinQ(4, 2, [8]), TwinQ(4, 2, [8])
    reference = copy.deepcopy(target)
    polyak_update(target, source, 0.05)
    plain_polyak(reference, source, 0.05)
    for a, b in zip(target.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, **TOL)


def test_read_metrics_moves_tensors_once_and_keeps_floats():
    metrics = read_metrics({"a": torch.tensor(1.5), "b": 2.0, "c": torch.tensor([3.0])})
    assert metrics == {"a": 1.5, "b": 2.0, "c": 3.0} and all(type(v) is float for v in metrics.values())


def matrix_env(n_envs: int = 8):
    return envs.make("matrix", "climbing", n_envs=n_envs, seed=0)


CASES = {  # name: (algorithm, env factory, config overrides)
    "hasac-box": ("hasac", toy_env, {"auto_alpha": True}),
    "hasac-box-fixed-alpha": ("hasac", toy_env, {}),
    "hasac-discrete-gumbel": ("hasac", matrix_env, {"auto_alpha": True}),
    "hasac-discrete-expected": ("hasac", matrix_env, {"discrete_actor_loss": "expected"}),
    "hatd3": ("hatd3", toy_env, {"policy_freq": 1}),
    "hatd3-delayed": ("hatd3", toy_env, {}),
}


@pytest.mark.parametrize("case,batched", [(case, False) for case in CASES] + [("hasac-discrete-gumbel", True), ("hatd3", True)])
def test_fast_update_has_the_losses_of_the_plain_update(case, batched):
    name, make_env, overrides = CASES[case]
    runs = []
    for fast in (True, False):
        env = make_env()
        algo = algorithm_class(name)(env.spec, small_config(name, **overrides), env.n_envs, torch.device("cpu"), 3)
        if fast:
            algo.critic.batched = algo.critic_target.batched = batched
        else:
            make_plain(algo)
        history, step, total = [], env.reset(3), 0
        while algo.updates < 8:
            actions = algo.act(step, explore=True)
            nxt = env.step(actions)
            total += env.n_envs
            algo.observe(step, actions, nxt)
            while algo.ready(total):
                history.append(algo.update())
            step = nxt
        runs.append((history, [a.copy() for a in algo.act(step, explore=False)]))
    (fast_history, fast_actions), (plain_history, plain_actions) = runs
    assert len(fast_history) == len(plain_history) > 0
    for fast_metrics, plain_metrics in zip(fast_history, plain_history):
        assert fast_metrics.keys() == plain_metrics.keys()
        for key in fast_metrics:
            assert fast_metrics[key] == pytest.approx(plain_metrics[key], rel=1e-6, abs=1e-6), key
    for a, b in zip(fast_actions, plain_actions):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["hasac", "hatd3"])
def test_bf16_update_runs_and_stays_near_fp32(name):
    """bf16 autocast is opt-in and not bit-equal; its first update's critic loss stays
    within a few percent of fp32's on the same batch."""
    losses = []
    for bf16 in (False, True):
        env = toy_env()
        algo = algorithm_class(name)(env.spec, small_config(name, bf16=bf16, policy_freq=1) if name == "hatd3"
                                     else small_config(name, bf16=bf16), env.n_envs, torch.device("cpu"), 5)
        step, total = env.reset(5), 0
        while algo.updates == 0:
            actions = algo.act(step)
            nxt = env.step(actions)
            total += env.n_envs
            algo.observe(step, actions, nxt)
            metrics = algo.update() if algo.ready(total) else None
            step = nxt
        assert all(np.isfinite(v) for v in metrics.values())
        losses.append(metrics["loss/critic"])
    assert losses[1] == pytest.approx(losses[0], rel=0.05)


def plain_on_policy_act(algo, step: Step) -> list[np.ndarray]:
    """OnPolicyLearner.act(explore=True) before the speed-up: validated distributions and
    two device→host copies per agent."""
    E, starts = step.n_envs, np.asarray(step.done, bool).copy()
    hidden = algo.hidden
    if algo.hidden_shape is not None and (hidden is None or hidden[0].shape[0] != E):
        hidden, starts[:] = [torch.zeros(E, *algo.hidden_shape) for _ in range(algo.spec.n_agents)], True
    actions, raw, log_probs, hidden_in, hidden_out = [], [], [], [], []
    with torch.no_grad():
        for i in range(algo.spec.n_agents):
            actor = algo.actors[algo.group_of[i]]
            obs, avail = algo.actor_inputs(step.obs[i], step.avail_actions, i)
            h = None if hidden is None else hidden[i] * torch.as_tensor(~starts).view(-1, 1, 1).float()
            x, h_next = actor.features(obs[None], h, torch.as_tensor(starts)[None])
            out = actor.head(x[0])
            if algo.bounds[i] is None:
                dist = torch.distributions.Categorical(logits=out if avail is None else out.masked_fill(~avail, -1e10))
            else:
                dist = torch.distributions.Normal(out, (torch.sigmoid(actor.log_std / actor.x_coef) * actor.y_coef).expand_as(out))
            a = sample(dist, algo.generator)
            log_probs.append((dist.log_prob(a) if algo.bounds[i] is None else dist.log_prob(a).sum(-1)).cpu().numpy())
            raw.append(a.cpu().numpy())
            hidden_in.append(h)
            hidden_out.append(h_next)
            actions.append(raw[-1].astype(np.int64) if algo.bounds[i] is None else raw[-1].astype(np.float32))  # unclipped, as HARL
    if hidden is not None:
        algo.hidden = hidden_out
    algo.pending = {"raw": raw, "log_prob": log_probs, "starts": starts,
                    "hidden": None if hidden is None else [h.cpu().numpy() for h in hidden_in]}
    return actions


@pytest.mark.parametrize("name,make_env,recurrent", [("happo", toy_env, False), ("mappo", matrix_env, False), ("happo", matrix_env, True)])
def test_on_policy_act_with_one_copy_equals_the_plain_act(name, make_env, recurrent):
    runs = []
    for fast in (True, False):
        env = make_env()
        fields = dict(hidden_sizes=[16], episode_length=4, ppo_epoch=1, critic_epoch=1, use_recurrent_policy=recurrent,
                      data_chunk_length=2)
        if name == "mappo":
            fields["share_params"] = True
        algo = algorithm_class(name)(env.spec, algorithm_class(name).Config(**fields), env.n_envs, torch.device("cpu"), 2)
        step, seen, metrics = env.reset(2), [], []
        for _ in range(9):
            actions = algo.act(step) if fast else plain_on_policy_act(algo, step)
            seen.append([a.copy() for a in actions] + [np.asarray(lp).copy() for lp in algo.pending["log_prob"]])
            nxt = env.step(actions)
            algo.observe(step, actions, nxt)
            if algo.ready(0):
                metrics.append(algo.update())
            step = nxt
        runs.append((seen, metrics))
    (fast_seen, fast_metrics), (plain_seen, plain_metrics) = runs
    for a, b in zip(fast_seen, plain_seen):
        for x, y in zip(a, b):
            assert x.dtype == y.dtype
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)
    assert len(fast_metrics) == 2 and fast_metrics == plain_metrics
