"""The matrix family: payoffs, one-step episodes, custom games from the config."""

import numpy as np
import pytest

import envs
from envs.errors import ConfigError
from envs.matrix import CLIMBING, penalty_payoff


def play(task: str, joint: tuple[int, ...], **fields) -> tuple[float, bool, bool]:
    env = envs.make("matrix", task, n_envs=1, seed=0, **fields)
    env.reset()
    nxt = env.step([np.array([a]) for a in joint])
    return float(nxt.reward[0]), bool(nxt.terminated[0]), bool(nxt.truncated[0])


@pytest.mark.parametrize("joint", [(0, 0), (0, 1), (1, 1), (2, 2), (1, 2)])
def test_climbing_reward_is_payoff_at_joint_action(joint):
    reward, terminated, truncated = play("climbing", joint)
    assert reward == CLIMBING[joint[0]][joint[1]]
    assert terminated and not truncated


def test_penalty_game_uses_configured_k():
    assert play("penalty", (0, 2), penalty_k=-7.5)[0] == -7.5
    assert play("penalty", (2, 0))[0] == -100.0
    assert penalty_payoff(-3)[0][0] == 10


def test_custom_three_agent_payoff_with_heterogeneous_action_counts():
    payoff = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    env = envs.make("matrix", "custom", n_envs=2, seed=0, payoff=payoff.tolist())
    assert env.spec.n_agents == 3
    assert [s.n for s in env.spec.action_spaces] == [2, 3, 4]
    env.reset()
    nxt = env.step([np.array([1, 0]), np.array([2, 1]), np.array([3, 0])])
    assert nxt.reward.tolist() == [payoff[1, 2, 3], payoff[0, 1, 0]]


def test_every_episode_is_one_step_and_auto_resets():
    env = envs.make("matrix", "climbing", n_envs=3, seed=0)
    env.reset()
    nxt = env.step([np.zeros(3, int), np.zeros(3, int)])
    assert [e["length"] for e in nxt.info["episodes"]] == [1, 1, 1]
    assert [e["return"] for e in nxt.info["episodes"]] == [11.0] * 3


@pytest.mark.parametrize(
    "payoff, fragment",
    [([[1, 0], [0]], "rectangular"), ([1, 0], "one axis per agent"), ([[1, 0]], ">= 2 actions"), ([["a", 1], [0, 1]], "rectangular")],
)
def test_malformed_payoff_is_a_config_error(payoff, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        envs.make("matrix", "custom", payoff=payoff)
    assert "\n" not in str(info.value)


def test_action_outside_the_space_is_rejected():
    env = envs.make("matrix", "climbing")
    env.reset()
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step([np.array([3]), np.array([0])])
