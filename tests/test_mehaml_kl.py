"""MEHAML-KL (algos/mehaml_kl.py): the KL drift is a valid MEHAML drift (zero with zero
gradient at the anchor, positive elsewhere), the trust region holds, β = 0 is HASAC exactly,
and the algorithm reaches the same analytic soft QRE as HASAC on a matrix game."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import envs
from algos.common.qre import soft_qre, total_variation
from algo_helpers import build, flat_params, run_loop, toy_env
from algos.mehaml_kl import MehamlKl, MehamlKlConfig, categorical_kl, gaussian_kl
from envs.errors import ConfigError
from envs.matrix import CLIMBING
from harness.run import main

torch.set_num_threads(1)


def filled(env_kind: str, seed: int = 0, **fields) -> tuple[MehamlKl, object]:
    """A MEHAML-KL learner on a Discrete (matrix) or Box (toy) task with a replay buffer
    that can serve a batch, and that batch."""
    if env_kind == "discrete":
        env = envs.make("matrix", "climbing", n_envs=8, seed=seed)
        config = MehamlKlConfig(hidden_sizes=[16], batch_size=32, warmup_steps=64, updates_per_train=0, n_step=1, **fields)
        algo = MehamlKl(env.spec, config, 8, torch.device("cpu"), seed)
    else:
        algo, env = build("mehaml_kl", seed=seed, updates_per_train=0, **fields)
    run_loop(algo, env, 64)
    return algo, algo.buffer.sample(32, algo.rng, algo.device)


@pytest.mark.parametrize("kind", ["discrete", "box"])
def test_drift_is_zero_with_zero_gradient_at_the_anchor_and_positive_elsewhere(kind):
    algo, batch = filled(kind)
    for i in range(algo.spec.n_agents):
        actor = algo.actors[i]
        assert torch.equal(flat_params(actor), flat_params(algo.anchors[i]))
        penalty = algo.drift_penalty(i, batch)
        actor.zero_grad()
        penalty.backward()
        assert abs(penalty.item()) < 1e-7
        assert max(p.grad.abs().max().item() for p in actor.parameters()) < 1e-6
        with torch.no_grad():  # move the policy away from the anchor
            for p in actor.parameters():
                p.add_(0.3 * torch.randn_like(p))
        penalty = algo.drift_penalty(i, batch)
        actor.zero_grad()
        penalty.backward()
        assert penalty.item() > 1e-4
        assert max(p.grad.abs().max().item() for p in actor.parameters()) > 1e-4


def test_closed_form_kls_match_torch():
    torch.manual_seed(0)
    logits_p, logits_q = torch.randn(5, 4), torch.randn(5, 4)
    expected = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=logits_p),
                                                 torch.distributions.Categorical(logits=logits_q))
    got = categorical_kl(torch.log_softmax(logits_p, -1), torch.log_softmax(logits_q, -1))
    assert torch.allclose(got.squeeze(-1), expected, atol=1e-6)
    mu_p, mu_q, ls_p, ls_q = torch.randn(4, 5, 3).unbind(0)
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mu_p, ls_p.exp()),
                                                 torch.distributions.Normal(mu_q, ls_q.exp())).sum(-1)
    assert torch.allclose(gaussian_kl(mu_p, ls_p, mu_q, ls_q).squeeze(-1), expected, atol=1e-5)


def test_zero_drift_without_trust_region_is_hasac_exactly():
    params = []
    for name in ("hasac", "mehaml_kl"):
        algo, env = build(name, seed=2, **({"kl_coef": 0.0, "anchor_every": 3} if name == "mehaml_kl" else {}))
        run_loop(algo, env, 120, seed=2)
        assert algo.updates > 20
        params.append(torch.cat([flat_params(algo.actors), flat_params(algo.critic)]))
    assert torch.equal(params[0], params[1])
    drifting, env = build("mehaml_kl", seed=2, kl_coef=5.0, anchor_every=3)
    run_loop(drifting, env, 120, seed=2)
    assert not torch.equal(params[0], torch.cat([flat_params(drifting.actors), flat_params(drifting.critic)]))


@pytest.mark.parametrize("kind", ["discrete", "box"])
def test_backtracking_brings_a_far_step_back_into_the_trust_region(kind):
    delta = 1e-3
    algo, batch = filled(kind, kl_max=delta)
    i = 0
    before = [p.detach().clone() for p in algo.actors[i].parameters()]
    with torch.no_grad():  # a step far outside the region
        for p in algo.actors[i].parameters():
            p.add_(0.5 * torch.randn_like(p))
    eta = algo.backtrack(i, batch, before)
    kl = algo.kl_to_anchor(i, batch.obs[i], batch.avail[i]).mean().item()
    assert 0 <= eta < 1 and kl <= delta
    if eta > 0:  # the kept step lies on the segment from the old to the new parameters
        assert not torch.equal(flat_params(algo.actors[i]), torch.cat([b.reshape(-1) for b in before]))


def test_trust_region_step_scales_are_logged_and_some_steps_are_shrunk():
    algo, env = build("mehaml_kl", kl_max=1e-4, anchor_every=20, lr=1e-2, kl_coef=0.0)
    _, _, metrics = run_loop(algo, env, 200)
    scales = [v for k, v in metrics.items() if k.startswith("step_scale/")]
    assert len(scales) == algo.spec.n_agents and all(0 <= s <= 1 for s in scales) and min(scales) < 1
    assert any(k.startswith("kl/agent_") for k in metrics)


def test_resume_keeps_the_anchor():
    algo, env = build("mehaml_kl", seed=1, anchor_every=7, kl_coef=1.0)
    _, total, _ = run_loop(algo, env, 60, seed=1)
    saved = copy.deepcopy(algo.state_dict())
    run_loop(algo, toy_env(seed=7), 60, seed=7, start=total)
    resumed, _ = build("mehaml_kl", seed=99, anchor_every=7, kl_coef=1.0)
    resumed.load_state_dict(saved)
    run_loop(resumed, toy_env(seed=7), 60, seed=7, start=total)
    assert torch.equal(flat_params(algo.anchors), flat_params(resumed.anchors))
    assert torch.equal(flat_params(algo.actors), flat_params(resumed.actors))


def test_mehaml_kl_reaches_the_same_soft_qre_as_hasac():
    alpha, n_envs = 10.0, 16
    env = envs.make("matrix", "climbing", n_envs=n_envs, seed=0)
    config = MehamlKlConfig(alpha=alpha, discrete_actor_loss="expected", kl_coef=2.0, anchor_every=10,
                            hidden_sizes=[32, 32], lr=1e-2, critic_lr=1e-2, batch_size=128, buffer_size=20_000,
                            n_step=1, warmup_steps=128, train_every=n_envs, updates_per_train=1, use_huber=False)
    algo = MehamlKl(env.spec, config, n_envs, torch.device("cpu"), 0)
    step, total, kls = env.reset(0), 0, []
    while algo.updates < 500:
        step, total, metrics = run_loop(algo, env, n_envs, step=step, start=total)
        kls += [v for k, v in metrics.items() if k.startswith("kl/")]
    assert max(kls) > 1e-3  # the drift was active
    qre = soft_qre(np.array(CLIMBING, float), alpha)
    for p, q in zip(algo.policy_probs(step), qre):
        assert total_variation(p, q) < 0.05
        assert total_variation(p, np.full(len(p), 1 / len(p))) > 0.1


@pytest.mark.parametrize("field,value", [("kl_coef", -0.5), ("anchor_every", 0), ("kl_max", -1.0), ("max_backtracks", -1)])
def test_impossible_values_raise_config_error(field, value):
    with pytest.raises(ConfigError, match=field):
        MehamlKlConfig(**{field: value}).validate(toy_env().spec)


def test_bad_kl_coef_on_the_command_line_exits_2_with_one_line(tmp_path, capsys):
    assert main(["env=matrix", "task=climbing", "algo=mehaml_kl", "algo.kl_coef=-1", f"results_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kl_coef must be >= 0" in err
    assert not any(tmp_path.iterdir())
