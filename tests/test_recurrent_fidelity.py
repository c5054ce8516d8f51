"""HARL's on-policy code with GRU actors (use_recurrent_policy), against independent step-by-
step computations: the recurrent critic (switch `recurrent_critic`, docs/fidelity.md P5) and
HAPPO's factor over the whole rollout (switch `factor_hidden`, P7); their alternatives, and
where they apply."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from algos.common.ppo import gae
from algos.common.rollout import to_chunks
from envs.errors import ConfigError

from algo_helpers import masked_env, toy_env

try:  # tests/ on sys.path (pytest's default) or the repo root
    from test_on_policy import build_on_policy
except ImportError:
    from tests.test_on_policy import build_on_policy

torch.set_num_threads(1)

T, L = 8, 4  # masked_env's episodes last 5 steps: a reset inside every rollout, chunks starting mid-episode
GRU = dict(use_recurrent_policy=True, data_chunk_length=L, episode_length=T)


def fill(algo, env, steps: int):
    """act/observe for `steps` vectorised steps, updating whenever the rollout is full
    except at the very end: returns with the last rollout stored and not yet trained on."""
    step = env.reset(0)
    for n in range(steps):
        actions = algo.act(step)
        nxt = env.step(actions)
        algo.observe(step, actions, nxt)
        if algo.ready(0) and n < steps - 1:
            algo.update()
        step = nxt
    assert algo.buffer.full
    return algo.buffer.tensors(algo.device)


def no_starts(E: int) -> torch.Tensor:
    return torch.zeros(1, E, dtype=torch.bool)


# -- P5: the recurrent critic -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["happo", "mappo"])
def test_recurrent_critic_values_equal_the_gru_run_step_by_step_from_zero(name):
    env = masked_env()
    algo = build_on_policy(name, env, **GRU)
    rollout = fill(algo, env, T)  # the first rollout: the critic's state starts from zero
    E, critic = env.n_envs, algo.critic
    assert critic.rnn is not None and rollout.starts[0].all() and rollout.starts[1:].any()
    h, fed, value, next_value = torch.zeros(E, *algo.hidden_shape), [], [], []
    with torch.no_grad():
        for t in range(T):
            h = h * (~rollout.starts[t]).float().view(-1, 1, 1)  # reset at episode starts
            fed.append(h)
            v, h = critic(rollout.state[t][None], h, no_starts(E))
            value.append(v[0])
            next_value.append(critic(rollout.final_state[t][None], h, no_starts(E))[0][0])
    value, next_value = torch.stack(value), torch.stack(next_value)
    assert torch.allclose(rollout.critic_hidden, torch.stack(fed), atol=1e-6)  # the states stored while acting
    # where the episode goes on, V(s'_t) is the next step's V (HARL's value_preds[t + 1])
    going_on = ~rollout.done[:-1]
    assert torch.allclose(next_value[:-1][going_on], value[1:][going_on], atol=1e-5)
    v_old, returns, advantage = algo.returns(rollout)
    assert torch.allclose(v_old, value, atol=1e-5)
    c, norm = algo.config, algo.value_norm.denormalize
    expected, _ = gae(rollout.reward, norm(value), norm(next_value), rollout.terminated, rollout.truncated, c.gamma, c.gae_lambda)
    assert torch.allclose(advantage, expected, atol=1e-4)


def critic_calls(algo) -> list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]:
    """Record the (state, hidden, starts) of every critic forward from now on."""
    calls, forward = [], algo.critic.forward

    def recording(state, hidden, starts):
        calls.append((state.detach().clone(), None if hidden is None else hidden.detach().clone(), starts.clone()))
        return forward(state, hidden, starts)

    algo.critic.forward = recording
    return calls


def test_recurrent_critic_trains_on_chunks_from_the_stored_states():
    env = masked_env()
    algo = build_on_policy("happo", env, **GRU, critic_epoch=1, num_mini_batch=1)
    rollout = fill(algo, env, T)
    algo.minibatches = lambda n: [np.arange(n)]  # columns in their natural order
    calls = critic_calls(algo)
    algo.update()
    (state, hidden, starts), = [call for call in calls if call[0].shape[0] == L]  # the one training step
    E = env.n_envs
    assert state.shape[1] == (T // L) * E
    for k in range(T // L):
        for e in range(E):
            column, first = k * E + e, k * L
            assert torch.equal(state[:, column], rollout.state[first:first + L, e])
            assert torch.equal(starts[:, column], rollout.starts[first:first + L, e])
            assert torch.equal(hidden[column], rollout.critic_hidden[first, e])  # the stored state of its first step
    assert hidden[E:].abs().sum() > 0  # the second chunks start mid-episode


def test_mlp_critic_alternative_trains_on_single_steps_without_a_gru():
    env = masked_env()
    algo = build_on_policy("happo", env, **GRU, recurrent_critic="mlp", critic_epoch=1, num_mini_batch=1)
    rollout = fill(algo, env, T)
    assert algo.critic.rnn is None and rollout.critic_hidden is None and algo.critic_hidden is None
    calls = critic_calls(algo)
    algo.update()
    assert [call[0].shape[:2] for call in calls] == [(1, T * env.n_envs)] * 3  # V, V(s'), then one training step
    assert all(hidden is None for _, hidden, _ in calls)


# -- P7: HAPPO's factor of a GRU actor --------------------------------------------------------
def log_probs_by_hand(actor, rollout, i: int, h: torch.Tensor, t0: int, t1: int) -> torch.Tensor:
    """log π_i(a_t|o_t) for t0 ≤ t < t1 [t1 − t0, E], running the actor one step at a time
    from `h` with resets at episode starts."""
    out = []
    with torch.no_grad():
        for t in range(t0, t1):
            h = h * (~rollout.starts[t]).float().view(-1, 1, 1)
            x, h = actor.features(rollout.obs[i][t][None], h, no_starts(h.shape[0]))
            out.append(actor.distribution(x[0], rollout.avail[i][t]).log_prob(rollout.action[i][t]))
    return torch.stack(out)


@pytest.mark.parametrize("factor_hidden", ["official", "chunks"])
def test_happo_factor_of_a_gru_actor(factor_hidden):
    env = masked_env()
    algo = build_on_policy("happo", env, **GRU, lr=0.05, ppo_epoch=3, num_mini_batch=1, factor_hidden=factor_hidden)
    rollout = fill(algo, env, 2 * T)  # the second rollout: its first hidden states are not zero
    assert rollout.hidden[0][0].abs().sum() > 0
    old_actors = copy.deepcopy(algo.actors)
    seen = []
    train_group = algo.train_group
    algo.train_group = lambda g, batch: seen.append((g, batch.factor.clone())) or train_group(g, batch)
    algo.update()
    (first, factor_first), (second, factor_second) = seen
    assert torch.equal(factor_first, torch.ones_like(factor_first))
    new_actor, old_actor = algo.actors[first], old_actors[first]
    # official: old and new actor each run once over the whole rollout from step 0's state
    whole = torch.exp(log_probs_by_hand(new_actor, rollout, first, rollout.hidden[first][0], 0, T)
                      - log_probs_by_hand(old_actor, rollout, first, rollout.hidden[first][0], 0, T))
    # chunks: the new actor over each chunk from its stored state, against the stored log-probs
    chunked = torch.exp(torch.cat([log_probs_by_hand(new_actor, rollout, first, rollout.hidden[first][k], k, k + L)
                                   for k in range(0, T, L)]) - rollout.log_prob[first])
    assert (whole - chunked).abs().max() > 1e-3  # the new actor's hidden states drift from the stored ones
    expected = whole if factor_hidden == "official" else chunked
    assert torch.allclose(factor_second, to_chunks(expected, L), atol=1e-5)


# -- where the switches apply -----------------------------------------------------------------
@pytest.mark.parametrize("fields", [dict(recurrent_critic="mlp"), dict(factor_hidden="chunks"),
                                    dict(recurrent_critic="gru", use_recurrent_policy=True, data_chunk_length=4),
                                    dict(factor_hidden="whole", use_recurrent_policy=True, data_chunk_length=4)])
def test_an_alternative_where_it_does_not_apply_or_an_unknown_value_is_a_config_error(fields):
    with pytest.raises(ConfigError, match="recurrent_critic|factor_hidden"):
        build_on_policy("happo", toy_env(), **fields)


def test_without_gru_actors_the_critic_is_an_mlp_and_stores_no_state():
    env = toy_env()
    algo = build_on_policy("mappo", env)
    assert algo.critic.rnn is None and algo.buffer.data.critic_hidden is None
