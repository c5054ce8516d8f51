"""Deterministic evaluation on separate env copies, plus the studies' probes.

Each copy runs a fixed quota of episodes (the total split as evenly as possible), so short
episodes are not over-represented the way "the first N episodes to finish" would be.
The eval envs are reset with the same seed at every evaluation: successive points of a
learning curve are measured on the same start states.

Probes (run keys `soft_eval`, `eval_alpha`, `eval_obs_noise`, `eval_action_noise`; the
eval env carries them, see `study_envs`), each one more pass of the same episodes:
- soft: the stochastic policy π itself (Algorithm.sample_policy) →
  `eval_soft_objective` J(π) = E[Σ_t (c·r_t + α Σᵢ Hᵢ(s_t))], undiscounted over the
  episode like the returns, with c = reward_scale (J is the objective the learner sees);
  `eval_entropy`, the mean per-step Σᵢ Hᵢ over alive agents; `eval_stochastic_return`, E[R]
  of π in the task's units; on single-state games `eval_qre_tv`, the largest total
  variation over agents between πⁱ and the nearest analytic soft QRE of (c·payoff, α), and
  `eval_soft_objective_exact`, J(π) in closed form from πⁱ's probabilities.
- `eval_return_obsnoise_<σ>`: greedy returns with N(0, (σ·std_f)²) added to every
  observation feature f, std_f measured over the clean pass's observations.
- `eval_return_actnoise_<p>`: greedy returns when each agent's action is replaced, with
  probability p, by a uniform random available one.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from algos.base import Algorithm
from algos.common.qre import soft_qre, total_variation
from algos.common.spaces import uniform_actions
from envs import family_module, make_config
from envs.base import EnvSpec, Step, VecEnv
from envs.errors import ConfigError
from envs.wrappers import VecEnvWrapper, scale_rewards
from harness.settings import Settings

QRE_STARTS = 64
"""Pure joint actions whose neighbourhoods seed the search for soft QREs (besides uniform)."""
Chooser = Callable[[Step], tuple[list[np.ndarray], "np.ndarray | None"]]
"""step -> (actions, per-row bonus [E] summed along each episode, or None)."""


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    successes: list[bool] = field(default_factory=list)  # win / score flags, if the family has them
    policy_probs: list[list[float]] | None = None
    extra: dict[str, float] | None = None
    """The probes' columns (None without probes)."""

    def row(self, success_metric: str | None) -> dict:
        """The eval.csv / summary.json fields of this evaluation."""
        out = {
            "eval_return_mean": float(np.mean(self.returns)),
            "eval_return_std": float(np.std(self.returns)),
            "eval_episodes": len(self.returns),
            "eval_length_mean": float(np.mean(self.lengths)),
        }
        if success_metric and self.successes:
            out[success_metric] = float(np.mean(self.successes))
        return out | (self.extra or {})


@dataclass(frozen=True)
class Probes:
    """What the studies measure at every evaluation, from the run keys."""

    soft: bool = False
    alpha: float | None = None
    """α of J and of the QRE (None: J and the QRE distance are not defined, NaN)."""
    reward_scale: float = 1.0
    obs_noise: tuple[float, ...] = ()
    action_noise: tuple[float, ...] = ()
    payoff: tuple[tuple[int, ...], bytes] | None = None
    """(shape, float64 bytes) of a single-state game's payoff, hashable for the QRE cache."""

    @property
    def active(self) -> bool:
        return self.soft or bool(self.obs_noise) or bool(self.action_noise)


class ProbedEnv(VecEnvWrapper):
    """An evaluation env that carries the probes `evaluate` runs on it."""

    def __init__(self, env: VecEnv, probes: Probes):
        super().__init__(env)
        self.probes = probes


def probes_from(settings: Settings, spec: EnvSpec) -> Probes:
    """The probes of a run's settings; bad values are one-line ConfigErrors."""
    obs_noise, action_noise = tuple(float(x) for x in settings.eval_obs_noise), tuple(float(x) for x in settings.eval_action_noise)
    if any(not (math.isfinite(x) and x >= 0) for x in obs_noise):
        raise ConfigError(f"eval_obs_noise levels must be finite and >= 0, got {list(obs_noise)}")
    if any(not 0 <= x <= 1 for x in action_noise):
        raise ConfigError(f"eval_action_noise levels are probabilities in [0, 1], got {list(action_noise)}")
    alpha = settings.eval_alpha if settings.eval_alpha is not None else settings.algo_config.fixed_alpha()
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"eval_alpha must be a finite number > 0, got {alpha}")
    payoff = None
    payoff_for = getattr(family_module(spec.family), "payoff_for", None)  # single-state games' hook
    if spec.single_state and payoff_for is not None:
        table = payoff_for(spec.task, make_config(spec.family, **settings.env_fields))
        payoff = (table.shape, table.astype(np.float64).tobytes())
    return Probes(bool(settings.soft_eval), None if alpha is None else float(alpha), float(settings.reward_scale),
                  obs_noise, action_noise, payoff)


def study_envs(env: VecEnv, eval_env: VecEnv, settings: Settings) -> tuple[VecEnv, VecEnv]:
    """(training env under `reward_scale`, eval env carrying the probes), after checking
    the study keys — called by harness/train.py `prepare`, before anything is written."""
    try:
        probes = probes_from(settings, eval_env.spec)
        env = scale_rewards(env, settings.reward_scale)
    except ConfigError:
        eval_env.close()
        raise
    return env, ProbedEnv(eval_env, probes) if probes.active else eval_env


# -- the passes --------------------------------------------------------------------------------
def evaluate(algo: Algorithm, env: VecEnv, n_episodes: int, seed: int) -> EvalResult:
    """Run `n_episodes` greedy episodes (and the env's probes); returns per-episode returns,
    lengths, successes, and the probes' columns in `extra`."""
    probes: Probes | None = getattr(env, "probes", None)
    observed: list[list[np.ndarray]] = [[] for _ in range(env.spec.n_agents)]

    def greedy(step: Step) -> tuple[list[np.ndarray], None]:
        if probes is not None and probes.obs_noise:
            for i, o in enumerate(step.obs):
                observed[i].append(np.asarray(o, np.float64))
        return algo.act(step, explore=False), None

    result, _ = run_episodes(env, n_episodes, seed, greedy, on_reset=lambda step: _record_probs(algo, env, step))
    if probes is not None:
        result.extra = probe_columns(algo, env, n_episodes, seed, probes, result, observed)
    return result


def _record_probs(algo: Algorithm, env: VecEnv, step: Step) -> list[list[float]] | None:
    if not env.spec.single_state:
        return None
    probs = algo.policy_probs(step)
    return None if probs is None else [np.asarray(p, float).tolist() for p in probs]


def run_episodes(env: VecEnv, n_episodes: int, seed: int, choose: Chooser,
                 on_reset: Callable[[Step], Any] | None = None) -> tuple[EvalResult, list[float]]:
    """Episodes from `env.reset(seed)` with actions from `choose`, a quota per copy; returns
    the result and, per counted episode, the sum of `choose`'s bonuses along it."""
    quota = np.full(env.n_envs, n_episodes // env.n_envs)
    quota[: n_episodes % env.n_envs] += 1
    finished = np.zeros(env.n_envs, int)
    result = EvalResult(returns=[], lengths=[])
    bonuses, running = [], np.zeros(env.n_envs)
    step = env.reset(seed)
    if on_reset is not None:
        result.policy_probs = on_reset(step)
    step.truncated = np.ones(env.n_envs, bool)  # every row starts an episode: recurrent policies restart
    while (finished < quota).any():
        actions, bonus = choose(step)
        if bonus is not None:
            running += bonus
        step = env.step(actions)
        for episode in step.info["episodes"]:
            k = episode["env_index"]
            total, running[k] = running[k], 0.0
            if finished[k] >= quota[k]:
                continue
            finished[k] += 1
            result.returns.append(episode["return"])
            result.lengths.append(episode["length"])
            bonuses.append(float(total))
            success = episode.get("win", episode.get("score"))
            if success is not None:
                result.successes.append(bool(success))
    return result, bonuses


def probe_columns(algo: Algorithm, env: VecEnv, n_episodes: int, seed: int, probes: Probes,
                  clean: EvalResult, observed: list[list[np.ndarray]]) -> dict[str, float]:
    columns: dict[str, float] = {}
    if probes.soft:
        columns |= soft_columns(algo, env, n_episodes, seed, probes, clean.policy_probs)
    if probes.obs_noise:
        std = [np.concatenate(o).std(axis=0) for o in observed]
        for k, sigma in enumerate(probes.obs_noise):
            rng = np.random.default_rng([seed, 1, k])

            def noisy_obs(step: Step, sigma: float = sigma, rng: np.random.Generator = rng) -> tuple[list[np.ndarray], None]:
                obs = [(o + rng.normal(size=o.shape) * sigma * s).astype(np.float32) for o, s in zip(step.obs, std)]
                return algo.act(dataclasses.replace(step, obs=obs), explore=False), None

            columns[f"eval_return_obsnoise_{sigma:g}"] = float(np.mean(run_episodes(env, n_episodes, seed, noisy_obs)[0].returns))
    for k, p in enumerate(probes.action_noise):
        rng = np.random.default_rng([seed, 2, k])

        def perturbed(step: Step, p: float = p, rng: np.random.Generator = rng) -> tuple[list[np.ndarray], None]:
            actions = algo.act(step, explore=False)
            random = uniform_actions(env.spec, step.n_envs, step.avail_actions, rng)
            replace = rng.random((step.n_envs, len(actions))) < p
            return [np.where(replace[:, i].reshape(-1, *[1] * (a.ndim - 1)), r, a) for i, (a, r) in enumerate(zip(actions, random))], None

        columns[f"eval_return_actnoise_{p:g}"] = float(np.mean(run_episodes(env, n_episodes, seed, perturbed)[0].returns))
    return columns


def soft_columns(algo: Algorithm, env: VecEnv, n_episodes: int, seed: int, probes: Probes,
                 policy_probs: list[list[float]] | None) -> dict[str, float]:
    """J(π), the entropy, π's own return and the QRE distance (NaN where undefined)."""
    nan = float("nan")
    columns = {"eval_soft_objective": nan, "eval_entropy": nan, "eval_stochastic_return": nan}
    if probes.payoff is not None:
        qres = () if probes.alpha is None else analytic_qres(probes.payoff, probes.alpha / probes.reward_scale)
        distances = [max(total_variation(p, q) for p, q in zip(policy_probs, qre)) for qre in qres] if policy_probs else []
        columns["eval_qre_tv"] = min(distances, default=nan)
        columns["eval_soft_objective_exact"] = (nan if probes.alpha is None or policy_probs is None else
                                                exact_soft_objective(probes, policy_probs))
    generator = torch.Generator(device=getattr(algo, "device", "cpu")).manual_seed(seed)
    if algo.sample_policy(env.reset(seed), torch.Generator(device=getattr(algo, "device", "cpu"))) is None:
        return columns  # deterministic or undefined π: no entropy, J = −∞ on Box, see docs/studies.md

    def stochastic(step: Step) -> tuple[list[np.ndarray], np.ndarray]:
        sample = algo.sample_policy(step, generator)
        return sample.actions, (sample.entropy * np.asarray(step.alive, bool).T).sum(axis=0)

    result, entropy_sums = run_episodes(env, n_episodes, seed, stochastic)
    returns, entropy_sums, lengths = np.array(result.returns), np.array(entropy_sums), np.array(result.lengths)
    columns["eval_entropy"] = float(np.mean(entropy_sums / lengths))
    columns["eval_stochastic_return"] = float(np.mean(returns))
    if probes.alpha is not None:
        columns["eval_soft_objective"] = float(np.mean(probes.reward_scale * returns + probes.alpha * entropy_sums))
    return columns


def exact_soft_objective(probes: Probes, policy_probs: list[list[float]]) -> float:
    """J(π) of a single-state game in closed form: c·Σ_a Πᵢπⁱ(aⁱ) R(a) + α Σᵢ H(πⁱ)."""
    shape, raw = probes.payoff
    value = np.frombuffer(raw, np.float64).reshape(shape)
    probs = [np.asarray(p, np.float64) for p in policy_probs]
    for p in reversed(probs):  # contract the last agent's axis each time
        value = value @ p
    entropy = sum(-float(np.sum(p[p > 0] * np.log(p[p > 0]))) for p in probs)
    return probes.reward_scale * float(value) + probes.alpha * entropy


@functools.lru_cache(maxsize=64)
def analytic_qres(payoff: tuple[tuple[int, ...], bytes], alpha: float) -> tuple[list[np.ndarray], ...]:
    """The distinct soft QREs (algos/common/qre.py) reached from uniform policies and from
    next to every pure joint action (at most QRE_STARTS starts). For large α there is one;
    for small α a game has several (one near each strict equilibrium) and the distance that
    matters is to the nearest."""
    shape, raw = payoff
    table = np.frombuffer(raw, np.float64).reshape(shape)
    near = [[np.where(np.arange(n) == a, 0.9, 0.1 / (n - 1)) for n, a in zip(shape, joint)]
            for joint in itertools.islice(itertools.product(*map(range, shape)), QRE_STARTS)]
    found: list[list[np.ndarray]] = []
    for init in [None, *near]:
        try:
            qre = soft_qre(table, alpha, init=init)
        except RuntimeError:  # this start does not settle
            continue
        if all(max(total_variation(p, q) for p, q in zip(qre, other)) > 1e-6 for other in found):
            found.append(qre)
    return tuple(found)
