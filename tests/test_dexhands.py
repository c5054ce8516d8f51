"""Bi-DexHands adapter (envs/dexhands.py). Isaac Gym cannot be installed here, so the
conversion is tested against `FakeMultiVecTask`, a TEST DOUBLE of bidexhands'
`MultiVecTaskPython` API defined in this file — never a family, never the simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

import envs
from envs import dexhands
from envs.errors import ConfigError, EnvUnavailable
from harness.suites import load_suite

ROOT = Path(__file__).resolve().parents[1]
E, HAND, SHARED, ACT = 3, 4, 2, 5  # envs, per-hand obs block, shared object block, actions per hand


class FakeTask:
    """TEST DOUBLE of a Bi-DexHands task's buffers: reset_buf/progress_buf/obs_buf/rew_buf,
    lazy reset in the next step's pre-physics phase, time limit at max_episode_length."""

    def __init__(self, max_episode_length: int, fail_at: dict[int, int]):
        self.max_episode_length = max_episode_length
        self.fail_at = dict(fail_at)  # env -> step count at which it "drops the object", once
        self.reset_buf = torch.ones(E, dtype=torch.long)
        self.progress_buf = torch.zeros(E, dtype=torch.long)
        self.obs_buf = torch.zeros(E, 2 * HAND + SHARED)
        self.rew_buf = torch.zeros(E)
        self.last_actions = None

    def step(self, actions: torch.Tensor) -> None:
        self.last_actions = actions.clone()
        flagged = self.reset_buf.bool()
        self.progress_buf[flagged] = 0
        self.progress_buf += 1
        env_ids = torch.arange(E, dtype=torch.float32)[:, None]
        # hand 0 block = env id, hand 1 block = -env id, shared block = progress: easy to trace
        self.obs_buf[:, :HAND] = env_ids
        self.obs_buf[:, HAND:2 * HAND] = -env_ids
        self.obs_buf[:, 2 * HAND:] = self.progress_buf[:, None].float()
        self.rew_buf = actions.sum(1)
        failed = torch.tensor([self.fail_at.get(k) == int(self.progress_buf[k]) for k in range(E)])
        for k in np.flatnonzero(failed.numpy()):
            del self.fail_at[int(k)]  # fails once
        timeout = self.progress_buf >= self.max_episode_length
        self.reset_buf = (failed | timeout).long()


class FakeMultiVecTask:
    """TEST DOUBLE of bidexhands.tasks.hand_base.multi_vec_task.MultiVecTaskPython's API:
    step(list of N [E, A] tensors) -> (obs [E,N,D], state [E,N,S], reward [E,N,1], done [E,N],
    info, None); reset() -> (obs, state, None). Agent i sees its hand block + shared block."""

    num_agents = 2

    def __init__(self, max_episode_length: int = 4, fail_at: dict[int, int] | None = None):
        self.task = FakeTask(max_episode_length, fail_at or {})
        self.num_envs = E
        self.observation_space = [spaces.Box(-np.inf, np.inf, (HAND + SHARED,))] * 2
        self.share_observation_space = [spaces.Box(-np.inf, np.inf, (2 * HAND + SHARED,))] * 2
        self.action_space = (spaces.Box(-1, 1, (ACT,)), spaces.Box(-1, 1, (ACT,)))
        self.closed = False

    def _outputs(self):
        buf = self.task.obs_buf.clamp(-5, 5)
        hands = [torch.cat([buf[:, :HAND], buf[:, 2 * HAND:]], 1), torch.cat([buf[:, HAND:2 * HAND], buf[:, 2 * HAND:]], 1)]
        return torch.stack(hands, 1), torch.stack([buf, buf], 1)

    def step(self, actions):
        self.task.step(torch.hstack(list(actions)))
        obs, state = self._outputs()
        reward = torch.stack([self.task.rew_buf] * 2, 1)[..., None]
        done = torch.stack([self.task.reset_buf] * 2, 1)
        return obs, state, reward, done, torch.zeros(0), None

    def reset(self):
        self.task.step(torch.zeros(E, 2 * ACT))
        obs, state = self._outputs()
        return obs, state, None

    def close(self):
        self.closed = True


def test_tasks_are_the_papers_with_their_episode_lengths():
    assert dexhands.EPISODE_LENGTHS == {
        "CatchAbreast": 150, "CatchOver2Underarm": 75, "DoorCloseInward": 250, "DoorOpenInward": 250,
        "DoorOpenOutward": 250, "LiftUnderarm": 500, "Over": 75, "Pen": 125, "TwoCatchUnderarm": 75,
    }
    assert dexhands.resolve_task("ShadowHandPen") == "Pen"  # Bi-DexHands' class names work too
    assert dexhands._snake("ShadowHandCatchOver2Underarm") == "shadow_hand_catch_over2underarm"


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
    env = dexhands.DexHandsVecEnv(FakeMultiVecTask(), "Over")
    spec = env.spec
    assert (spec.family, spec.task, spec.n_agents, env.n_envs) == ("dexhands", "Over", 2, E)
    assert [s.shape for s in spec.obs_spaces] == [(HAND + SHARED,)] * 2
    assert spec.state_space.shape == (2 * HAND + SHARED,)
    assert spec.action_kind == "box" and all(s.high.max() == 1.0 for s in spec.action_spaces)
    assert spec.episode_limit == 4


def test_conversion_per_agent_obs_state_reward_and_action_order():
    fake = FakeMultiVecTask()
    env = dexhands.DexHandsVecEnv(fake, "Over")
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
    env = dexhands.DexHandsVecEnv(FakeMultiVecTask(max_episode_length=4, fail_at={1: 2}), "Over")
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
    env = dexhands.DexHandsVecEnv(fake, "Over")
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
        dexhands._import_simulator()

    class TorchFirst:  # what isaacgym raises when torch was imported first
        def __getattr__(self, name):
            raise ImportError("PyTorch was imported before isaacgym modules.")

    monkeypatch.setitem(sys.modules, "isaacgym", TorchFirst())
    with pytest.raises(EnvUnavailable, match="before torch; call envs.dexhands.preload"):
        dexhands._import_simulator()
