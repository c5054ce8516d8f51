"""Google Research Football adapter: interface shapes on every paper scenario, the global
state's documented layout, score rate, termination vs truncation, seeding, and the
one-line errors. Tests that run the engine skip when gfootball is not built
(`bash scripts/install_football.sh`)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from gymnasium import spaces

import envs
from envs import football
from envs.errors import ConfigError, EnvUnavailable
from harness.evaluate import evaluate

PAPER_SCENARIOS = ("academy_3_vs_1_with_keeper", "academy_counterattack_easy", "academy_counterattack_hard",
                   "academy_pass_and_shoot_with_keeper", "academy_run_pass_and_shoot_with_keeper", "academy_corner")
IDLE, RIGHT, SHOT = 0, 5, 12  # gfootball's default action set


def needs_engine() -> None:
    pytest.importorskip("gfootball", reason="gfootball is not built here: bash scripts/install_football.sh")


def make(task: str, n_envs: int = 1, seed: int = 0, **fields) -> envs.VecEnv:
    needs_engine()
    fields.setdefault("vectorization", "sync")
    return envs.make("football", task, n_envs=n_envs, seed=seed, **fields)


def constant(spec: envs.EnvSpec, n_envs: int, action: int) -> list[np.ndarray]:
    return [np.full(n_envs, action) for _ in range(spec.n_agents)]


# -- without the engine ------------------------------------------------------------------

def test_missing_engine_names_the_install_script(monkeypatch):
    for name in [n for n in sys.modules if n == "gfootball" or n.startswith("gfootball.")] + ["gfootball"]:
        monkeypatch.setitem(sys.modules, name, None)  # find_spec("gfootball") is now None
    with pytest.raises(EnvUnavailable, match=r"env=football needs .*bash scripts/install_football\.sh") as info:
        envs.make("football", "academy_3_vs_1_with_keeper")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "task, fields, fragment",
    [
        ("academy_4_vs_4", {}, "unknown football task .*valid tasks: academy_3_vs_1_with_keeper"),
        ("academy_corner", {"rewards": "checkpoints"}, "env.rewards must be"),
        ("academy_corner", {"rewards": "scoring,goals"}, "env.rewards must be"),
        ("academy_corner", {"episode_limit": 0}, r"episode_limit must be in 1\.\.401"),
        ("academy_corner", {"episode_limit": 402}, r"episode_limit must be in 1\.\.401"),
    ],
)
def test_bad_names_and_fields_are_one_line_config_errors(task, fields, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        envs.make("football", task, **fields)
    assert "\n" not in str(info.value)


def fake_raw(n_agents: int, n_left: int, n_right: int, owner: int, mode: int, active: list[int]) -> list[dict]:
    """Raw observations shaped like gfootball's, with distinct values per field."""
    rng = np.random.default_rng(0)
    shared = {
        "left_team": rng.uniform(-1, 1, (n_left, 2)), "left_team_direction": rng.uniform(-0.01, 0.01, (n_left, 2)),
        "right_team": rng.uniform(-1, 1, (n_right, 2)), "right_team_direction": rng.uniform(-0.01, 0.01, (n_right, 2)),
        "ball": rng.uniform(-1, 1, 3), "ball_direction": rng.uniform(-0.1, 0.1, 3),
        "ball_owned_team": owner, "game_mode": mode,
    }
    return [dict(shared, active=active[k]) for k in range(n_agents)]


def check_layout(state: np.ndarray, raw: list[dict]) -> None:
    """The module docstring's layout, slice by slice."""
    first = raw[0]
    assert state.shape == (104 + 11 * len(raw),) and state.dtype == np.float32
    for start, key in ((0, "left_team"), (22, "left_team_direction"), (44, "right_team"), (66, "right_team_direction")):
        values = np.asarray(first[key], np.float32).ravel()
        assert np.array_equal(state[start : start + values.size], values), key
        assert np.all(state[start + values.size : start + 22] == -1.0), f"{key} padding"
    assert np.array_equal(state[88:91], np.asarray(first["ball"], np.float32))
    assert np.array_equal(state[91:94], np.asarray(first["ball_direction"], np.float32))
    assert np.array_equal(state[94:97], np.eye(3)[first["ball_owned_team"] + 1])
    assert np.array_equal(state[97:104], np.eye(7)[first["game_mode"]])
    for k, player in enumerate(raw):
        expected = np.zeros(11) if player["active"] == -1 else np.eye(11)[player["active"]]
        assert np.array_equal(state[104 + 11 * k : 115 + 11 * k], expected), f"agent {k} active one-hot"


@pytest.mark.parametrize(
    "n_agents, n_left, n_right, owner, mode, active",
    [(3, 4, 2, 0, 0, [1, 2, 3]), (2, 3, 2, -1, 4, [2, -1]), (11, 11, 11, 1, 6, list(range(11)))],
)
def test_state_builder_follows_the_documented_layout(n_agents, n_left, n_right, owner, mode, active):
    raw = fake_raw(n_agents, n_left, n_right, owner, mode, active)
    state = football.global_state(raw)
    assert state.shape == (football.state_dim(n_agents),) == (115 + 11 * (n_agents - 1),)  # HARL's size
    check_layout(state, raw)


# -- with the engine -----------------------------------------------------------------------

@pytest.mark.parametrize("task", PAPER_SCENARIOS)
def test_random_episode_of_each_scenario_converts_to_the_interface(task):
    env = make(task)
    spec, n = env.spec, football.AGENTS[task]
    assert spec.n_agents == n and spec.success_metric == "score" and spec.episode_limit == 401
    assert spec.action_spaces == (spaces.Discrete(19),) * n and not spec.has_avail_actions
    assert [s.shape for s in spec.obs_spaces] == [(115,)] * n and spec.state_space.shape == (104 + 11 * n,)
    rng = np.random.default_rng(0)
    step = env.reset()
    episodes = []
    for _ in range(spec.episode_limit):
        for obs in step.obs:
            assert obs.shape == (1, 115) and obs.dtype == np.float32
        assert step.state.shape == (1, 104 + 11 * n) and step.state.dtype == np.float32
        assert step.alive.all() and step.avail_actions is None
        # the state's team blocks are the obs' (simple115v2 holds them at 0:88)
        assert np.array_equal(step.state[0, :88], step.obs[0][0, :88])
        step = env.step([rng.integers(19, size=1) for _ in range(n)])
        assert step.reward.shape == (1,) and step.reward.dtype == np.float32
        if step.done.any():
            episodes = step.info["episodes"]
            break
    env.close()
    assert len(episodes) == 1, "a random episode did not end within the scenario's limit"
    assert isinstance(episodes[0]["score"], bool) and 1 <= episodes[0]["length"] <= 401


def test_state_from_the_engine_follows_the_documented_layout():
    needs_engine()
    config = football.Config(vectorization="sync")
    env = football.env_factory("academy_3_vs_1_with_keeper", config)()
    view = env.reset(3)
    for _ in range(5):
        view, *_ = env.step([np.array(RIGHT)] * 3)
    raw = env._env.unwrapped.observation()
    assert len(raw) == 3 and len(raw[0]["left_team"]) == 4 and len(raw[0]["right_team"]) == 2
    check_layout(view.state, raw)
    assert len({p["active"] for p in raw}) == 3  # three distinct controlled players
    env.close()


class ShootAtGoal:
    """A scripted policy for academy_empty_goal_close: dribble right, then shoot."""

    def __init__(self):
        self.t = None

    def act(self, step: envs.Step, explore: bool = False) -> list[np.ndarray]:
        self.t = np.zeros(step.n_envs, int) if self.t is None else self.t + 1
        self.t[step.done] = 0
        return [np.where(self.t < 3, RIGHT, SHOT)]


def test_score_rate_is_one_when_every_scripted_episode_scores():
    env = make("academy_empty_goal_close", n_envs=2)
    result = evaluate(ShootAtGoal(), env, n_episodes=4, seed=0)
    env.close()
    assert result.row("score")["score"] == 1.0
    assert all(r >= 1.0 for r in result.returns)  # scoring reward 1 plus any checkpoints


def test_idling_episode_scores_nothing_and_is_truncated_at_the_limit():
    env = make("academy_empty_goal_close", episode_limit=15)
    env.reset()
    steps = [env.step(constant(env.spec, 1, IDLE)) for _ in range(15)]
    env.close()
    assert not any(s.done.any() for s in steps[:-1])
    assert steps[-1].truncated.all() and not steps[-1].terminated.any()
    (episode,) = steps[-1].info["episodes"]
    assert episode["length"] == 15 and episode["score"] is False


def test_engine_clock_truncates_and_rules_terminate():
    """The engine's own clock (shortened to 20 steps so that idling reaches it) is a
    truncation on step game_duration + 1; a shot that ends the episode terminates."""
    needs_engine()
    env = football.env_factory("academy_empty_goal_close", football.Config(vectorization="sync"))()
    env.reset(0)
    env._env.unwrapped._env._env.config.game_duration = 20  # the running episode's scenario config
    for t in range(1, 22):
        _, _, terminated, truncated, episode = env.step([np.array(IDLE)])
        assert (terminated, truncated) == (False, t == 21), f"step {t}"
    assert episode == {"score": False}
    env.reset(None)
    for t in range(1, 100):
        _, reward, terminated, truncated, episode = env.step([np.array(RIGHT if t <= 3 else SHOT)])
        if terminated or truncated:
            break
    env.close()
    assert terminated and not truncated and episode == {"score": True} and reward >= 1.0


def test_default_vectorization_is_subproc():
    needs_engine()
    env = envs.make("football", "academy_pass_and_shoot_with_keeper", n_envs=2, seed=0)
    try:
        assert env.vectorization == "subproc"
        step = env.step(constant(env.spec, 2, IDLE))
        assert step.state.shape == (2, 126)
    finally:
        env.close()
