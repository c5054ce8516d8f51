"""The one training loop. It names no algorithm: everything algorithm-specific is behind
act / observe / ready / update (algos/base.py).

`prepare` builds and checks everything that can fail on bad input (names, simulators,
algorithm vs action space, hyperparameters) before `train` writes a single file.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import envs
from algos.base import AlgoConfig, Algorithm
from algos.common.registry import algorithm_class, check_compatible
from envs.base import VecEnv
from envs.errors import ConfigError
from harness.checkpoint import save_checkpoint
from harness.evaluate import evaluate
from harness.records import RunRecord
from harness.settings import LoopConfig

EVAL_SEED_OFFSET = 1_000_003  # eval copies never share start states with training copies


@dataclass(kw_only=True)
class Settings(LoopConfig):
    """The loop's typed view of the composed config: the run keys plus what was resolved."""

    family: str
    task: str
    algo: str
    algo_config: AlgoConfig
    env_fields: dict[str, Any]

    def validate(self) -> None:
        for name in ("budget", "n_envs", "eval_every", "eval_episodes", "eval_n_envs", "log_every", "torch_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be cpu, cuda[:k] or auto, got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device={self.device} but no CUDA GPU is visible; use device=cpu or device=auto")

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class Prepared:
    settings: Settings
    env: VecEnv
    eval_env: VecEnv
    algo: Algorithm

    def close(self) -> None:
        self.env.close()
        self.eval_env.close()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare(settings: Settings) -> Prepared:
    """Validate and build envs and algorithm; raises ConfigError/EnvUnavailable on bad input."""
    settings.validate()
    algo_cls = algorithm_class(settings.algo)
    torch.set_num_threads(settings.torch_threads)
    env = envs.make(settings.family, settings.task, n_envs=settings.n_envs, seed=settings.seed, **settings.env_fields)
    try:
        check_compatible(settings.algo, env.spec)
        settings.algo_config.validate(env.spec)
        eval_env = envs.make(
            settings.family, settings.task, n_envs=settings.eval_n_envs,
            seed=settings.seed + EVAL_SEED_OFFSET, **settings.env_fields,
        )
    except BaseException:
        env.close()
        raise
    seed_everything(settings.seed)
    algo = algo_cls(env.spec, settings.algo_config, settings.n_envs, settings.torch_device, settings.seed)
    return Prepared(settings, env, eval_env, algo)


class TrainingDiverged(RuntimeError):
    """A loss or metric became NaN/inf: the run is recorded as `failed: nan`."""


def _mean_metrics(history: list[dict[str, float]]) -> dict[str, float]:
    keys = dict.fromkeys(k for m in history for k in m)
    return {k: float(np.mean([m[k] for m in history if k in m])) for k in keys}


def train(p: Prepared, record: RunRecord) -> dict[str, Any]:
    """Collect, update when ready, evaluate every `eval_every` env steps; returns the summary."""
    s, env, algo = p.settings, p.env, p.algo
    spec = env.spec
    env_steps, updates, episodes = 0, 0, 0
    recent_returns: list[float] = []
    metric_history: list[dict[str, float]] = []
    next_log, next_eval = s.log_every, 0
    bar = tqdm(total=s.budget, unit="step", disable=not s.progress, desc=f"{spec.family}/{spec.task} {s.algo} s{s.seed}")
    start = last_log_time = time.perf_counter()
    last_log_steps = 0
    step = env.reset(s.seed)
    while True:
        if env_steps >= next_eval or env_steps >= s.budget:
            result = evaluate(algo, p.eval_env, s.eval_episodes, s.seed + EVAL_SEED_OFFSET)
            record.add_eval_row({"env_steps": env_steps, **result.row(spec.success_metric)})
            save_checkpoint(record.dir / "checkpoints" / "latest.pt",
                            {"algo": algo.state_dict(), "env_steps": env_steps, "updates": updates})
            bar.set_postfix(eval_return=f"{result.row(None)['eval_return_mean']:.3g}")
            next_eval += s.eval_every
            if env_steps >= s.budget:
                break
        actions = algo.act(step, explore=True)
        nxt = env.step(actions)
        env_steps += s.n_envs
        algo.observe(step, actions, nxt)
        while algo.ready(env_steps):
            metrics = algo.update()
            updates += 1
            if not all(math.isfinite(v) for v in metrics.values()):
                raise TrainingDiverged(f"non-finite metric at env step {env_steps}: {metrics}")
            metric_history.append(metrics)
        for episode in nxt.info["episodes"]:
            episodes += 1
            recent_returns.append(episode["return"])
        step = nxt
        bar.update(s.n_envs)
        if env_steps >= next_log or env_steps >= s.budget:
            elapsed = time.perf_counter() - last_log_time
            record.add_train_row({
                "env_steps": env_steps, "episodes": episodes, "updates": updates,
                "train_return_mean": float(np.mean(recent_returns)) if recent_returns else float("nan"),
                "perf/sps": (env_steps - last_log_steps) / max(elapsed, 1e-9),
                **_mean_metrics(metric_history),
            })
            recent_returns, metric_history = [], []
            last_log_time, last_log_steps = time.perf_counter(), env_steps
            next_log += s.log_every
    bar.close()
    summary = {
        "env_steps": env_steps, "updates": updates, "train_episodes": episodes,
        "wall_seconds": time.perf_counter() - start, **result.row(spec.success_metric),
    }
    if result.policy_probs is not None:
        summary["policy_probs"] = result.policy_probs
    return summary
