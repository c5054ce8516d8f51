"""HATD3 (algos/hatd3.py): continuous-only compatibility, noise and its clipping, delayed
actor and target updates, and a slow learning check on MPE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import envs
from algos.common.registry import check_compatible
from algo_helpers import beats_random_on_spread, build, flat_params, learn_halfcheetah, learn_simple_spread, run_loop, toy_env
from algos.hatd3 import Hatd3, Hatd3Config
from envs.errors import ConfigError

torch.set_num_threads(1)


def test_hatd3_on_a_discrete_task_is_refused_with_one_line():
    spec = envs.make("matrix", "climbing").spec
    with pytest.raises(ConfigError) as exc:
        check_compatible("hatd3", spec)
    message = str(exc.value)
    assert "\n" not in message and "hatd3 needs Box actions" in message and "hasac" in message


def test_exploration_noise_stays_in_bounds_and_evaluation_is_the_actor_output():
    algo, env = build("hatd3", env=toy_env(64), warmup_steps=0, expl_noise=5.0)  # huge noise: clipping must hold
    step = env.reset(0)
    noisy = algo.act(step, explore=True)
    for actions, space in zip(noisy, env.spec.action_spaces):
        assert np.all(actions >= space.low) and np.all(actions <= space.high)
        assert np.any(actions == space.low) and np.any(actions == space.high)
    greedy = algo.act(step, explore=False)
    with torch.no_grad():
        direct = [actor(torch.as_tensor(o)).numpy() for actor, o in zip(algo.actors, step.obs)]
    assert all(np.array_equal(a, b) for a, b in zip(greedy, direct))


def test_target_smoothing_noise_is_clipped_to_noise_clip_times_half_range():
    algo, _ = build("hatd3")
    actor = algo.actors[1]  # Box(-2, 2): half-range 2
    centre = torch.zeros(20_000, 1)
    smoothed = actor.perturb(centre, std=10.0, clip=0.5, generator=torch.Generator().manual_seed(0))
    assert smoothed.abs().max().item() == pytest.approx(1.0)  # 0.5 * half-range, inside the bounds
    assert (smoothed.abs() == 1.0).float().mean() > 0.9


def test_actors_and_targets_move_only_every_policy_freq_critic_steps():
    algo, env = build("hatd3", policy_freq=3, updates_per_train=0)  # no updates from the loop
    run_loop(algo, env, 64)
    for k in range(1, 7):
        actors, targets, critic_target = flat_params(algo.actors), flat_params(algo.actors_target), flat_params(algo.critic_target)
        critic = flat_params(algo.critic)
        metrics = algo.update()
        actor_round = k % 3 == 0
        assert (not torch.equal(flat_params(algo.actors), actors)) == actor_round
        assert ("loss/actor/agent_0" in metrics) == actor_round
        assert not torch.equal(flat_params(algo.critic), critic)  # the critic learns every step
        if actor_round:
            tau = algo.config.tau
            assert torch.allclose(flat_params(algo.actors_target), (1 - tau) * targets + tau * flat_params(algo.actors), atol=1e-6)
        else:
            assert torch.equal(flat_params(algo.actors_target), targets)
            assert torch.equal(flat_params(algo.critic_target), critic_target)


def test_impossible_hatd3_values_raise_config_error():
    spec = build("hatd3")[1].spec
    for fields in ({"policy_freq": 0}, {"expl_noise": -0.1}, {"noise_clip": -1.0}):
        with pytest.raises(ConfigError):
            Hatd3Config(**fields).validate(spec)


@pytest.mark.slow
def test_hatd3_learns_continuous_simple_spread():
    random_return, learned = learn_simple_spread(Hatd3, n_step=1)
    assert beats_random_on_spread(learned, random_return)


@pytest.mark.slow
def test_hatd3_learns_halfcheetah_2x3():
    # 1-step targets: at this budget the tuned n_step=10 reaches 595 (random -224), 1-step 1136
    random_return, learned = learn_halfcheetah(Hatd3, n_step=1, lr=1e-3, critic_lr=1e-3)
    assert learned > random_return + 1000
