"""Env snapshots for exact resume: after `VecEnv.set_state`, the same actions give
bit-identical steps (auto-resets included), in the same env or a fresh one, across
'sync' and 'subproc', and through a pickle round trip."""

import pickle
from dataclasses import dataclass, field

import numpy as np
import pytest

import envs
from algos.common.spaces import uniform_actions
from envs.base import EnvSpec, SingleEnv, VecEnv
from envs.matrix import CLIMBING, MatrixGame

try:  # tests/ on sys.path (pytest's default) or the repo root
    from test_envs import skip_without_simulator
except ImportError:
    from tests.test_envs import skip_without_simulator


@dataclass(frozen=True)
class Case:
    family: str
    task: str
    fields: dict = field(default_factory=dict)
    before: int = 4  # random steps before the snapshot
    after: int = 3  # steps replayed after it; they must cross an episode boundary

    @property
    def id(self) -> str:
        return "-".join([self.family, self.task, *(f"{k}={v}" for k, v in self.fields.items())])

    def make(self, vectorization: str, seed: int) -> VecEnv:
        skip_without_simulator(self.family)
        fields = dict(self.fields, vectorization=vectorization)
        if vectorization == "subproc":
            fields["n_workers"] = 2  # chunks of 2 and 1 copies: slicing by chunk is exercised
        return envs.make(self.family, self.task, n_envs=3, seed=seed, **fields)


CASES = [
    Case("matrix", "climbing", before=1, after=2),
    Case("mpe", "simple_spread", {}, before=20, after=10),  # episodes are 25 steps
    Case("mpe", "simple_spread", {"continuous_actions": False}, before=20, after=10),
    Case("mamujoco", "HalfCheetah-2x3", {"episode_limit": 20}, before=15, after=10),
    # Ant reads body positions left over from the last mj_step: the integration state
    # alone would not replay its first reward bit for bit.
    Case("mamujoco", "Ant-2x4", {"episode_limit": 10}, before=6, after=6),
    Case("football", "academy_3_vs_1_with_keeper", {"episode_limit": 8}, before=5, after=6),
]


def actions_for(spec: EnvSpec, n: int) -> list:
    rng = np.random.default_rng(123)
    return [uniform_actions(spec, 3, None, rng) for _ in range(n)]


def record(env: VecEnv, actions: list) -> list[tuple]:
    out = []
    for a in actions:
        s = env.step(a)
        out.append((s.obs, s.state, s.reward, s.terminated, s.truncated, s.info["final_obs"], s.info["episodes"]))
    return out


def assert_same(expected: list[tuple], actual: list[tuple]) -> None:
    for t, (e, a) in enumerate(zip(expected, actual, strict=True)):
        e_obs, e_state, e_rew, e_term, e_trunc, e_final, e_eps = e
        a_obs, a_state, a_rew, a_term, a_trunc, a_final, a_eps = a
        assert all(np.array_equal(x, y) for x, y in zip(e_obs, a_obs, strict=True)), f"obs differ at step {t}"
        assert all(np.array_equal(x, y) for x, y in zip(e_final, a_final, strict=True)), f"final_obs differ at step {t}"
        assert np.array_equal(e_state, a_state), f"state differs at step {t}"
        assert np.array_equal(e_rew, a_rew), f"reward differs at step {t}"
        assert np.array_equal(e_term, a_term) and np.array_equal(e_trunc, a_trunc), f"done flags differ at step {t}"
        assert e_eps == a_eps, f"finished episodes differ at step {t}"


def snapshot_and_reference(case: Case, vectorization: str):
    """(env, snapshot, the replayed actions, what the env did after the snapshot)."""
    env = case.make(vectorization, seed=7)
    env.reset(7)
    actions = actions_for(env.spec, case.before + case.after)
    record(env, actions[: case.before])
    snapshot = env.get_state()
    expected = record(env, actions[case.before :])
    assert any(done for _, _, _, term, trunc, _, _ in expected for done in (term | trunc)), "no episode ended"
    return env, snapshot, actions[case.before :], expected


@pytest.mark.parametrize("vectorization", ["sync", "subproc"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_restore_replays_exactly(case, vectorization):
    other = "subproc" if vectorization == "sync" else "sync"
    env, snapshot, actions, expected = snapshot_and_reference(case, vectorization)
    fresh = case.make(other, seed=99)  # other vectorization, other seed, other trajectory
    try:
        for _ in range(2):  # restoring the same snapshot twice: it must not be aliased
            env.set_state(snapshot)
            assert_same(expected, record(env, actions))
        fresh.reset(99)
        fresh.step(actions[0])
        fresh.set_state(snapshot)
        assert_same(expected, record(fresh, actions))
    finally:
        env.close()
        fresh.close()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_snapshot_survives_pickle(case):
    env, snapshot, actions, expected = snapshot_and_reference(case, "sync")
    try:
        env.set_state(pickle.loads(pickle.dumps(snapshot)))
        assert_same(expected, record(env, actions))
    finally:
        env.close()


def test_snapshot_keeps_episode_statistics():
    pytest.importorskip("mpe2")
    env = envs.make("mpe", "simple_spread", n_envs=2, seed=0, max_cycles=3)
    rng = np.random.default_rng(0)
    env.reset()
    env.step(uniform_actions(env.spec, 2, None, rng))
    snapshot = env.get_state()
    assert [s["episode_length"] for s in snapshot] == [1, 1]
    steps = [env.step(uniform_actions(env.spec, 2, None, np.random.default_rng(1))) for _ in range(2)]
    env.set_state(snapshot)
    again = [env.step(uniform_actions(env.spec, 2, None, np.random.default_rng(1))) for _ in range(2)]
    assert steps[-1].info["episodes"] == again[-1].info["episodes"]
    assert [e["length"] for e in again[-1].info["episodes"]] == [3, 3]
    env.close()


def test_snapshot_of_another_task_is_refused():
    a = envs.make("matrix", "climbing", n_envs=2)
    b = envs.make("matrix", "penalty", n_envs=2)
    with pytest.raises(ValueError, match="matrix/climbing"):
        b.set_state(a.get_state())
    with pytest.raises(ValueError, match="1 env states for 2"):
        b.set_state(b.get_state()[:1])


class _NoSnapshot(SingleEnv):
    """A family that has not implemented get_state/set_state."""

    def __init__(self):
        self._inner = MatrixGame("climbing", np.asarray(CLIMBING, np.float64))
        self.spec = EnvSpec(**{**vars(self._inner.spec), "family": "toy"})

    def reset(self, seed):
        return self._inner.reset(seed)

    def step(self, actions):
        return self._inner.step(actions)


def test_family_without_snapshots_says_so():
    env = VecEnv(_NoSnapshot, 2)
    with pytest.raises(NotImplementedError, match="toy envs cannot be snapshotted yet; exact resume needs get_state/set_state"):
        env.get_state()
    with pytest.raises(NotImplementedError, match="toy envs cannot be snapshotted yet"):
        _NoSnapshot().set_state(None)

