"""Packed seeds (algos/common/packed.py): K seeds trained as one batched computation compute
what K lone learners compute. Each test drives lone learners and a packed learner over the
same transitions and compares actions, every update's metrics (same keys, same order) and,
at the end, every tensor of each seed's state_dict.

Tolerance: batched products reassociate sums, so values agree to float rounding, not
bit for bit: over 20 updates the largest differences seen are ~2.4e-7 relative in metrics
and actions and ~5e-7 absolute in parameters and Adam moments (CPU); the tests allow
RTOL = 1e-5 relative and ATOL = 1e-6 absolute."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import envs
from algos.common.registry import algorithm_class
from algos.hasac_packed import PackedHasac
from algos.hatd3_packed import PackedHatd3
from envs.errors import ConfigError

from algo_helpers import masked_agent_states_env, masked_env, small_config, toy_env
from algo_helpers import toy_discrete as discrete_env

torch.set_num_threads(1)
RTOL, ATOL = 1e-5, 1e-6
PACKED = {"hasac": PackedHasac, "hatd3": PackedHatd3}  # the batched forms (make_pack picks them on a GPU)
SEEDS = (0, 1, 5)


def mpe_env(continuous: bool):
    return lambda n_envs, seed: envs.make("mpe", "simple_spread", n_envs=n_envs, seed=seed, continuous_actions=continuous)


CASES = {  # name: (algorithm, env factory (n_envs, seed), config overrides)
    "hasac-box-heterogeneous": ("hasac", toy_env, {}),
    "hasac-box-auto-alpha": ("hasac", toy_env, {"auto_alpha": True}),
    "hasac-box-mpe": ("hasac", mpe_env(True), {"auto_alpha": True}),
    "hasac-discrete-masks-deaths": ("hasac", masked_env, {"auto_alpha": True}),
    "hasac-discrete-masks-valuenorm": ("hasac", masked_env, {"auto_alpha": True, "use_valuenorm": True}),  # HARL's SMAC files
    "hasac-discrete-heterogeneous": ("hasac", discrete_env, {}),
    "hasac-discrete-mpe": ("hasac", mpe_env(False), {}),
    "hatd3-box-heterogeneous": ("hatd3", toy_env, {}),
    "hatd3-box-mpe-every-update": ("hatd3", mpe_env(True), {"policy_freq": 1}),
}


def learners(algo: str, spec, seeds, n_envs: int, **overrides):
    return [algorithm_class(algo)(spec, small_config(algo, **overrides), n_envs, torch.device("cpu"), s) for s in seeds]


def close(a: float, b: float) -> bool:
    return abs(a - b) <= RTOL * max(1.0, abs(a))


def assert_states_equal(a, b, path: str = "") -> None:
    """Two state_dicts hold the same keys, shapes, dtypes and values (tensors to ATOL)."""
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for key in a:
            assert_states_equal(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for j, (x, y) in enumerate(zip(a, b)):
            assert_states_equal(x, y, f"{path}[{j}]")
    elif isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, path
        if a.dtype in (torch.uint8, torch.int64, torch.bool):
            assert torch.equal(a, b), path
        else:
            assert torch.allclose(a, b, rtol=0.0, atol=ATOL), (path, float((a - b).abs().max()))
    else:
        assert a == b, (path, a, b)


def drive(lone, packed, env_list, steps, updates: int, total: int = 0):
    """Collect with the lone learners' actions (both sides store the same transitions),
    check the packed actions against them, and run `updates` updates on both sides."""
    done = 0
    while done < updates:
        lone_actions = [l.act(s) for l, s in zip(lone, steps)]
        for mine, theirs in zip(packed.act(steps), lone_actions):
            for p, q in zip(mine, theirs):
                assert p.dtype == q.dtype and p.shape == q.shape
                np.testing.assert_allclose(p, q, rtol=RTOL, atol=ATOL)
        nxts = [e.step(a) for e, a in zip(env_list, lone_actions)]
        total += env_list[0].n_envs
        for l, s, a, n in zip(lone, steps, lone_actions, nxts):
            l.observe(s, a, n)
        packed.observe(steps, lone_actions, nxts)
        while lone[0].ready(total):
            assert packed.ready(total)
            expected, got = [l.update() for l in lone], packed.update()
            done += 1
            for e, g in zip(expected, got):
                assert list(e) == list(g)
                assert all(close(e[k], g[k]) for k in e), {k: (e[k], g[k]) for k in e if not close(e[k], g[k])}
        assert not packed.ready(total)
        steps = nxts
    return steps, total


@pytest.mark.parametrize("case", CASES)
def test_packed_seeds_update_as_lone_runs_for_20_updates(case):
    algo, make_env, overrides = CASES[case]
    env_list = [make_env(4, s) for s in SEEDS]
    spec = env_list[0].spec
    lone = learners(algo, spec, SEEDS, 4, **overrides)
    packed = PACKED[algo](learners(algo, spec, SEEDS, 4, **overrides))
    drive(lone, packed, env_list, [e.reset(s) for e, s in zip(env_list, SEEDS)], updates=20)
    for l, p in zip(lone, packed.sync()):
        assert_states_equal(l.state_dict(), p.state_dict())
    for e in env_list:
        e.close()


def collect_until_ready(packs, env_list, steps, total: int = 0):
    """Step every pack's seeds with the first pack's actions until an update is owed (the
    others act too, so that every pack's generators move alike)."""
    while not packs[0].ready(total):
        actions = [p.act(steps) for p in packs][0]
        nxts = [e.step(a) for e, a in zip(env_list, actions)]
        total += env_list[0].n_envs
        for p in packs:
            p.observe(steps, actions, nxts)
        steps = nxts
    return steps, total


@pytest.mark.parametrize("algo", ["hasac", "hatd3"])
def test_packed_seeds_resume_from_their_lone_checkpoints(algo):
    """sync → each seed's state_dict → fresh lone learners → a new pack continues exactly as
    the uninterrupted pack (bit for bit: the same batched arithmetic on both sides)."""
    overrides = {"auto_alpha": True} if algo == "hasac" else {}
    env_list = [toy_env(4, s) for s in SEEDS]
    spec = env_list[0].spec
    packed = PACKED[algo](learners(algo, spec, SEEDS, 4, **overrides))
    collect_until_ready([packed], env_list, [e.reset(s) for e, s in zip(env_list, SEEDS)])
    for _ in range(5):
        packed.update()
    resumed = PACKED[algo](learners(algo, spec, SEEDS, 4, **overrides))
    for learner, state in zip(resumed.learners, [l.state_dict() for l in packed.sync()]):
        learner.load_state_dict(state)
    resumed.reload()
    for _ in range(8):
        assert resumed.update() == packed.update()
    for a, b in zip(resumed.sync(), packed.sync()):
        assert_states_equal(a.state_dict(), b.state_dict())


def test_packed_update_under_bf16_stays_finite_and_near_fp32():
    env_list = [toy_env(4, s) for s in SEEDS]
    spec = env_list[0].spec
    fp32 = PackedHasac(learners("hasac", spec, SEEDS, 4, auto_alpha=True))
    bf16 = PackedHasac(learners("hasac", spec, SEEDS, 4, auto_alpha=True, bf16=True))
    collect_until_ready([fp32, bf16], env_list, [e.reset(s) for e, s in zip(env_list, SEEDS)])
    for x, y in zip(fp32.update(), bf16.update()):
        assert list(x) == list(y) and all(np.isfinite(v) for v in y.values())
        assert abs(x["loss/critic"] - y["loss/critic"]) < 0.05 * abs(x["loss/critic"])


def test_a_pack_of_different_configs_the_expected_discrete_loss_or_per_agent_states_is_refused():
    spec = toy_env().spec
    mixed = learners("hasac", spec, [0], 4) + learners("hasac", spec, [1], 4, lr=1e-2)
    with pytest.raises(ValueError, match="one config"):
        PackedHasac(mixed)
    with pytest.raises(ConfigError, match="expected"):
        PackedHasac(learners("hasac", masked_env().spec, SEEDS, 4, discrete_actor_loss="expected"))
    with pytest.raises(ConfigError, match="pack>1 trains HASAC on one state per env copy only"):
        PackedHasac(learners("hasac", masked_agent_states_env().spec, SEEDS, 4))
