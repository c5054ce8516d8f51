"""MAPPO (algos/mappo.py): parameter sharing on the raw observation (official) or with
agent ids (switch), its refusal on heterogeneous agents, simultaneous updates without a factor, matrix games (slow learning checks: test_on_policy.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import envs
from algos.mappo import Mappo, MappoConfig
from envs.errors import ConfigError
from envs.fidelity import differing

from algo_helpers import run_loop, toy_env

try:  # tests/ on sys.path (pytest's default) or the repo root
    from test_happo import check_matrix_outcomes, matrix_outcomes
    from test_on_policy import build_on_policy, masked_env
except ImportError:
    from tests.test_happo import check_matrix_outcomes, matrix_outcomes
    from tests.test_on_policy import build_on_policy, masked_env

torch.set_num_threads(1)


def test_sharing_on_heterogeneous_agents_is_a_one_line_config_error():
    env = toy_env()  # Box(0,1)^2 and Box(-2,2)^1
    with pytest.raises(ConfigError, match="share_params=false") as info:
        Mappo(env.spec, MappoConfig(), env.n_envs, torch.device("cpu"), 0)
    assert "\n" not in str(info.value)
    assert len(Mappo(env.spec, MappoConfig(share_params=False), env.n_envs, torch.device("cpu"), 0).actors) == 2


def test_unknown_shared_actor_input_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="shared_actor_input must be one of official, agent_id") as info:
        build_on_policy("mappo", masked_env(), shared_actor_input="id")
    assert "\n" not in str(info.value)


def test_shared_actor_reads_the_raw_observation_as_official():
    env = masked_env()  # both agents observe the same vector
    algo = build_on_policy("mappo", env, share_params=True)
    step = env.reset(0)
    x0, _ = algo.actor_inputs(step.obs[0], None, 0)
    x1, _ = algo.actor_inputs(step.obs[1], None, 1)
    assert x0.shape[1] == env.spec.obs_spaces[0].shape[0] and torch.equal(x0, torch.as_tensor(step.obs[0]))
    # HARL's shared actor: equal observations give equal action distributions to every agent
    d0 = algo.actors[0].distribution(algo.actors[0].base(x0), None).probs
    d1 = algo.actors[0].distribution(algo.actors[0].base(x1), None).probs
    assert torch.equal(x0, x1) and torch.allclose(d0, d1)


def test_agent_id_switch_appends_a_one_hot_agent_id():
    env = masked_env()
    algo = build_on_policy("mappo", env, share_params=True, shared_actor_input="agent_id")
    assert len(algo.actors) == 1 and algo.groups == [[0, 1]]
    step = env.reset(0)
    x0, _ = algo.actor_inputs(step.obs[0], None, 0)
    x1, _ = algo.actor_inputs(step.obs[1], None, 1)
    assert x0.shape[1] == env.spec.obs_spaces[0].shape[0] + 2
    assert x0[:, -2:].tolist() == [[1.0, 0.0]] * 4 and x1[:, -2:].tolist() == [[0.0, 1.0]] * 4
    # same observation, different id → different action distributions
    x1_as_0 = torch.cat([x0[:, :-2], x1[:, -2:]], dim=-1)
    d0 = algo.actors[0].distribution(algo.actors[0].base(x0), None).probs
    d1 = algo.actors[0].distribution(algo.actors[0].base(x1_as_0), None).probs
    assert not torch.allclose(d0, d1)


def test_shared_update_trains_on_every_agents_data_without_a_factor():
    env = masked_env()
    algo = build_on_policy("mappo", env, share_params=True)
    seen = []
    original = algo.train_group
    algo.train_group = lambda g, batch: seen.append(batch) or original(g, batch)
    _, _, metrics = run_loop(algo, env, 32)
    (batch,) = seen
    assert batch.obs.shape[1] == 2 * 8 * 4  # both agents' samples in one batch
    assert torch.equal(batch.factor, torch.ones_like(batch.factor))
    assert not any(k.startswith("factor/") for k in metrics) and "loss/actor/shared" in metrics


def test_default_is_shared_and_matches_official_mappo():
    config = MappoConfig()
    assert config.share_params and config.ppo_epoch == 5 and config.clip_param == 0.2 and config.episode_length == 200
    assert (config.shared_actor_input, config.truncation, config.advantage_norm) == ("official",) * 3
    assert MappoConfig.on_policy


def test_mappo_matrix_games_three_seeds():
    # the 3-agent game has action counts (2, 3, 2), so its actors cannot be shared
    check_matrix_outcomes(matrix_outcomes(Mappo, range(3), custom={"share_params": False}))


@pytest.mark.slow
def test_mappo_matrix_games_ten_seeds():
    check_matrix_outcomes(matrix_outcomes(Mappo, range(10), custom={"share_params": False}))


@pytest.mark.parametrize("fields,switch", [({"share_params": True, "advantage_norm": "joint"}, "advantage_norm"),
                                           ({"share_params": False, "shared_actor_input": "agent_id"}, "shared_actor_input")])
def test_a_switch_without_effect_is_a_one_line_config_error(fields, switch):
    # a shared actor already normalises over every agent; a per-agent actor has no shared input
    with pytest.raises(ConfigError, match=f"algo.{switch}=.* does not apply here") as info:
        build_on_policy("mappo", masked_env(), **fields)
    assert "\n" not in str(info.value)


def test_the_switches_away_from_official_are_recorded():
    config = MappoConfig(shared_actor_input="agent_id", truncation="bootstrap")
    assert differing(config, "algo") == {"algo.shared_actor_input": "agent_id", "algo.truncation": "bootstrap"}
    assert differing(MappoConfig(), "algo") == {}
