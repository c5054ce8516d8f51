"""QMIX (algos/qmix.py, algos/common/mixing.py, algos/common/episode_buffer.py): mixer
monotonicity, matrix games (an additive game it solves, the climbing game it cannot),
action masks, padding masks, TD(λ) targets, ε schedule, exact resume, and a slow learning
check on discrete MPE."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

import envs
from algos.common.episode_buffer import EpisodeBuffer
from algos.common.mixing import QMixer
from algos.common.registry import check_compatible
from algos.qmix import Qmix, QmixConfig, lambda_targets, next_agent_values
from envs.base import VecEnv
from envs.errors import ConfigError

from algo_helpers import learn, run_loop
from algo_helpers import toy_discrete as toy

torch.set_num_threads(1)


def small(**overrides) -> QmixConfig:
    fields = dict(hidden_dim=16, mixing_embed_dim=8, hypernet_embed=16, batch_size=4, buffer_size=50,
                  epsilon_anneal_steps=200, target_update_interval=10)
    return QmixConfig(**(fields | overrides))


def build(env: VecEnv, seed: int = 0, **overrides) -> Qmix:
    return Qmix(env.spec, small(**overrides), env.n_envs, torch.device("cpu"), seed)


# -- mixer -------------------------------------------------------------------------------------
@pytest.mark.parametrize("layers", [1, 2])
def test_mixer_is_monotonic_in_every_agent_utility(layers):
    torch.manual_seed(0)
    mixer = QMixer(n_agents=4, state_dim=7, embed_dim=8, hypernet_layers=layers, hypernet_embed=16)
    q = (10 * torch.randn(512, 4)).requires_grad_(True)
    state = 5 * torch.randn(512, 7)
    (grad,) = torch.autograd.grad(mixer(q, state).sum(), q)
    assert (grad >= 0).all() and (grad > 0).any()
    # and the mixer is not trivially additive: the gradient depends on the state
    assert grad.std(dim=0).min() > 0


# -- matrix games --------------------------------------------------------------------------------
def train_matrix(task: str, seed: int, steps: int = 2000, **env_fields) -> tuple[int, ...]:
    """QMIX with 4 copies (one update per env step once 32 episodes are stored, ~490 updates),
    ε annealed over the first half, lr 2e-3 (PyMARL's 5e-4 needs far more updates than a
    fast test affords); returns the greedy joint action."""
    env = envs.make("matrix", task, n_envs=4, seed=seed, **env_fields)
    algo = Qmix(env.spec, QmixConfig(hidden_dim=32, batch_size=32, buffer_size=1000, epsilon_anneal_steps=steps // 2, lr=2e-3),
                4, torch.device("cpu"), seed)
    step, _, _ = run_loop(algo, env, steps, seed=seed)
    return tuple(int(p.argmax()) for p in algo.policy_probs(step))


ADDITIVE = (np.array([0.0, 3.0, 1.0])[:, None] + np.array([2.0, 0.0, 4.0])[None, :]).tolist()  # optimum 7 at (1, 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_qmix_finds_the_optimum_of_a_monotonic_additive_game(seed):
    assert train_matrix("custom", seed, payoff=ADDITIVE) == (1, 2)


def test_qmix_misses_the_climbing_optimum():
    """Non-monotonic payoff [[11, −30, 0], [−30, 7, 6], [0, 0, 5]]: a monotonic Q_tot cannot
    represent it, and QMIX settles in the safe corner — (1, 2) = 6 or (2, 2) = 5 — never the
    optimum (0, 0) = 11. Recorded outcome per seed with these settings."""
    outcomes = {seed: train_matrix("climbing", seed) for seed in range(3)}
    assert outcomes == {0: (1, 2), 1: (2, 2), 2: (1, 2)}


# -- masks ---------------------------------------------------------------------------------------
def test_targets_never_pick_an_unavailable_action():
    g = torch.Generator().manual_seed(0)
    q_online, q_target = torch.randn(64, 6, 3, 5, generator=g), torch.randn(64, 6, 3, 5, generator=g)
    avail = torch.rand(64, 6, 3, 5, generator=g) < 0.5
    avail[..., 0] |= ~avail.any(-1)  # at least one available action per agent
    q_online = q_online.masked_fill(~avail, 1e6)  # unavailable actions look best
    q_target = q_target.masked_fill(~avail, 1e6)
    for double_q in (True, False):
        values, actions = next_agent_values(q_online, q_target, avail, double_q)
        assert avail.gather(-1, actions.unsqueeze(-1)).all()
        assert (values < 1e5).all()
    values, actions = next_agent_values(q_online, q_target, avail, True)  # double Q: target evaluates online argmax
    assert torch.equal(values, q_target.gather(-1, actions.unsqueeze(-1)).squeeze(-1))


def test_acting_never_picks_an_unavailable_action():
    env = toy(n_envs=8)
    algo = build(env, epsilon_anneal_steps=10_000)  # ε ≈ 1: mostly uniform exploration
    step = env.reset(0)
    for _ in range(40):
        for explore in (True, False):
            actions = algo.act(step, explore=explore)
            for i in range(2):
                assert step.avail_actions[i][np.arange(8), actions[i]].all()
        nxt = env.step(actions)
        algo.observe(step, actions, nxt)
        step = nxt


def test_padding_never_reaches_the_loss():
    env = toy(n_envs=3)
    algo = build(env, batch_size=8)
    run_loop(algo, env, 60)
    data = algo.buffer.data
    lengths = data["filled"].sum(axis=1)[: len(algo.buffer)]
    assert len(set(lengths.tolist())) > 1  # variable lengths, so there is padding to test

    def loss_with(rng_seed: int) -> float:
        batch = algo.buffer.sample(8, np.random.default_rng(rng_seed), torch.device("cpu"))
        return algo.loss(batch)[0].item()

    before = [loss_with(s) for s in range(5)]
    garbage = np.random.default_rng(1)
    for k, length in enumerate(lengths):  # padded transitions t ≥ L and views t > L
        data["obs"][k, length + 1:] = garbage.normal(0, 50, data["obs"][k, length + 1:].shape)
        data["state"][k, length + 1:] = garbage.normal(0, 50, data["state"][k, length + 1:].shape)
        data["avail"][k, length + 1:] = garbage.random(data["avail"][k, length + 1:].shape) < 0.5
        data["alive"][k, length + 1:] = True
        data["reward"][k, length:] = 1e3
        data["terminated"][k, length:] = garbage.random(data["terminated"][k, length:].shape) < 0.5
        data["actions"][k, length:] = garbage.integers(0, 2, data["actions"][k, length:].shape)
    after = [loss_with(s) for s in range(5)]
    assert np.allclose(before, after, rtol=1e-6, atol=1e-7)


def dead_agent_loss_change(dead_agent_q: str) -> tuple[list[float], list[float]]:
    """Losses on five sampled batches before and after overwriting what dead agent 1 sees
    and does (it dies at step 3 in ToyDiscrete)."""
    env = toy(n_envs=3)
    algo = build(env, batch_size=8, dead_agent_q=dead_agent_q)
    run_loop(algo, env, 60)
    data = algo.buffer.data
    assert (~data["alive"][: len(algo.buffer), :, 1]).any()

    def loss_with(rng_seed: int) -> float:
        return algo.loss(algo.buffer.sample(8, np.random.default_rng(rng_seed), torch.device("cpu")))[0].item()

    before = [loss_with(s) for s in range(5)]
    dead_views = ~data["alive"][:, :, 1]  # [C, T+1]
    data["obs"][:, :, 1][dead_views] = 7.0
    data["actions"][:, :, 1][dead_views[:, :-1] & dead_views[:, 1:]] = 1  # actions taken while dead
    return before, [loss_with(s) for s in range(5)]


def test_zero_switch_keeps_dead_agents_out_of_the_loss():
    """dead_agent_q=zero: Qᵢ of a dead agent is 0 before mixing, so what it sees or does
    cannot change the loss."""
    before, after = dead_agent_loss_change("zero")
    assert np.allclose(before, after, rtol=1e-6, atol=1e-7)


def test_official_mixes_dead_agents_utilities_as_they_are():
    """PyMARL mixes a dead agent's utility of its (no-op) action like any other, so its
    inputs reach the loss."""
    before, after = dead_agent_loss_change("official")
    assert not np.allclose(before, after, rtol=1e-6, atol=1e-7)


def test_a_time_out_ends_the_official_target_and_the_switch_bootstraps_it():
    env = toy(n_envs=3)
    algo = build(env, batch_size=8)
    run_loop(algo, env, 60)
    batch = algo.buffer.sample(8, np.random.default_rng(0), torch.device("cpu"))
    rows, last = torch.arange(8), batch["filled"].sum(1) - 1
    timeout, terminal = batch["truncated"][rows, last], batch["terminated"][rows, last]
    assert timeout.any() and terminal.any() and not (timeout & terminal).any()
    reward = batch["reward"][rows, last]
    q = algo.unroll(algo.agents, batch)
    official = algo.targets(batch, q)[rows, last]
    assert torch.allclose(official[timeout | terminal], reward[timeout | terminal])  # y = r: PyMARL on SMAC
    algo.config = replace(algo.config, truncation="bootstrap")
    bootstrapped = algo.targets(batch, q)[rows, last]
    q_next, _ = next_agent_values(q[:, 1:], algo.unroll(algo.target_agents, batch)[:, 1:], batch["avail"][:, 1:], True)
    value_final = algo.target_mixer(q_next, batch["state"][:, 1:]).squeeze(-1)[rows, last]  # Q̄_tot at the true last view
    assert torch.allclose(bootstrapped[timeout], reward[timeout] + 0.99 * value_final[timeout])
    assert torch.allclose(bootstrapped[terminal], reward[terminal]) and (value_final[timeout].abs() > 1e-4).all()


def test_buffer_keeps_final_views_deaths_and_both_end_kinds():
    env = toy(n_envs=2)
    buffer = EpisodeBuffer(env.spec, capacity=100, n_envs=2)
    step, rng = env.reset(0), np.random.default_rng(0)
    while len(buffer) < 30:
        actions = [rng.integers(0, 3, 2), rng.integers(0, 2, 2)]
        actions[0] = np.where(step.avail_actions[0][np.arange(2), actions[0]], actions[0], 0)
        actions[1] = np.where(step.alive[:, 1], actions[1], 0)
        nxt = env.step(actions)
        buffer.add(step, actions, nxt)
        step = nxt
    d = {k: v[: len(buffer)] for k, v in buffer.data.items()}
    lengths = d["filled"].sum(axis=1)
    ends = d["terminated"][np.arange(len(buffer)), lengths - 1]
    assert ends.any() and (~ends).any()  # terminated and truncated episodes
    assert (lengths[~ends] == 5).all()  # truncation only at the limit
    assert np.array_equal(d["truncated"], d["filled"] & (np.arange(5)[None, :] == lengths[:, None] - 1) & ~ends[:, None])
    assert not d["alive"][lengths == 5][:, 5, 1].any()  # the final view is stored (agent 1 dead there)
    assert (d["avail"][:, :, 1, 2] == False).all()  # noqa: E712 agent 1 has no third action (padding)
    assert np.array_equal(d["filled"], np.arange(5)[None, :] < lengths[:, None])  # filled exactly before the end


def test_lambda_targets_by_hand():
    reward = torch.tensor([[1.0, 2.0, 3.0]])
    value = torch.tensor([[10.0, 20.0, 30.0]])
    terminated = torch.tensor([[False, False, True]])
    filled = torch.tensor([[True, True, True]])
    g = 0.9
    one_step = lambda_targets(reward, terminated, filled, value, g, 0.0)
    assert torch.allclose(one_step, torch.tensor([[1 + g * 10, 2 + g * 20, 3.0]]))  # no bootstrap on termination
    lam = 0.5
    y2 = 3.0
    y1 = 2 + g * ((1 - lam) * 20 + lam * y2)
    y0 = 1 + g * ((1 - lam) * 10 + lam * y1)
    assert torch.allclose(lambda_targets(reward, terminated, filled, value, g, lam), torch.tensor([[y0, y1, y2]]))
    truncated = lambda_targets(reward, torch.zeros_like(terminated), torch.tensor([[True, True, False]]), value, g, lam)
    assert torch.isclose(truncated[0, 1], torch.tensor(2 + g * 20))  # last filled step bootstraps from V̄


# -- schedule --------------------------------------------------------------------------------------
def test_epsilon_anneals_linearly_then_stays():
    env = toy(n_envs=1)
    algo = Qmix(env.spec, QmixConfig(), 1, torch.device("cpu"), 0)
    expected = {0: 1.0, 25_000: 0.525, 50_000: 0.05, 200_000: 0.05}
    for steps, eps in expected.items():
        algo.env_steps = steps
        assert algo.epsilon == pytest.approx(eps)


def test_one_update_per_step_with_a_finished_episode_once_a_batch_is_stored():
    env = toy(n_envs=2)
    algo = build(env, batch_size=4)
    step, updates, seen = env.reset(0), 0, 0
    for _ in range(30):
        actions = algo.act(step)
        nxt = env.step(actions)
        algo.observe(step, actions, nxt)
        seen += int(nxt.done.any())
        expect = len(algo.buffer) >= 4 and nxt.done.any()
        assert algo.ready(0) == bool(expect)
        while algo.ready(0):
            algo.update()
            updates += 1
        step = nxt
    assert 0 < updates < seen + 1


def test_hard_target_copy_every_interval_episodes_and_polyak_option():
    env = toy(n_envs=2)
    algo = build(env, batch_size=2, target_update_interval=6)
    run_loop(algo, env, 200)
    assert algo.target_updated_at_episode > 0 and algo.buffer.episodes - algo.target_updated_at_episode < 6 + 2
    polyak = build(env, batch_size=2, target_update="polyak", tau=0.5)
    before = [p.clone() for p in polyak.target_mixer.parameters()]
    run_loop(polyak, env, 30)
    assert polyak.updates > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, polyak.target_mixer.parameters()))


# -- options, errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("share_params,last_action,lam", [(False, False, 0.6), (True, False, 0.0), (False, True, 0.0)])
def test_options_build_and_train(share_params, last_action, lam):
    env = toy(n_envs=2)
    algo = build(env, share_params=share_params, obs_last_action=last_action, td_lambda=lam, optimizer="adam")
    assert len(algo.agents.nets) == (1 if share_params else 2)
    _, _, metrics = run_loop(algo, env, 60)
    assert algo.updates > 0
    assert set(metrics) == {"loss", "td_error_abs", "q_taken_mean", "target_mean", "grad_norm", "epsilon"}
    assert all(np.isfinite(v) for v in metrics.values())


def test_qmix_on_box_task_raises_one_line_config_error():
    env = envs.make("mpe", "simple_spread", n_envs=1, seed=0)
    try:
        with pytest.raises(ConfigError) as err:
            check_compatible("qmix", env.spec)
    finally:
        env.close()
    message = str(err.value)
    assert message.startswith("qmix needs Discrete actions; mpe/simple_spread has Box actions") and "\n" not in message


def test_impossible_qmix_values_raise_config_error():
    spec = toy(n_envs=1).spec
    for bad in (dict(td_lambda=1.5), dict(target_update="soft"), dict(buffer_size=8, batch_size=32), dict(optimizer="sgd"),
                dict(epsilon_finish=0.5, epsilon_start=0.1), dict(truncation="bootstraps"), dict(dead_agent_q="mask")):
        with pytest.raises(ConfigError):
            QmixConfig(**bad).validate(spec)


# -- resume --------------------------------------------------------------------------------------
def test_resume_matches_uninterrupted_run():
    env = toy(n_envs=3)
    algo = build(env, batch_size=4)
    step, total, _ = run_loop(algo, env, 90)
    assert algo.updates > 0 and algo.buffer.length.any()  # mid-episode, with updates done
    saved_algo, saved_env, saved_step = copy.deepcopy(algo.state_dict()), env.get_state(), copy.deepcopy(step)

    def continue_run(learner, steps: int = 60):
        s, record = copy.deepcopy(saved_step), []
        for _ in range(steps // 3):
            actions = learner.act(s)
            nxt = env.step(actions)
            learner.observe(s, actions, nxt)
            metrics = [learner.update() for _ in iter(lambda: learner.ready(0), False)]
            record.append(([a.copy() for a in actions], metrics))
            s = nxt
        greedy = learner.act(s, explore=False)
        return record, greedy

    first, greedy_first = continue_run(algo)
    env.set_state(saved_env)
    fresh = build(env, seed=123, batch_size=4)
    fresh.load_state_dict(copy.deepcopy(saved_algo))
    second, greedy_second = continue_run(fresh)
    assert sum(len(m) for _, m in first) > 0
    for (a1, m1), (a2, m2) in zip(first, second):
        assert all(np.array_equal(x, y) for x, y in zip(a1, a2))
        assert m1 == m2
    assert all(np.array_equal(x, y) for x, y in zip(greedy_first, greedy_second))


# -- learning (slow) -----------------------------------------------------------------------------
@pytest.mark.slow
def test_qmix_learns_discrete_simple_spread():
    """150k env steps (6000 episodes of 25 steps) with PyMARL's defaults and its one env
    copy: one update per episode, ε annealed over the first 50k steps."""
    random_return, learned = learn(Qmix, "mpe", "simple_spread", 150_000, n_envs=1, eval_episodes=20,
                                   env_options={"continuous_actions": False})
    assert learned > random_return + 0.15 * abs(random_return)
