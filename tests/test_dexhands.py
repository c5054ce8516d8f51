"""Bi-DexHands adapter (envs/dexhands/). Isaac Gym cannot be installed here, so the
conversion is tested against `FakeMultiVecTask`, a TEST DOUBLE of bidexhands'
`MultiVecTaskPython` API (tests/isaac_doubles.py) — never a family, never the simulator.
The BatchedEnv contract both backends share with every batched env is checked in
tests/test_batched_env.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from isaac_doubles import ACT, HAND, SHARED, E, FakeMultiVecTask

import envs
from envs import dexhands
from envs.dexhands import isaacgym_backend
from envs.errors import ConfigError, EnvUnavailable
from harness.suites import load_suite

ROOT = Path(__file__).resolve().parents[1]


def test_tasks_are_the_papers_with_their_episode_lengths():
    assert dexhands.EPISODE_LENGTHS == {
        "CatchAbreast": 150, "CatchOver2Underarm": 75, "DoorCloseInward": 250, "DoorOpenInward": 250,
        "DoorOpenOutward": 250, "LiftUnderarm": 500, "Over": 75, "Pen": 125, "TwoCatchUnderarm": 75,
    }
    assert dexhands.resolve_task("ShadowHandPen") == "Pen"  # Bi-DexHands' class names work too
    assert isaacgym_backend._snake("ShadowHandCatchOver2Underarm") == "shadow_hand_catch_over2underarm"


def test_suite_names_match_tasks_and_official_hasac_gammas():
    runs = load_suite("paper_dexhands")["runs"]
    assert [r["task"] for r in runs] == list(dexhands.TASKS)
    gamma = {r["task"]: next(o for o in r["algo_overrides"]["hasac"] if "gamma" in o) for r in runs}
    assert {t for t, g in gamma.items() if g.endswith("0.99")} == {"CatchOver2Underarm", "DoorOpenOutward", "LiftUnderarm"}
    assert {r["task"]: r["budget"] for r in runs if r["budget"] != 10_000_000} == {"CatchOver2Underarm": 20_000_000, "Over": 50_000_000}


@pytest.mark.parametrize("task, fields, match", [
    ("Catch", {}, "unknown dexhands task 'Catch'; valid tasks: CatchAbreast"),
    ("Pen", {"episode_length": 0}, "episode_length must be >= 1"),
    ("Pen", {"physics_engine": "bullet"}, "physics_engine"),
    ("Pen", {"vectorization": "subproc"}, "vectorization is fixed"),
])
def test_bad_names_and_fields_are_config_errors(task, fields, match):
    with pytest.raises(ConfigError, match=match):
        envs.make("dexhands", task, **fields)


def test_unknown_field_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown field"):
        envs.make("dexhands", "Pen", num_envs=4)


def test_missing_isaac_gym_is_env_unavailable_naming_what_to_install():
    with pytest.raises(EnvUnavailable) as info:
        envs.make("dexhands", "Over")
    message = str(info.value)
    assert "\n" not in message
    assert "Isaac Gym Preview 4" in message and "DexterousHands" in message and "Python 3.6-3.8" in message


def test_spec_splits_two_hands_into_two_agents():
    env = isaacgym_backend.IsaacGymVecEnv(FakeMultiVecTask(), "Over")
    spec = env.spec
    assert (spec.family, spec.task, spec.n_agents, env.n_envs) == ("dexhands", "Over", 2, E)
    assert [s.shape for s in spec.obs_spaces] == [(HAND + SHARED,)] * 2
    assert spec.state_space.shape == (2 * HAND + SHARED,)
    assert spec.action_kind == "box" and all(s.high.max() == 1.0 for s in spec.action_spaces)
    assert spec.episode_limit == 4


def test_conversion_per_agent_obs_state_reward_and_action_order():
    fake = FakeMultiVecTask()
    env = isaacgym_backend.IsaacGymVecEnv(fake, "Over")
    step = env.reset()
    assert all(o.dtype == np.float32 and o.shape == (E, HAND + SHARED) for o in step.obs)
    np.testing.assert_array_equal(step.obs[0][:, 0], [0, 1, 2])  # own hand block
    np.testing.assert_array_equal(step.obs[1][:, 0], [0, -1, -2])
    np.testing.assert_array_equal(step.state[:, HAND + 1], [0, -1, -2])  # whole buffer
    a0, a1 = np.full((E, ACT), 0.5, np.float32), np.full((E, ACT), 3.0, np.float32)
    step = env.step([a0, a1])
    # agent 0's actions first (bidexhands hstacks in agent order); agent 1's clipped to its Box
    np.testing.assert_array_equal(fake.task.last_actions[:, :ACT].numpy(), a0)
    np.testing.assert_array_equal(fake.task.last_actions[:, ACT:].numpy(), np.ones((E, ACT)))
    np.testing.assert_allclose(step.reward, [ACT * 1.5] * E)
    assert step.reward.shape == (E,) and step.alive.all() and step.avail_actions is None


def test_time_limit_truncates_failure_terminates_and_stats_reset():
    env = isaacgym_backend.IsaacGymVecEnv(FakeMultiVecTask(max_episode_length=4, fail_at={1: 2}), "Over")
    env.reset()  # reset() itself takes one sim step (progress 1), as bidexhands' does
    zeros = [np.zeros((E, ACT), np.float32)] * 2
    step = env.step(zeros)  # progress 2: env 1 fails
    assert step.terminated.tolist() == [False, True, False] and not step.truncated.any()
    assert [(e["env_index"], e["length"]) for e in step.info["episodes"]] == [(1, 1)]
    np.testing.assert_array_equal(step.info["final_obs"][0], step.obs[0])  # lazy reset: last obs
    step = env.step(zeros)  # progress 3 (env 1 restarted at 1)
    step = env.step(zeros)  # progress 4 = max_episode_length: envs 0 and 2 time out
    assert step.truncated.tolist() == [True, False, True] and not step.terminated.any()
    assert sorted(e["env_index"] for e in step.info["episodes"]) == [0, 2]
    assert all(e["length"] == 3 for e in step.info["episodes"])


def test_set_state_restarts_every_env_and_close_releases_the_task():
    fake = FakeMultiVecTask()
    env = isaacgym_backend.IsaacGymVecEnv(fake, "Over")
    env.reset()
    env.step([np.zeros((E, ACT), np.float32)] * 2)
    env.set_state(env.get_state())
    assert fake.task.progress_buf.tolist() == [1] * E
    env.close()
    assert fake.closed


def test_run_without_isaac_gym_exits_2_with_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "harness.run", "env=dexhands", "task=ShadowHandCatchAbreast", "algo=random",
         "budget=1000", "eval_every=1000", f"results_dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Isaac Gym" in lines[0], out.stderr
    assert not (tmp_path / "adhoc" / "dexhands").exists() or not any((tmp_path / "adhoc" / "dexhands").rglob("DONE"))


def _fake_module(name: str, **attrs):
    """A TEST DOUBLE module standing in for an installed package in sys.modules."""
    module = type(sys)(name)
    module.__dict__.update(attrs)
    return module


def test_placeholder_bidexhands_and_torch_first_get_their_own_one_line(monkeypatch):
    isaacgym = _fake_module("isaacgym", gymapi=object())
    monkeypatch.setitem(sys.modules, "isaacgym", isaacgym)
    monkeypatch.setitem(sys.modules, "bidexhands", _fake_module("bidexhands"))  # no __path__: PyPI 0.1.1
    with pytest.raises(EnvUnavailable, match="PyPI placeholder is installed"):
        isaacgym_backend.import_simulator()

    class TorchFirst:  # what isaacgym raises when torch was imported first
        def __getattr__(self, name):
            raise ImportError("PyTorch was imported before isaacgym modules.")

    monkeypatch.setitem(sys.modules, "isaacgym", TorchFirst())
    with pytest.raises(EnvUnavailable, match="before torch; call envs.dexhands.preload"):
        isaacgym_backend.import_simulator()
