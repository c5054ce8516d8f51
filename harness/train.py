"""Training one run: the one loop (harness/loop.py) with evaluation, logs and checkpoints.

`prepare` builds and checks everything that can fail on bad input (names, simulators,
algorithm vs action space, hyperparameters) before `train` writes a single file;
`run_one` trains one job of a sweep (lock, config check, new or resumed, final status).
"""

from __future__ import annotations

import dataclasses
import random
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

import numpy as np
import torch
from tqdm import tqdm

import envs
from algos.base import Algorithm
from algos.common.registry import algorithm_class, check_compatible
from envs.base import EnvSpec, Step, VecEnv
from envs.errors import ConfigError, UserError
from harness.checkpoint import load_checkpoint, save_checkpoint, set_global_rng_state
from harness import preempt
from harness.config import check_same_config, fidelity_of, load_settings, run_path
from harness.evaluate import EvalResult, evaluate, study_envs
from harness.layout import RunPath
from harness.loggers import LoggerSettings
from harness.loop import TrainingDiverged, rounds
from harness.records import RunRecord
from harness.settings import Settings

EVAL_SEED_OFFSET = 1_000_003  # eval copies never share start states with training copies


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
        env, eval_env = study_envs(env, eval_env, settings)  # reward_scale, evaluation probes
    except BaseException:
        env.close()
        raise
    seed_everything(settings.seed)
    algo = algo_cls(env.spec, settings.algo_config, settings.n_envs, settings.torch_device, settings.seed)
    return Prepared(settings, env, eval_env, algo)


def _mean_metrics(history: list[dict[str, float]]) -> dict[str, float]:
    keys = dict.fromkeys(k for m in history for k in m)
    return {k: float(np.mean([m[k] for m in history if k in m])) for k in keys}


@dataclass
class LoopState:
    """The loop's own counters and partial logs; with the algorithm's state_dict, the envs'
    snapshots, the current Step and the global RNGs it is everything a checkpoint holds."""

    env_steps: int = 0
    updates: int = 0
    episodes: int = 0
    next_log: int = 0
    next_eval: int = 0
    last_log_steps: int = 0
    recent_returns: list[float] = field(default_factory=list)
    metric_history: list[dict[str, float]] = field(default_factory=list)
    last_eval: EvalResult | None = None
    last_eval_steps: int = -1
    wall_seconds: float = 0.0
    """Training wall time summed over every process that worked on the run."""


def save_state(path: Path, algo: Algorithm, env: VecEnv, step: Step, loop: LoopState) -> None:
    save_checkpoint(path, {"algo": algo.state_dict(), "env": env.get_state(), "step": step,
                           "loop": dataclasses.asdict(loop) | {"last_eval": loop.last_eval},
                           "env_steps": loop.env_steps})


def restore_state(path: Path, algo: Algorithm, env: VecEnv) -> tuple[Step, LoopState]:
    """Load a checkpoint written by save_state; a foreign or corrupt file is a ConfigError."""
    payload = load_checkpoint(path)
    try:
        algo.load_state_dict(payload["algo"])
        env.set_state(payload["env"])
        loop = LoopState(**payload["loop"])
        step = payload["step"]
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"checkpoint {path} does not fit this run ({type(exc).__name__}: {exc}); "
                          "delete it to start over") from None
    set_global_rng_state(payload["rng"])
    return step, loop


def train(p: Prepared, record: RunRecord, resume: bool = False) -> dict[str, Any]:
    """Collect, update when ready, evaluate and checkpoint every `eval_every` env steps;
    returns the summary. With `resume`, continue exactly from the run's checkpoint."""
    s, env, algo = p.settings, p.env, p.algo
    spec = env.spec
    checkpoint = record.path.checkpoint
    if resume:
        step, loop = restore_state(checkpoint, algo, env)
        record.resume(str(s.torch_device), loop.env_steps)
    else:
        loop = LoopState(next_log=s.log_every)
        step = env.reset(s.seed)
    bar = tqdm(total=s.budget, initial=loop.env_steps, unit="step", disable=not s.progress,
               desc=f"{spec.family}/{spec.task} {s.algo} s{s.seed}")
    start = last_log_time = time.perf_counter()
    steps_at_start, wall_before = loop.env_steps, loop.wall_seconds
    stream = rounds(algo, env, step, loop.env_steps)
    while True:
        finished = loop.env_steps >= s.budget
        if loop.env_steps >= loop.next_eval or (finished and loop.last_eval_steps != loop.env_steps):
            loop.last_eval = evaluate(algo, p.eval_env, s.eval_episodes, s.seed + EVAL_SEED_OFFSET)
            loop.last_eval_steps = loop.env_steps
            record.add_eval_row({"env_steps": loop.env_steps, **loop.last_eval.row(spec.success_metric)})
            while loop.next_eval <= loop.env_steps:
                loop.next_eval += s.eval_every
            loop.wall_seconds = wall_before + time.perf_counter() - start
            save_state(checkpoint, algo, env, step, loop)
            bar.set_postfix(eval_return=f"{loop.last_eval.row(None)['eval_return_mean']:.3g}")
        if finished:
            break
        if preempt.requested():  # SIGTERM / pre-timeout signal / Ctrl-C: keep everything, then stop
            loop.wall_seconds = wall_before + time.perf_counter() - start
            save_state(checkpoint, algo, env, step, loop)
            raise preempt.Interrupted(preempt.requested(), loop.env_steps)
        done = next(stream)
        step, loop.env_steps = done.step, done.env_steps
        loop.updates += len(done.metrics)
        loop.metric_history += done.metrics
        for episode in step.info["episodes"]:
            loop.episodes += 1
            loop.recent_returns.append(episode["return"])
        bar.update(s.n_envs)
        if loop.env_steps >= loop.next_log or loop.env_steps >= s.budget:
            record.add_train_row(train_row(loop, time.perf_counter() - last_log_time))
            loop.recent_returns, loop.metric_history = [], []
            last_log_time, loop.last_log_steps = time.perf_counter(), loop.env_steps
            loop.next_log += s.log_every
    bar.close()
    return summary_of(loop, spec, steps_at_start if resume else None, fidelity_of(s))


def train_row(loop: LoopState, elapsed: float) -> dict[str, float]:
    """A train.csv row: counters, the mean return of the episodes that ended since the last
    row, env steps/s over that stretch, and the mean of each update metric."""
    return {
        "env_steps": loop.env_steps, "episodes": loop.episodes, "updates": loop.updates,
        "train_return_mean": float(np.mean(loop.recent_returns)) if loop.recent_returns else float("nan"),
        "perf/sps": (loop.env_steps - loop.last_log_steps) / max(elapsed, 1e-9),
        **_mean_metrics(loop.metric_history),
    }


def summary_of(loop: LoopState, spec: EnvSpec, resumed_from: int | None, fidelity: dict[str, str]) -> dict[str, Any]:
    """summary.json: the counters, the final evaluation and the fidelity switches away
    from the official behaviour ({} = official behaviour)."""
    summary = {
        "env_steps": loop.env_steps, "updates": loop.updates, "train_episodes": loop.episodes,
        "wall_seconds": loop.wall_seconds, "resumed_from": resumed_from,
        **loop.last_eval.row(spec.success_metric), "fidelity": fidelity,
    }
    if spec.results_note:
        summary["results_note"] = spec.results_note
    if loop.last_eval.policy_probs is not None:
        summary["policy_probs"] = loop.last_eval.policy_probs
    return summary


def train_recorded(prepared: Prepared, record: RunRecord, resume: bool) -> dict[str, Any]:
    """train() with its end written in meta: a stop on a signal (checkpoint written), a
    divergence, or a crash (its traceback in error.txt)."""
    try:
        return train(prepared, record, resume=resume)
    except preempt.Interrupted as stop:
        record.interrupt(signal.Signals(stop.signum).name, stop.env_steps)
        raise
    except TrainingDiverged as exc:
        record.fail("failed: nan", str(exc))
        raise
    except UserError:
        raise
    except BaseException:
        record.fail("failed", traceback.format_exc())
        raise


def run_one(overrides: list[str]) -> tuple[RunPath, str]:
    """Train one (task, algo, seed), resuming from its checkpoint if it has one; returns
    (where its results are, done | resumed | skipped)."""
    settings, cfg = load_settings(overrides)
    path = run_path(cfg, settings)
    if path.done:
        print(f"skip: {path} is finished (DONE); delete it to run again")
        return path, "skipped"
    config_yaml = OmegaConf.to_yaml(cfg)
    check_same_config(path, config_yaml)
    prepared = prepare(settings)  # every bad input fails here, before any file is written
    record = RunRecord(path, LoggerSettings.from_config(cfg))
    try:
        with preempt.watch():
            record.lock()
            if path.done:  # finished by another job between the check above and the lock
                print(f"skip: {path} was finished by another job meanwhile")
                return path, "skipped"
            resume = path.state == "resume"
            if not resume:
                record.start(config_yaml, str(settings.torch_device))
            summary = train_recorded(prepared, record, resume)
            record.finish(summary)
    finally:
        record.unlock()
        prepared.close()
    print(f"done: {path}  eval_return_mean={summary['eval_return_mean']:.4g}")
    return path, "resumed" if resume else "done"
