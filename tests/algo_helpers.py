"""Helpers shared by the algorithm tests (imported as a module, never from another test
file): the tiny heterogeneous toy game, small configs, the training loop in miniature, the
registry's off-policy HA algorithms, and the slow learning-check runner; the discrete toy
games with masks and deaths (ToyMasked: on-policy tests; ToyDiscrete: QMIX's)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from gymnasium import spaces

import envs
from algos.common.off_policy import HaOffPolicy
from algos.common.registry import ALGORITHMS, algorithm_class
from algos.random_policy import RandomConfig, RandomPolicy
from envs.base import AgentView, EnvSpec, SingleEnv, Step, VecEnv
from envs.errors import EnvUnavailable
from harness.loop import rounds

HA_OFF_POLICY = [name for name in ALGORITHMS if issubclass(algorithm_class(name), HaOffPolicy)]
"""Every registered off-policy heterogeneous-agent algorithm (HASAC, MEHAML-KL, HATD3, ...)."""

# A 3-agent game of our own with heterogeneous action counts (2, 3, 2): two rewarding
# joint actions, one trap; its soft QRE at alpha = 3 is unique (checked below).
OWN_3_AGENTS = np.zeros((2, 3, 2))
OWN_3_AGENTS[0, 0, 0], OWN_3_AGENTS[1, 2, 1], OWN_3_AGENTS[1, 1, 1] = 8, 6, -6
OWN_3_AGENTS[0, 1, 0], OWN_3_AGENTS[0, 2, 1] = 3, -4

# -- a tiny heterogeneous continuous game ------------------------------------------------
class SeededToyEnv(SingleEnv):
    """Base of the toy games in these tests: a reset that reseeds the copy's generator
    and restarts the step counter; subclasses give `_view` and `step`."""

    rng: np.random.Generator
    t: int = 0

    def _view(self) -> AgentView:
        raise NotImplementedError

    def reset(self, seed):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        return self._view()


class ToyTracking(SeededToyEnv):
    """Two heterogeneous Box agents (Box(0,1)^2 and Box(-2,2)^1) track targets shown in
    their observations; episodes end by time limit after 4 steps (truncated) or, when the
    team misses badly, by termination — so both end kinds reach the buffer."""

    def __init__(self):
        obs = (spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (2,), np.float32))
        self.spec = EnvSpec(
            family="toy", task="tracking", n_agents=2, obs_spaces=obs,
            state_space=spaces.Box(-1, 1, (3,), np.float32),
            action_spaces=(spaces.Box(0.0, 1.0, (2,), np.float32), spaces.Box(-2.0, 2.0, (1,), np.float32)),
            episode_limit=4,
        )
        self.rng = np.random.default_rng(0)

    def _view(self) -> AgentView:
        self.target = self.rng.uniform(-1, 1, 3).astype(np.float32)
        return AgentView(obs=[self.target, self.target[1:]], state=self.target.copy())

    def step(self, actions):
        # clipped into the boxes, as every family adapter does (the critic sees the raw action)
        a0 = np.clip(np.asarray(actions[0], np.float32), 0.0, 1.0)
        a1 = np.clip(np.asarray(actions[1], np.float32), -2.0, 2.0)
        error = np.sum((a0 - (self.target[:2] + 1) / 2) ** 2) + np.sum((a1 - 2 * self.target[2]) ** 2)
        self.t += 1
        return self._view(), -float(error), bool(error > 6.0), self.t >= 4, {}


def toy_env(n_envs: int = 4, seed: int = 0) -> VecEnv:
    return VecEnv(ToyTracking, n_envs, seed=seed)


# -- a tiny discrete game with availability masks and deaths ---------------------------------
class ToyMasked(SeededToyEnv):
    """Two agents with Discrete(3): action 2 pays 1 when available, availability changes
    every step (action 0 always available), agent 1 dies at t = 2 (then only action 0 is
    available), random termination after t = 2, truncation at t = 5."""

    def __init__(self):
        obs = spaces.Box(0, 1, (6,), np.float32)
        self.spec = EnvSpec(family="toy", task="masked", n_agents=2, obs_spaces=(obs, obs),
                            state_space=spaces.Box(0, 1, (6,), np.float32),
                            action_spaces=(spaces.Discrete(3), spaces.Discrete(3)), episode_limit=5, has_avail_actions=True)
        self.rng = np.random.default_rng(0)

    def _view(self) -> AgentView:
        obs = np.zeros(6, np.float32)
        obs[self.t] = 1.0
        self.avail = [np.array([1, self.rng.random() < 0.7, self.rng.random() < 0.7], bool) for _ in range(2)]
        alive = np.array([True, self.t < 2])
        if not alive[1]:
            self.avail[1] = np.array([1, 0, 0], bool)
        return AgentView(obs=[obs, obs.copy()], state=obs.copy(), avail_actions=[a.astype(np.float32) for a in self.avail], alive=alive)

    def step(self, actions):
        reward = sum(float(int(a) == 2 and avail[2]) for a, avail in zip(actions, self.avail))
        self.t += 1
        terminated = self.t > 2 and self.rng.random() < 0.3
        return self._view(), reward, terminated, self.t >= 5 and not terminated, {}

    def get_state(self):
        return {"rng": copy.deepcopy(self.rng.bit_generator.state), "t": self.t, "avail": copy.deepcopy(self.avail)}

    def set_state(self, state):
        self.rng.bit_generator.state, self.t, self.avail = copy.deepcopy(state["rng"]), state["t"], copy.deepcopy(state["avail"])


def masked_env(n_envs: int = 4, seed: int = 0) -> VecEnv:
    return VecEnv(ToyMasked, n_envs, seed=seed)


class ToyMaskedAgentStates(ToyMasked):
    """ToyMasked with one state per agent (EnvSpec.agent_states, HARL's FP layout): agent
    i's state is the time one-hot, then its own alive flag, then its id."""

    def __init__(self):
        super().__init__()
        self.spec = dataclasses.replace(self.spec, task="masked-fp", state_space=spaces.Box(0, 1, (2 * 8,), np.float32),
                                        agent_states=True)

    def _view(self) -> AgentView:
        view = super()._view()
        rows = [np.concatenate([view.obs[0], [float(view.alive[i])], [float(i)]]) for i in range(2)]
        return dataclasses.replace(view, state=np.concatenate(rows).astype(np.float32))


def masked_agent_states_env(n_envs: int = 4, seed: int = 0) -> VecEnv:
    return VecEnv(ToyMaskedAgentStates, n_envs, seed=seed)


# -- a tiny discrete game with everything QMIX must handle --------------------------------
class ToyDiscrete(SeededToyEnv):
    """Two heterogeneous Discrete agents (3 and 2 actions, obs widths 3 and 2), limit 5 steps.
    Agent 0's action 2 is unavailable on odd steps; agent 1 dies at step 3 (then only its
    no-op 0 is available); the episode terminates early when both pick action 1, otherwise
    it is truncated at the limit — variable lengths, masks, deaths and both end kinds."""

    def __init__(self):
        self.spec = EnvSpec(
            family="toy", task="discrete", n_agents=2,
            obs_spaces=(spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (2,), np.float32)),
            state_space=spaces.Box(-1, 1, (4,), np.float32),
            action_spaces=(spaces.Discrete(3), spaces.Discrete(2)), episode_limit=5, has_avail_actions=True,
        )
        self.rng = np.random.default_rng(0)
        self.t = 0

    def _view(self) -> AgentView:
        x = self.rng.uniform(-1, 1, 4).astype(np.float32)
        alive = np.array([True, self.t < 3])
        avail = [np.array([True, True, self.t % 2 == 0]), np.array([True, bool(alive[1])])]
        return AgentView(obs=[x[:3], x[2:]], state=x, avail_actions=avail, alive=alive)

    def step(self, actions):
        a0, a1 = int(actions[0]), int(actions[1])
        reward = float(a0 == 2) + 0.5 * a1
        self.t += 1
        return self._view(), reward, a0 == 1 and a1 == 1, self.t >= 5, {}

    def get_state(self):
        return {"rng": copy.deepcopy(self.rng.bit_generator.state), "t": self.t}

    def set_state(self, state):
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])
        self.t = state["t"]


def toy_discrete(n_envs: int = 3, seed: int = 0) -> VecEnv:
    return VecEnv(ToyDiscrete, n_envs, seed=seed)


def small_config(name: str, **overrides):
    """Tiny networks and batches so a few dozen updates take well under a second."""
    fields = dict(hidden_sizes=[16, 16], batch_size=32, buffer_size=2000, warmup_steps=32, train_every=4,
                  updates_per_train=2, n_step=3)
    fields.update(overrides)
    return algorithm_class(name).Config(**fields)


def run_loop(algo, env: VecEnv, env_steps: int, seed: int = 0, step: Step | None = None, start: int = 0):
    """The harness's training loop (harness/loop.py `rounds`, which train and the bench
    drive) for at least `env_steps` env steps. Returns (last step, env steps, the last
    update's metrics)."""
    step = env.reset(seed) if step is None else step
    total, metrics = start, {}
    for done in rounds(algo, env, step, start):
        step, total, metrics = done.step, done.env_steps, (done.metrics[-1] if done.metrics else metrics)
        if total >= start + env_steps:
            break
    return step, total, metrics


def build(name: str, seed: int = 0, env: VecEnv | None = None, **overrides):
    """An algorithm on the toy game (or `env`) with small_config(name, **overrides)."""
    env = env or toy_env()
    return algorithm_class(name)(env.spec, small_config(name, **overrides), env.n_envs, torch.device("cpu"), seed), env


def build_updating_actors_every_step(name: str):
    """HATD3 delays its actor rounds (policy_freq); these tests want one every update."""
    return build(name, policy_freq=1) if name == "hatd3" else build(name)


def flat_params(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).clone() for p in module.parameters()])



# -- slow learning checks --------------------------------------------------------------------
SPREAD_SELF_COLLISION_RETURN = -37.5
"""The part of every simple_spread return (official reward, 25 steps, 3 agents) that no
policy changes: PettingZoo 1.22's self-collision term (docs/fidelity.md, E1)."""


def beats_random_on_spread(learned: float, random_return: float, margin: float = 0.15) -> bool:
    """`learned` improves on the random policy by `margin` of the random return net of the
    policy-independent self-collision term (so the bar is the same under either reward)."""
    return learned > random_return + margin * abs(random_return - SPREAD_SELF_COLLISION_RETURN)

def learn_simple_spread(algo_cls, env_steps: int = 100_000, **fields) -> tuple[float, float]:
    """Train on continuous simple_spread; return (uniform-random policy's, learned
    deterministic policy's) mean evaluation return. Skips when MPE is not installed."""
    small = dict(hidden_sizes=[64, 64], batch_size=256, lr=1e-3, critic_lr=1e-3, warmup_steps=2000,
                 train_every=100, updates_per_train=10)
    return learn(algo_cls, "mpe", "simple_spread", env_steps, n_envs=10, eval_episodes=20,
                 env_options=dict(continuous_actions=True), **(small | fields))


def learn_halfcheetah(algo_cls, env_steps: int = 100_000, **fields) -> tuple[float, float]:
    """Train on MaMuJoCo HalfCheetah-2x3 at a higher update-to-data ratio than HARL's 0.05
    (0.2 here) so that 100k steps show learning on CPU; same return pair as above."""
    small = dict(hidden_sizes=[128, 128], batch_size=256, warmup_steps=5000, train_every=50,
                 updates_per_train=10)
    return learn(algo_cls, "mamujoco", "HalfCheetah-2x3", env_steps, n_envs=5, eval_episodes=5, **(small | fields))


def learn(algo_cls, family: str, task: str, env_steps: int, n_envs: int, eval_episodes: int,
          env_options: dict | None = None, **fields) -> tuple[float, float]:
    """(random policy's, trained policy's) mean deterministic evaluation return on `task`;
    skips when the family's simulator is not installed."""
    try:  # a missing simulator skips; a bad config (ConfigError) is a failure
        env = envs.make(family, task, n_envs=n_envs, seed=0, **(env_options or {}))
        eval_env = envs.make(family, task, n_envs=n_envs, seed=1000, **(env_options or {}))
    except (ImportError, EnvUnavailable) as exc:
        pytest.skip(f"{family} unavailable: {exc}")
    algo = algo_cls(env.spec, algo_cls.Config(**fields), n_envs, torch.device("cpu"), 0)
    random_policy = RandomPolicy(env.spec, RandomConfig(), n_envs, torch.device("cpu"), 0)
    random_return = evaluate(random_policy, eval_env, eval_episodes)
    run_loop(algo, env, env_steps)
    learned = evaluate(algo, eval_env, eval_episodes)
    print(f"{algo_cls.__name__} {family}/{task} after {env_steps} steps: {learned:.1f} (random {random_return:.1f})")
    return random_return, learned


def evaluate(algo, env, episodes: int = 20) -> float:
    """Mean deterministic episode return over `episodes` episodes."""
    returns, step = [], env.reset(1000)
    while len(returns) < episodes:
        step = env.step(algo.act(step, explore=False))
        returns += [e["return"] for e in step.info["episodes"]]
    return float(np.mean(returns))
