"""Training one run: the one loop (harness/loop.py) with evaluation, logs and checkpoints.

`prepare` builds and checks everything that can fail on bad input (names, simulators,
algorithm vs action space, hyperparameters) before `train` writes a single file. A
`SeedRun` is one seed's share of the loop (its record, counters, evaluations and
checkpoints): `train` drives one, `train_seeds` the seeds of a pack (harness/pack.py runs
a sweep's job: locks, new or resumed, final status).
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import envs
from algos.base import Algorithm
from algos.common.packed import BatchedPack, InTurn, Pack, make_pack
from algos.common.registry import algorithm_class, check_compatible
from envs.base import EnvSpec, Step, VecEnv
from envs.errors import ConfigError
from harness import preempt
from harness.checkpoint import load_checkpoint, save_checkpoint, set_global_rng_state
from harness.config import fidelity_of
from harness.evaluate import EvalResult, evaluate, study_envs
from harness.layout import RunPath
from harness.loop import PackRound, TrainingDiverged, pack_rounds
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


class SeedRun:
    """One seed's share of the loop: its envs and learner (`prepared`), its results record,
    the step it acts on next, and its counters (LoopState)."""

    def __init__(self, prepared: Prepared, record: RunRecord, resume: bool = False):
        self.prepared, self.record, self.settings = prepared, record, prepared.settings
        if resume:
            self.step, self.loop = restore_state(record.path.checkpoint, prepared.algo, prepared.env)
            record.resume(str(self.settings.torch_device), self.loop.env_steps)
        else:
            self.loop = LoopState(next_log=self.settings.log_every)
            self.step = prepared.env.reset(self.settings.seed)
        self.resumed_from = self.loop.env_steps if resume else None
        self.wall_before, self.last_log_time = self.loop.wall_seconds, time.perf_counter()

    @property
    def finished(self) -> bool:
        return self.loop.env_steps >= self.settings.budget

    def eval_due(self) -> bool:
        loop = self.loop
        return loop.env_steps >= loop.next_eval or (self.finished and loop.last_eval_steps != loop.env_steps)

    def evaluate_and_save(self, algo: Algorithm, elapsed: float, pending: bool = False) -> None:
        """Evaluate `algo` (this seed's learner, up to date), log it, checkpoint the run."""
        s, loop = self.settings, self.loop
        loop.last_eval = evaluate(algo, self.prepared.eval_env, s.eval_episodes, s.seed + EVAL_SEED_OFFSET)
        loop.last_eval_steps = loop.env_steps
        self.record.add_eval_row({"env_steps": loop.env_steps, **loop.last_eval.row(self.prepared.env.spec.success_metric)})
        while loop.next_eval <= loop.env_steps:
            loop.next_eval += s.eval_every
        self.save(algo, elapsed, pending)

    def save(self, algo: Algorithm, elapsed: float, pending: bool = False) -> None:
        """Checkpoint the run (to its pending checkpoint when `pending`: a pack commits its
        seeds' checkpoints together)."""
        self.loop.wall_seconds = self.wall_before + elapsed
        path = self.record.path
        save_state(path.pending_checkpoint if pending else path.checkpoint, algo, self.prepared.env, self.step, self.loop)

    def take(self, env_steps: int, step: Step, metrics: list[dict[str, float]]) -> None:
        """Book one round: counters, finished episodes, update metrics, a train.csv row when due."""
        loop = self.loop
        self.step, loop.env_steps = step, env_steps
        loop.updates += len(metrics)
        loop.metric_history += metrics
        for episode in step.info["episodes"]:
            loop.episodes += 1
            loop.recent_returns.append(episode["return"])
        if loop.env_steps >= loop.next_log or loop.env_steps >= self.settings.budget:
            self.record.add_train_row(train_row(loop, time.perf_counter() - self.last_log_time))
            loop.recent_returns, loop.metric_history = [], []
            self.last_log_time, loop.last_log_steps = time.perf_counter(), loop.env_steps
            loop.next_log += self.settings.log_every

    def summary(self) -> dict[str, Any]:
        return summary_of(self.loop, self.prepared.env.spec, self.resumed_from, fidelity_of(self.settings))


def train(p: Prepared, record: RunRecord, resume: bool = False) -> dict[str, Any]:
    """Collect, update when ready, evaluate and checkpoint every `eval_every` env steps;
    returns the summary. With `resume`, continue exactly from the run's checkpoint."""
    return train_seeds([SeedRun(p, record, resume)], InTurn([p.algo]))[0]


def train_seeds(runs: list[SeedRun], pack: Pack) -> list[dict[str, Any] | None]:
    """The seeds of `runs` (all at the same env step) trained together by `pack`, which holds
    their learners: evaluations and checkpoints of every seed at the same steps. Returns each
    seed's summary; a seed whose metrics went non-finite is recorded `failed: nan` and left
    out (None) while the others go on — one seed alone raises TrainingDiverged."""
    s, spec = runs[0].settings, runs[0].prepared.env.spec
    seeds = f"s{s.seed}" if len(runs) == 1 else f"s{runs[0].settings.seed}-{runs[-1].settings.seed} (pack {len(runs)})"
    bar = tqdm(total=s.budget, initial=runs[0].loop.env_steps, unit="step", disable=not s.progress,
               desc=f"{spec.family}/{spec.task} {s.algo} {seeds}")
    summaries: dict[int, dict[str, Any] | None] = {id(r): None for r in runs}
    start, live = time.perf_counter(), list(runs)
    stream = pack_rounds(pack, [r.prepared.env for r in live], [r.step for r in live], live[0].loop.env_steps)
    while True:
        if live[0].eval_due():
            for run, algo in zip(live, pack.sync()):
                run.evaluate_and_save(algo, time.perf_counter() - start, pending=len(live) > 1)
            commit_checkpoints([run.record.path for run in live])
            bar.set_postfix(eval_return=f"{live[0].loop.last_eval.row(None)['eval_return_mean']:.3g}")
        if live[0].finished:
            break
        if preempt.requested():  # SIGTERM / pre-timeout signal / Ctrl-C: keep everything, then stop
            for run, algo in zip(live, pack.sync()):
                run.save(algo, time.perf_counter() - start, pending=len(live) > 1)
            commit_checkpoints([run.record.path for run in live])
            raise preempt.Interrupted(preempt.requested(), live[0].loop.env_steps)
        try:
            done = next(stream)
        except TrainingDiverged as exc:
            if len(exc.seeds) == len(live):
                raise
            live, pack, done = drop_diverged(live, pack, exc)
            stream = pack_rounds(pack, [r.prepared.env for r in live], done.steps, done.env_steps)
        for run, step, metrics in zip(live, done.steps, done.metrics):
            run.take(done.env_steps, step, metrics)
        bar.update(s.n_envs)
    bar.close()
    summaries.update({id(r): r.summary() for r in live})
    return [summaries[id(r)] for r in runs]


def commit_checkpoints(paths: list[RunPath]) -> None:
    """Phase two of a pack's checkpoint: every seed's pending checkpoint becomes its latest,
    in seed order (harness/pack.py `settle_checkpoints` finishes or undoes an interrupted one)."""
    for path in paths:
        if path.pending_checkpoint.exists():
            os.replace(path.pending_checkpoint, path.checkpoint)


def drop_diverged(live: list[SeedRun], pack: Pack, exc: TrainingDiverged) -> tuple[list[SeedRun], Pack, PackRound]:
    """Record the seeds `exc` names as failed: nan and pack the others again; their round,
    which the divergence interrupted, is completed (the updates still owed are paid)."""
    for k in exc.seeds:
        live[k].record.fail("failed: nan", str(exc))
    keep = [k for k in range(len(live)) if k not in exc.seeds]
    learners = pack.sync()
    pack = make_pack([learners[k] for k in keep], batched=isinstance(pack, BatchedPack))
    partial = exc.partial
    metrics = [partial.metrics[k] for k in keep]
    while pack.ready(partial.env_steps):
        for seed_metrics, update in zip(metrics, pack.update()):
            seed_metrics.append(update)
    return [live[k] for k in keep], pack, PackRound(partial.env_steps, [partial.steps[k] for k in keep], metrics)


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
