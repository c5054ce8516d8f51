"""One conformance suite for every BatchedEnv (envs/base.py): VecEnv over cheap families,
SMAX (where jaxmarl is installed), and the dexhands backends (Isaac Gym, Isaac Lab) over
their simulators' test doubles (tests/isaac_doubles.py). Each must keep Step's contract the same way: arrays that
match the spec, `info["final_*"]` equal to the current arrays except in rows that just
ended, one `info["episodes"]` record per ended row whose return and length are the sums
the caller sees, terminated apart from truncated, snapshots per copy, an idempotent close."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from gymnasium import spaces
from isaac_doubles import FakeMultiVecTask, isaaclab_over_double

import envs
from envs.base import BatchedEnv, EpisodeStats, ProcessBatchedEnv, Step, final_views

@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], BatchedEnv]
    needs: str | None = None  # module to skip on
    lazy_reset: bool = False  # done rows still show the last view (Isaac Gym's convention)
    n_steps: int = 24  # enough for episodes to end


def _isaacgym_double() -> BatchedEnv:
    from envs.dexhands.isaacgym_backend import IsaacGymVecEnv

    return IsaacGymVecEnv(FakeMultiVecTask(max_episode_length=5, fail_at={1: 3}), "Over")


def _in_worker() -> BatchedEnv:
    return ProcessBatchedEnv(isaaclab_over_double)


CASES = [
    Case("vecenv-matrix", lambda: envs.make("matrix", "climbing", n_envs=3, seed=0)),
    Case("vecenv-mpe", lambda: envs.make("mpe", "simple_spread", n_envs=3, seed=0, max_cycles=7), needs="mpe2"),
    Case("vecenv-mpe-subproc", lambda: envs.make("mpe", "simple_spread", n_envs=3, seed=0, max_cycles=7,
                                                 vectorization="subproc", n_workers=2), needs="mpe2"),
    # 3m's own limit (60) and 4 copies: the shape tests/test_smac.py compiles, compiled once
    Case("smax-3m", lambda: envs.make("smac", "3m", n_envs=4, seed=0, backend="smax"), needs="jaxmarl", n_steps=61),
    Case("dexhands-isaacgym-double", _isaacgym_double, lazy_reset=True),
    Case("dexhands-isaaclab-double", isaaclab_over_double),
    # the same env in a worker process: how the harness's second Isaac Lab simulation runs
    Case("dexhands-isaaclab-double-in-worker", _in_worker),
]


def random_actions(spec, n_envs: int, rng: np.random.Generator, avail=None) -> list[np.ndarray]:
    out = []
    for i, space in enumerate(spec.action_spaces):
        if isinstance(space, spaces.Box):
            out.append(rng.uniform(space.low, space.high, (n_envs, *space.shape)).astype(np.float32))
        elif avail is not None:
            out.append(np.array([rng.choice(np.flatnonzero(row)) for row in avail[i]]))
        else:
            out.append(rng.integers(space.n, size=n_envs))
    return out


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.name)
def played(request):
    """(case, env, steps): the case's random steps after a reset, env still open."""
    case = request.param
    if case.needs:
        pytest.importorskip(case.needs)
    env = case.build()
    rng = np.random.default_rng(0)
    steps = [env.reset()]
    for _ in range(case.n_steps):
        steps.append(env.step(random_actions(env.spec, env.n_envs, rng, steps[-1].avail_actions)))
    yield case, env, steps
    env.close()


def check_arrays(spec, step: Step, n_envs: int) -> None:
    assert len(step.obs) == spec.n_agents
    for obs, space in zip(step.obs, spec.obs_spaces):
        assert obs.shape == (n_envs, *space.shape) and obs.dtype == np.float32
    assert step.state.shape == (n_envs, *spec.state_space.shape) and step.state.dtype == np.float32
    assert step.reward.shape == (n_envs,) and step.reward.dtype == np.float32
    assert step.terminated.dtype == step.truncated.dtype == bool
    assert not np.any(step.terminated & step.truncated)
    assert step.alive.shape == (n_envs, spec.n_agents) and step.alive.dtype == bool
    if spec.has_avail_actions:
        assert [a.shape for a in step.avail_actions] == [(n_envs, s.n) for s in spec.action_spaces]
    else:
        assert step.avail_actions is None


def test_is_a_batched_env_with_arrays_matching_its_spec(played):
    _, env, steps = played
    assert isinstance(env, BatchedEnv) and env.n_envs == steps[0].n_envs
    for step in steps:
        check_arrays(env.spec, step, env.n_envs)
        final = Step(step.info["final_obs"], step.info["final_state"], step.reward, step.terminated,
                     step.truncated, step.info["final_avail_actions"], step.info["final_alive"])
        check_arrays(env.spec, final, env.n_envs)


def test_reset_starts_every_episode(played):
    _, _, steps = played
    first = steps[0]
    assert not first.done.any() and not first.reward.any() and first.info["episodes"] == []
    assert all(np.array_equal(f, o) for f, o in zip(first.info["final_obs"], first.obs))


def test_final_views_differ_from_the_current_ones_only_in_ended_rows(played):
    case, _, steps = played
    for step in steps[1:]:
        running = ~step.done
        for final, obs in zip(step.info["final_obs"], step.obs):
            assert np.array_equal(final[running], obs[running])
            if case.lazy_reset:
                assert np.array_equal(final, obs)
        assert np.array_equal(step.info["final_state"][running], step.state[running])
        assert np.array_equal(step.info["final_alive"][running], step.alive[running])


def test_episode_records_are_the_sums_the_caller_sees(played):
    _, env, steps = played
    returns, lengths = np.zeros(env.n_envs), np.zeros(env.n_envs, int)
    ended = 0
    for step in steps[1:]:
        returns += step.reward
        lengths += 1
        records = step.info["episodes"]
        assert [e["env_index"] for e in records] == np.flatnonzero(step.done).tolist()
        for e in records:
            k = e["env_index"]
            assert type(e["return"]) is float and type(e["length"]) is int
            assert e["length"] == lengths[k] <= env.spec.episode_limit
            assert e["return"] == pytest.approx(returns[k], rel=1e-5, abs=1e-5)
            if env.spec.success_metric == "win_rate":
                assert isinstance(e["win"], bool)
        returns[step.done], lengths[step.done] = 0.0, 0
        ended += len(records)
    assert ended > 0, "no episode ended: the case saw no reset"


def test_snapshots_are_one_per_copy_and_refuse_another_count(played):
    _, env, _ = played
    states = env.get_state()
    assert len(states) == env.n_envs
    with pytest.raises(ValueError, match=f"1 env states for {env.n_envs} env copies"):
        env.set_state(states[:1])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_close_twice_is_harmless(case):
    if case.needs:
        pytest.importorskip(case.needs)
    env = case.build()
    env.reset()
    env.close()
    env.close()


def test_episode_stats_by_hand():
    stats = EpisodeStats(3)
    assert stats.add(np.array([1.0, 2.0, 3.0]), np.array([False, False, False])) == []
    records = stats.add(np.array([0.5, 0.5, 0.5]), np.array([False, True, True]), {2: {"win": True}})
    assert records == [{"return": 2.5, "length": 2, "env_index": 1},
                       {"return": 3.5, "length": 2, "win": True, "env_index": 2}]
    assert [stats.snapshot(k) for k in range(3)] == [{"episode_return": 1.5, "episode_length": 2},
                                                    {"episode_return": 0.0, "episode_length": 0},
                                                    {"episode_return": 0.0, "episode_length": 0}]
    stats.restore([{"episode_return": 4.0, "episode_length": 7}] * 3)
    assert stats.add(np.ones(3), np.array([True, False, False]))[0] == {"return": 5.0, "length": 8, "env_index": 0}


def test_final_views_write_only_the_ended_rows_and_share_otherwise():
    obs = [np.zeros((3, 2), np.float32)]
    step = Step(obs, np.zeros((3, 4), np.float32), np.zeros(3, np.float32), np.zeros(3, bool), np.zeros(3, bool),
                None, np.ones((3, 1), bool))
    shared = final_views(step, np.array([], int))
    assert shared["final_obs"][0] is obs[0] and shared["final_state"] is step.state
    last = ([np.full((1, 2), 7.0)], np.full((1, 4), 9.0), None, np.zeros((1, 1), bool))
    out = final_views(step, np.array([1]), last)
    assert out["final_obs"][0].tolist() == [[0, 0], [7, 7], [0, 0]] and not obs[0].any()
    assert out["final_state"][:, 0].tolist() == [0, 9, 0] and out["final_alive"][:, 0].tolist() == [True, False, True]
