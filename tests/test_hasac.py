"""HASAC (algos/hasac.py): convergence to the analytic soft QRE on matrix games, action
masks, target entropies, temperatures, and a slow learning check on MPE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import envs
from algos.common.qre import soft_qre, total_variation
from algos.common.registry import check_compatible
from algos.hasac import Hasac, HasacConfig, target_entropy, temperature_loss
from algos.random_policy import RandomConfig, RandomPolicy
from envs.base import Step
from envs.errors import ConfigError, EnvUnavailable
from envs.matrix import CLIMBING, penalty_payoff

try:  # tests/ on sys.path (pytest's default) or the repo root
    from test_algos_common import build, run_loop, toy_env
except ImportError:
    from tests.test_algos_common import build, run_loop, toy_env

torch.set_num_threads(1)

# A 3-agent game of our own with heterogeneous action counts (2, 3, 2): two rewarding
# joint actions, one trap; its soft QRE at alpha = 3 is unique (checked below).
OWN_3_AGENTS = np.zeros((2, 3, 2))
OWN_3_AGENTS[0, 0, 0], OWN_3_AGENTS[1, 2, 1], OWN_3_AGENTS[1, 1, 1] = 8, 6, -6
OWN_3_AGENTS[0, 1, 0], OWN_3_AGENTS[0, 2, 1] = 3, -4

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


def test_box_actions_lie_in_the_bounds_and_evaluation_is_deterministic():
    algo, env = build("hasac", warmup_steps=0)
    step = env.reset(0)
    for explore in (True, False):
        for actions, space in zip(algo.act(step, explore), env.spec.action_spaces):
            assert actions.dtype == np.float32 and actions.shape == (env.n_envs, *space.shape)
            assert np.all(actions >= space.low) and np.all(actions <= space.high)
    assert all(np.array_equal(a, b) for a, b in zip(algo.act(step, False), algo.act(step, False)))
    assert not all(np.array_equal(a, b) for a, b in zip(algo.act(step, True), algo.act(step, True)))


def test_target_entropies_intended_and_official():
    from gymnasium import spaces
    assert target_entropy(spaces.Box(0, 1, (5,)), "intended") == -5.0
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
    for fields in ({"alpha": 0.0}, {"alpha": -1.0}, {"discrete_actor_loss": "exact"}, {"discrete_target_entropy": "max"}):
        with pytest.raises(ConfigError):
            HasacConfig(**fields).validate(spec)
    check_compatible("hasac", spec)
    check_compatible("hasac", envs.make("matrix", "climbing").spec)


@pytest.mark.slow
def test_hasac_learns_continuous_simple_spread():
    # MPE tuned values (auto alpha, n_step 20, MSE) on smaller networks and batches
    random_return, learned = learn_simple_spread(Hasac, auto_alpha=True, n_step=20, use_huber=False)
    assert learned > random_return + 0.15 * abs(random_return)


@pytest.mark.slow
def test_hasac_learns_halfcheetah_2x3():
    # HalfCheetah-2x3 tuned values (auto alpha, n_step 10, lr 1e-3) on smaller networks
    random_return, learned = learn_halfcheetah(Hasac, auto_alpha=True, n_step=10, lr=1e-3, critic_lr=1e-3)
    assert learned > random_return + 1000


def learn_simple_spread(algo_cls, env_steps: int = 100_000, **fields) -> tuple[float, float]:
    """Train on continuous simple_spread; return (uniform-random policy's, learned
    deterministic policy's) mean evaluation return. Skips when MPE is not installed."""
    small = dict(hidden_sizes=[64, 64], batch_size=256, lr=1e-3, critic_lr=1e-3, warmup_steps=2000,
                 train_every=100, updates_per_train=10)
    return learn(algo_cls, "mpe", "simple_spread", env_steps, n_envs=10, eval_episodes=20,
                 env_options=dict(continuous_actions=True), **(small | fields))


def learn_halfcheetah(algo_cls, env_steps: int = 100_000, **fields) -> tuple[float, float]:
    """Train on MaMuJoCo HalfCheetah-2x3 at a higher update-to-data ratio than HARL's 0.05
    (0.2 here) so that 100k steps show learning on CPU; same return pair as above."""
    small = dict(hidden_sizes=[128, 128], batch_size=256, warmup_steps=5000, train_every=50,
                 updates_per_train=10)
    return learn(algo_cls, "mamujoco", "HalfCheetah-2x3", env_steps, n_envs=5, eval_episodes=5, **(small | fields))


def learn(algo_cls, family: str, task: str, env_steps: int, n_envs: int, eval_episodes: int,
          env_options: dict | None = None, **fields) -> tuple[float, float]:
    """(random policy's, trained policy's) mean deterministic evaluation return on `task`;
    skips when the family's simulator is not installed."""
    try:
        env = envs.make(family, task, n_envs=n_envs, seed=0, **(env_options or {}))
        eval_env = envs.make(family, task, n_envs=n_envs, seed=1000, **(env_options or {}))
    except (ImportError, EnvUnavailable, ConfigError) as exc:
        pytest.skip(f"{family} unavailable: {exc}")
    algo = algo_cls(env.spec, algo_cls.Config(**fields), n_envs, torch.device("cpu"), 0)
    random_policy = RandomPolicy(env.spec, RandomConfig(), n_envs, torch.device("cpu"), 0)
    random_return = evaluate(random_policy, eval_env, eval_episodes)
    run_loop(algo, env, env_steps)
    learned = evaluate(algo, eval_env, eval_episodes)
    print(f"{algo_cls.__name__} {family}/{task} after {env_steps} steps: {learned:.1f} (random {random_return:.1f})")
    return random_return, learned


def evaluate(algo, env, episodes: int = 20) -> float:
    """Mean deterministic episode return over `episodes` episodes."""
    returns, step = [], env.reset(1000)
    while len(returns) < episodes:
        step = env.step(algo.act(step, explore=False))
        returns += [e["return"] for e in step.info["episodes"]]
    return float(np.mean(returns))
