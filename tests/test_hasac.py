"""HASAC (algos/hasac.py): convergence to the analytic soft QRE on matrix games, action
masks, target entropies, temperatures, and a slow learning check on MPE."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import envs
from algo_helpers import (OWN_3_AGENTS, beats_random_on_spread, build, flat_params, learn_halfcheetah, learn_simple_spread,
                          masked_agent_states_env, run_loop, toy_env)
from algos.common.distributions import gumbel_softmax_hard
from algos.common.qre import soft_qre, total_variation
from algos.common.registry import check_compatible
from algos.common.off_policy import critic_loss, normalised_target
from algos.common.ppo import ValueNorm
from algos.hasac import Hasac, HasacConfig, target_entropy, temperature_loss
from envs.base import Step
from envs.errors import ConfigError
from envs.fidelity import differing
from envs.matrix import CLIMBING, penalty_payoff

torch.set_num_threads(1)

# (task, alpha, env fields, payoff): alpha large enough for a unique QRE that is still far
# from uniform (total variation from uniform 0.17-0.37 per agent).
QRE_GAMES = {
    "climbing": ("climbing", 10.0, {}, np.array(CLIMBING, float)),
    "penalty": ("penalty", 30.0, {"penalty_k": -100.0}, np.array(penalty_payoff(-100.0), float)),
    "own_3_agents": ("custom", 3.0, {"payoff": OWN_3_AGENTS.tolist()}, OWN_3_AGENTS),
}


def train_matrix(task: str, alpha: float, fields: dict, loss: str, updates: int = 500, seed: int = 0, n_envs: int = 16) -> tuple[Hasac, Step]:
    """HASAC with a fixed alpha on a matrix game, through the training loop; returns it
    with the last Step (for policy_probs)."""
    env = envs.make("matrix", task, n_envs=n_envs, seed=seed, **fields)
    config = HasacConfig(alpha=alpha, discrete_actor_loss=loss, hidden_sizes=[32, 32], lr=1e-2, critic_lr=1e-2, batch_size=128,
                         buffer_size=20_000, n_step=1, warmup_steps=128, train_every=n_envs, updates_per_train=1, use_huber=False)
    algo = Hasac(env.spec, config, n_envs, torch.device("cpu"), seed)
    step, total = env.reset(seed), 0
    while algo.updates < updates:
        step, total, _ = run_loop(algo, env, n_envs, step=step, start=total)
    return algo, step


@pytest.mark.parametrize("game", list(QRE_GAMES))
def test_expected_loss_converges_to_the_unique_soft_qre(game):
    task, alpha, fields, payoff = QRE_GAMES[game]
    rng = np.random.default_rng(0)
    qre = soft_qre(payoff, alpha)
    for _ in range(5):  # uniqueness: every start of the damped iteration reaches the same point
        other = soft_qre(payoff, alpha, init=[rng.dirichlet(np.full(n, 0.3)) for n in payoff.shape], damping=0.2)
        assert max(total_variation(p, q) for p, q in zip(other, qre)) < 1e-6
    algo, step = train_matrix(task, alpha, fields, "expected")
    probs = algo.policy_probs(step)
    for p, q in zip(probs, qre):
        assert total_variation(p, q) < 0.05
        assert total_variation(p, np.full(len(p), 1 / len(p))) > 0.1  # it learned, not stayed uniform


def straight_through_gradient(critic, logits: list[torch.Tensor], i: int, alpha: float, samples: int = 200_000) -> torch.Tensor:
    """E[∇ of agent i's HASAC loss −(Q(x¹, x²) − α log πⁱ(aⁱ))] w.r.t. its logits, xⁱ the
    straight-through Gumbel one-hot (gumbel_softmax_hard), the other agent playing its policy."""
    generator = torch.Generator().manual_seed(0)
    own = logits[i].clone().requires_grad_(True)
    joint = [gumbel_softmax_hard(p.expand(samples, -1), None, generator)[0] for p in logits]
    joint[i], log_prob = gumbel_softmax_hard(own.expand(samples, -1), None, generator)
    (grad,) = torch.autograd.grad((alpha * log_prob - critic(*joint)).mean(), own)
    return grad


def test_straight_through_gumbel_keeps_the_qre_with_exact_q_and_loses_it_with_wrong_slopes():
    """At the soft QRE q(b) − α log π(b) is the same for every own action b. With the payoff as
    the bilinear Q = x¹ᵀ R x² (linear in an agent's own one-hot) the straight-through gradient
    is (q − α log π)ᵀ ∂softmax + α E[x]ᵀ ∂log π = 0. Adding c(‖x¹‖² − Σx¹), zero at every
    one-hot vertex, keeps every value a critic fitted on vertices could see but tilts its
    slopes there (by c(2e_a − 1)): the same estimator then pushes away from the QRE."""
    payoff, alpha = np.array(CLIMBING, float), 10.0
    table = torch.tensor(payoff, dtype=torch.float64)
    exact = lambda x1, x2: ((x1 @ table) * x2).sum(-1, keepdim=True)
    tilted = lambda x1, x2: exact(x1, x2) + 30.0 * ((x1 * x1).sum(-1, keepdim=True) - x1.sum(-1, keepdim=True))
    logits = [torch.tensor(np.log(p), dtype=torch.float64) for p in soft_qre(payoff, alpha)]
    on_vertices = torch.eye(3, dtype=torch.float64)
    assert torch.equal(exact(on_vertices, on_vertices), tilted(on_vertices, on_vertices))
    exact_gradient = straight_through_gradient(exact, logits, 0, alpha)
    tilted_gradient = straight_through_gradient(tilted, logits, 0, alpha)
    assert exact_gradient.abs().max() < 0.05 < 0.5 < tilted_gradient.abs().max()


def test_discrete_actions_respect_masks_in_acting_evaluating_and_probs():
    env = envs.make("matrix", "climbing", n_envs=64, seed=0)
    algo = Hasac(env.spec, HasacConfig(hidden_sizes=[8], warmup_steps=0, batch_size=8), 64, torch.device("cpu"), 0)
    step = env.reset(0)
    mask = np.ones((64, 3), bool)
    mask[:, 0] = False  # action 0 unavailable for agent 0 everywhere, action 2 for agent 1 on even rows
    mask1 = np.ones((64, 3), bool)
    mask1[::2, 2] = False
    step.avail_actions = [mask, mask1]
    for explore in (True, False):
        for _ in range(20):
            a0, a1 = algo.act(step, explore=explore)
            assert a0.dtype == np.int64 and a0.shape == (64,)
            assert not np.any(a0 == 0) and not np.any(a1[::2] == 2)
    probs = algo.policy_probs(step)
    assert probs[0][0] == 0.0 and probs[1][2] == 0.0 and np.isclose(probs[0].sum(), 1.0)
    warm = Hasac(env.spec, HasacConfig(hidden_sizes=[8], batch_size=8), 64, torch.device("cpu"), 0)
    assert not np.any(warm.act(step)[0] == 0)  # warm-up uniform actions respect masks too


def test_box_actions_official_and_affine_and_evaluation_is_deterministic():
    """Official: high[0]·tanh(u), so Box(0, 1) actions lie in (−1, 1) (the env clips) and
    Box(−2, 2) ones in (−2, 2); affine: inside [low, high]. Evaluation: tanh(μ) mapped alike."""
    for mode in ("official", "affine"):
        algo, env = build("hasac", warmup_steps=0, box_action=mode)
        step = env.reset(0)
        for explore in (True, False):
            for actions, space in zip(algo.act(step, explore), env.spec.action_spaces):
                assert actions.dtype == np.float32 and actions.shape == (env.n_envs, *space.shape)
                low = -space.high[0] if mode == "official" else space.low
                assert np.all(actions >= low) and np.all(actions <= space.high)
        obs = torch.as_tensor(step.obs[0])
        with torch.no_grad():
            tanh_mu = torch.tanh(algo.actors[0].mu(algo.actors[0].trunk(obs))).numpy()
        expected = tanh_mu if mode == "official" else (tanh_mu + 1) / 2
        assert np.allclose(algo.act(step, False)[0], expected, atol=1e-6)
        if mode == "official":
            assert np.any(algo.act(step, True)[0] < 0)  # a negative action on Box(0, 1): the env clips it to 0
        assert all(np.array_equal(a, b) for a, b in zip(algo.act(step, False), algo.act(step, False)))
        assert not all(np.array_equal(a, b) for a, b in zip(algo.act(step, True), algo.act(step, True)))


def test_defaults_are_the_official_behaviour_and_switches_are_checked():
    config = HasacConfig()
    assert (config.box_action, config.discrete_target_entropy, config.critic_alpha_logp, config.episode_end_avail) == ("official",) * 4
    assert differing(config, "algo") == {}
    box, discrete = toy_env().spec, envs.make("matrix", "climbing").spec
    HasacConfig(box_action="affine").validate(box)
    assert differing(HasacConfig(box_action="affine"), "algo") == {"algo.box_action": "affine"}
    HasacConfig(auto_alpha=True, discrete_target_entropy="intended", critic_alpha_logp="resampled").validate(discrete)
    for fields, spec, message in [
        ({"box_action": "affine"}, discrete, "only affects Box action spaces"),
        ({"box_action": "clip"}, box, "must be one of official, affine"),
        ({"discrete_target_entropy": "intended"}, box, "only affects Discrete action spaces with auto_alpha"),
        ({"discrete_target_entropy": "intended", "auto_alpha": False}, discrete, "with auto_alpha"),
        ({"critic_alpha_logp": "resampled"}, box, "only affects auto_alpha runs"),
        ({"episode_end_avail": "final"}, box, "only affects Discrete"),
    ]:
        with pytest.raises(ConfigError, match=message) as exc:
            HasacConfig(**fields).validate(spec)
        assert "\n" not in str(exc.value)


@pytest.mark.parametrize("mode", ["official", "resampled"])
def test_critic_temperature_is_trained_on_the_chosen_log_probs(mode):
    """Official (off_policy_ha_runner.py l.92, l.133): α_c's loss reads Σᵢ of the log π each
    agent used in its own actor loss; 'resampled': of each agent's sample after its step."""
    algo, env = build("hasac", auto_alpha=True, critic_alpha_logp=mode)
    run_loop(algo, env, 40)
    in_loss, after_step, critic_input = {}, {}, []
    original_step, original_temperature = algo.actor_step, algo.temperature_step

    def actor_step(i, batch, actions):
        log_prob, metrics = original_step(i, batch, actions)
        in_loss[int(i)] = log_prob.clone()
        return log_prob, metrics

    def temperature_step(k, log_prob, valid):
        if k == algo.spec.n_agents:
            critic_input.append(log_prob.clone())
        return original_temperature(k, log_prob, valid)

    for i, actor in enumerate(algo.actors):  # record each agent's no-grad draws after its own step
        def forward(obs, avail, generator, actor=actor, i=i):
            action, log_prob = type(actor).forward(actor, obs, avail, generator)
            if i in in_loss and not torch.is_grad_enabled():
                after_step[i] = log_prob.clone()
            return action, log_prob
        actor.forward = forward
    algo.actor_step, algo.temperature_step = actor_step, temperature_step
    algo.update()
    chosen = in_loss if mode == "official" else after_step
    assert sorted(chosen) == [0, 1] and len(critic_input) == 1
    assert torch.equal(critic_input[0], chosen[0] + chosen[1])
    other = after_step if mode == "official" else in_loss
    assert not torch.equal(critic_input[0], other.get(0, torch.zeros(1)) + other.get(1, torch.zeros(1)))


def test_valuenorm_targets_are_normalised_after_the_statistics_take_them_in():
    """HARL (soft_twin_continuous_q_critic.py l.125-141): update(y) first, then (y − μ)/σ.
    y = [1, 3] into a fresh ValueNorm: debiased μ = 2, σ² = 5 − 4 = 1, so y ↦ [−1, 1]."""
    norm = ValueNorm()
    normalised = normalised_target(torch.tensor([[1.0], [3.0]]), norm)
    assert torch.allclose(normalised, torch.tensor([[-1.0], [1.0]]), atol=1e-6)
    assert torch.equal(normalised_target(torch.tensor([[1.0], [3.0]]), None), torch.tensor([[1.0], [3.0]]))


def constant_target_critic(algo: Hasac, value: float) -> None:
    """Q̄1 = Q̄2 = value everywhere: the target nets' last layer zeroed, its bias = value."""
    with torch.no_grad():
        algo.critic_target.weights[-1].zero_()
        algo.critic_target.biases[-1].fill_(value)


def test_valuenorm_denormalises_the_target_critic_and_regresses_on_normalised_targets():
    """With use_valuenorm the Bellman backup reads μ + σ·Q̄ (the target nets predict in the
    normalised space) and the Q-nets regress on (y − μ)/σ; the actors keep reading the
    normalised Q (off_policy_ha_runner.py l.102). Q̄ ≡ 0.5 and (μ, σ) = (5, 2) make the
    backup 5 + 2·0.5 = 6 instead of 0.5, with the same sampled log π."""
    algo, env = build("hasac", auto_alpha=True, use_valuenorm=True)
    plain, _ = build("hasac", auto_alpha=True)
    assert plain.value_norm is None and "value_norm" in algo.checkpointed()
    run_loop(algo, env, 40)
    batch = algo.buffer.sample(algo.config.batch_size, algo.rng)
    algo.value_norm = ValueNorm()  # statistics of two targets only: μ = 5, σ² = 29 − 25 = 4
    algo.value_norm.update(torch.tensor([[3.0], [7.0]]))
    constant_target_critic(algo, 0.5)
    start = algo.generator.get_state()
    with_norm = algo.soft_next_value(batch)
    algo.generator.set_state(start)
    norm, algo.value_norm = algo.value_norm, None
    without = algo.soft_next_value(batch)
    algo.value_norm = norm
    assert torch.allclose(with_norm - without, torch.full_like(without, 6.0 - 0.5), atol=1e-5)

    y = batch.reward + batch.discount * (1.0 - batch.terminated) * with_norm
    before = algo.value_norm.running_mean.clone(), algo.value_norm.debiasing_term.clone()
    q1, q2 = (q.detach() for q in algo.critic(batch.state, batch.actions))
    metrics = algo.critic_step(batch, with_norm, algo.value_norm)
    beta = algo.value_norm.beta
    assert torch.allclose(algo.value_norm.running_mean, before[0] * beta + y.double().mean() * (1 - beta))
    mean, var = algo.value_norm.mean_var()
    expected_loss, _ = critic_loss(q1, q2, ((y.double() - mean) / var.sqrt()).float(), algo.config.huber_delta if algo.config.use_huber else None)
    assert torch.allclose(metrics["loss/critic"], expected_loss, rtol=1e-5)


# -- one state per agent (HARL's FP state) -----------------------------------------------------
def test_per_agent_states_tile_the_next_joint_action_and_train_each_actor_on_every_agents_row():
    """HARL's FP HASAC (off_policy_ha_runner.py l.96-112): the critic reads one agent's state
    (8 values) with the joint action; the target's a' and Σ log π' are the same on every
    agent's row; agent i's (expected, so exact) loss averages over all agents' rows,
    weighted by agent i's alive flag."""
    env = masked_agent_states_env()
    algo, _ = build("hasac", env=env, discrete_actor_loss="expected", batch_size=64)
    assert algo.critic.weights[0].shape[-1] == 8 + 3 + 3
    run_loop(algo, env, 200)
    batch = algo.buffer.sample(64, algo.rng)
    assert batch.state.shape == (2 * 64, 8) and batch.reward.shape == (2 * 64, 1)
    constant_target_critic(algo, 0.5)
    next_value = algo.soft_next_value(batch)
    assert next_value.shape == (128, 1) and torch.equal(next_value[:64], next_value[64:])

    actions, _ = algo.sample_joint(batch.obs, batch.avail)
    i, alpha = 1, algo.log_alpha[1].exp().detach()
    with torch.no_grad():
        log_pi = algo.actors[i].log_probs(batch.obs[i], batch.avail[i])
        valid = batch.valid[:, i]
        total = 0.0
        for k in range(2):  # agent k's rows, one own action of agent i at a time
            state = batch.state[64 * k:64 * (k + 1)]
            q = torch.stack([torch.min(*algo.critic(state, [F.one_hot(torch.full((64,), a), 3).float() if j == i else actions[j]
                                                            for j in range(2)]))[:, 0] for a in range(3)], -1)
            total += ((log_pi.exp() * (alpha * log_pi - q)).sum(-1) * valid).sum()
        expected = total / (2 * valid.sum())
    _, metrics = algo.actor_step(i, batch, actions)
    assert torch.isclose(metrics[f"loss/actor/agent_{i}"], expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["hasac", "mehaml_kl"])
def test_updates_and_resume_with_per_agent_states(name):
    algo, env = build(name, seed=1, env=masked_agent_states_env(seed=1), auto_alpha=True)
    before = flat_params(algo.critic)
    _, total, metrics = run_loop(algo, env, 120, seed=1)
    assert algo.updates > 0 and np.isfinite(metrics["loss/critic"]) and not torch.equal(before, flat_params(algo.critic))
    saved = copy.deepcopy(algo.state_dict())
    run_loop(algo, masked_agent_states_env(seed=7), 60, seed=7, start=total)  # both continue on the same fresh envs
    resumed, _ = build(name, seed=99, env=masked_agent_states_env(), auto_alpha=True)
    resumed.load_state_dict(saved)
    run_loop(resumed, masked_agent_states_env(seed=7), 60, seed=7, start=total)
    assert resumed.updates == algo.updates
    assert torch.equal(flat_params(algo.critic), flat_params(resumed.critic))
    assert torch.equal(flat_params(algo.actors), flat_params(resumed.actors))


def test_valuenorm_is_on_in_harl_smac_files_only():
    from harness.config import tuned_overrides
    for task in ["5m_vs_6m", "3s5z", "corridor", "6h_vs_8z"]:
        assert "algo.use_valuenorm=true" in [o.lower() for o in tuned_overrides("hasac", "smac", task)]
    for family, task in [("mpe", "simple_spread"), ("mamujoco", "HalfCheetah-2x3")]:
        assert not any("use_valuenorm" in o for o in tuned_overrides("hasac", family, task))
    assert HasacConfig().use_valuenorm is False


def test_target_entropies_intended_and_official():
    from gymnasium import spaces
    assert target_entropy(spaces.Box(0, 1, (5,)), "intended") == target_entropy(spaces.Box(0, 1, (5,)), "official") == -5.0
    assert math.isclose(target_entropy(spaces.Discrete(5), "intended"), 0.98 * math.log(5))
    assert target_entropy(spaces.Discrete(5), "official") == 0.0  # HARL: Discrete(n).shape == ()


def test_temperature_loss_raises_alpha_when_entropy_is_below_target():
    log_alpha = torch.zeros((), requires_grad=True)
    valid = torch.ones(4)
    temperature_loss(log_alpha, torch.full((4, 1), 1.0), 0.5, valid)[0].backward()  # entropy -1 < 0.5
    assert log_alpha.grad < 0  # gradient descent increases log alpha
    log_alpha.grad = None
    temperature_loss(log_alpha, torch.full((4, 1), -2.0), 0.5, valid)[0].backward()  # entropy 2 > 0.5
    assert log_alpha.grad > 0


def test_auto_alpha_starts_at_one_and_official_discrete_target_only_lowers_it():
    env = envs.make("matrix", "penalty", n_envs=16, seed=0)
    config = HasacConfig(auto_alpha=True, alpha=0.2, discrete_target_entropy="official", hidden_sizes=[8],
                         batch_size=32, warmup_steps=32, train_every=16, updates_per_train=2, n_step=1)
    algo = Hasac(env.spec, config, 16, torch.device("cpu"), 0)
    assert [p.exp().item() for p in algo.log_alpha] == [1.0, 1.0, 1.0]  # HARL ignores `alpha` here
    alphas, step, total = [], env.reset(0), 0
    for _ in range(10):
        step, total, metrics = run_loop(algo, env, 16, step=step, start=total)
        if metrics:
            alphas.append([metrics["alpha/agent_0"], metrics["alpha/agent_1"], metrics["alpha/critic"]])
    assert len(alphas) >= 8 and np.all(np.diff(np.array(alphas), axis=0) < 0)


def test_impossible_hasac_values_raise_config_error():
    spec = toy_env().spec
    for fields in ({"alpha": 0.0}, {"alpha": -1.0}, {"discrete_actor_loss": "exact"}, {"discrete_target_entropy": "max"},
                   {"critic_alpha_logp": "final"}, {"episode_end_avail": "reset"}):
        with pytest.raises(ConfigError):
            HasacConfig(**fields).validate(spec)
    check_compatible("hasac", spec)
    check_compatible("hasac", envs.make("matrix", "climbing").spec)


@pytest.mark.slow
def test_hasac_learns_continuous_simple_spread():
    # MPE tuned values (auto alpha, n_step 20, MSE) on smaller networks and batches
    random_return, learned = learn_simple_spread(Hasac, auto_alpha=True, n_step=20, use_huber=False)
    assert beats_random_on_spread(learned, random_return)


@pytest.mark.slow
def test_hasac_learns_halfcheetah_2x3():
    # HalfCheetah-2x3 tuned values (auto alpha, n_step 10, lr 1e-3) on smaller networks
    random_return, learned = learn_halfcheetah(Hasac, auto_alpha=True, n_step=10, lr=1e-3, critic_lr=1e-3)
    assert learned > random_return + 1000
