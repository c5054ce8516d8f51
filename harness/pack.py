"""Jobs: what one job of a sweep trains — one run, or with the run key `pack=K` up to K seeds
of one (task, algorithm, config) in one process on one device (algos/common/packed.py) —
from its overrides to finished results.

Each seed of a pack keeps its own run directory, lock, config.yaml, CSV tables, summary and
checkpoint, exactly as a lone run writes them, so the sweep, the report and resumption see
ordinary runs: a pack resumes each seed from its own checkpoint, and a seed may be resumed
in a pack of another size or alone. A pack checkpoints in two phases — every seed's new
checkpoint to checkpoints/pending.pt, then each renamed to latest.pt, in seed order — so
that after a kill at any moment `settle_checkpoints` finds one consistent step: it finishes
the renames if some seed was already renamed, else drops the pending files. Seeds at
different env steps all the same (e.g. one trained alone earlier) train as one pack per
step, in turn.

harness/jobs.py `pack_units` groups a sweep's jobs into packs; `check_packable` refuses
pack > 1 for an algorithm without a packed form, in one line, before anything runs.
"""

from __future__ import annotations

import os
import signal
import traceback
from typing import Any

from omegaconf import OmegaConf

from algos.base import AlgoConfig
from algos.common.packed import make_pack, packed_class
from algos.common.registry import ALGORITHMS, config_class
from envs.errors import ConfigError, UserError
from harness import preempt
from harness.config import check_same_config, load_settings, run_path
from harness.layout import RunPath
from harness.loggers import LoggerSettings
from harness.loop import TrainingDiverged
from harness.records import RunRecord
from harness import train
from harness.train import Prepared, SeedRun, train_seeds


def packable() -> list[str]:
    return [name for name in ALGORITHMS if config_class(name).packed is not None]


def check_packable(algo: str, config: AlgoConfig, size: int) -> None:
    """pack > 1 needs the algorithm to have a packed form (config ClassVar `packed`) that
    accepts its config; refuse in one line otherwise (before a sweep starts)."""
    if size < 1:
        raise ConfigError(f"pack must be >= 1, got {size}")
    if size == 1:
        return
    if type(config).packed is None:
        raise ConfigError(f"pack={size}: {algo} trains one seed per process; pack>1 works with "
                          f"{', '.join(packable()) or 'no algorithm'} — run {algo} with pack=1")
    packed_class(config).check(config)


def run_one(overrides: list[str]) -> tuple[RunPath, str]:
    """Train one (task, algo, seed), resuming from its checkpoint if it has one; returns
    (where its results are, done | resumed | skipped)."""
    return run_job([overrides])[0]


def run_job(unit: list[list[str]]) -> list[tuple[RunPath, str]]:
    """Train the seeds whose overrides are `unit` (one run, or a pack of seeds of one config)
    in this process; per seed (where its results are, done | resumed | skipped | failed: nan).
    A failure of the whole job is recorded in every seed it stopped and raised."""
    loaded = [load_settings(overrides) for overrides in unit]
    status: dict[RunPath, str] = {}
    todo = []
    for settings, cfg in loaded:
        path = run_path(cfg, settings)
        if path.done:
            print(f"skip: {path} is finished (DONE); delete it to run again")
            status[path] = "skipped"
            continue
        config_yaml = OmegaConf.to_yaml(cfg)
        check_same_config(path, config_yaml)
        todo.append((settings, path, config_yaml, LoggerSettings.from_config(cfg)))
    prepared = [train.prepare(settings) for settings, *_ in todo]  # every bad input fails here, before any file is written
    records = [RunRecord(path, loggers) for _, path, _, loggers in todo]
    try:
        with preempt.watch():
            for record in records:
                record.lock()
            settle_checkpoints([path for _, path, *_ in todo])
            for path in (path for _, path, *_ in todo if path.done):  # finished by another job before the lock
                print(f"skip: {path} was finished by another job meanwhile")
                status[path] = "skipped"
            runs = start_runs([t for t in todo if not t[1].done], prepared, records)
            for group in by_env_steps(runs):
                status |= train_group(group)
    finally:
        for record, p in zip(records, prepared):
            record.unlock()
            p.close()
    return [(path, status[path]) for path in (run_path(cfg, s) for s, cfg in loaded)]


def settle_checkpoints(paths: list[RunPath]) -> None:
    """After a pack was killed while checkpointing (harness/train.py commit_checkpoints):
    pending checkpoints of the last seeds only, the first ones already renamed, mean the
    renames were under way — finish them; any other pending files (the writes were under
    way) are dropped, and every seed resumes from its previous checkpoint."""
    pending = [path.pending_checkpoint.exists() for path in paths]
    if not any(pending):
        return
    first = pending.index(True)
    renaming = first > 0 and all(pending[first:])
    for path, has in zip(paths, pending):
        if has and renaming:
            os.replace(path.pending_checkpoint, path.checkpoint)
        elif has:
            path.pending_checkpoint.unlink()


def start_runs(todo: list[tuple[Any, RunPath, str, Any]], prepared: list[Prepared], records: list[RunRecord]) -> list[SeedRun]:
    """Each seed new (config.yaml and meta written) or resumed from its checkpoint."""
    runs = []
    by_path = {record.path: (p, record) for p, record in zip(prepared, records)}
    for settings, path, config_yaml, _ in todo:
        p, record = by_path[path]
        resume = path.state == "resume"
        if not resume:
            record.start(config_yaml, str(settings.torch_device))
        runs.append(SeedRun(p, record, resume))
    return runs


def by_env_steps(runs: list[SeedRun]) -> list[list[SeedRun]]:
    """Seeds at the same env step train together; groups from the furthest behind."""
    groups: dict[int, list[SeedRun]] = {}
    for run in runs:
        groups.setdefault(run.loop.env_steps, []).append(run)
    return [groups[steps] for steps in sorted(groups)]


def train_group(runs: list[SeedRun]) -> dict[RunPath, str]:
    """Train a group of seeds at one env step as one pack; finish or fail each one."""
    pack = make_pack([run.prepared.algo for run in runs], runs[0].settings.pack_batched)
    try:
        summaries = train_seeds(runs, pack)
    except preempt.Interrupted as stop:
        for run in runs:
            run.record.interrupt(signal.Signals(stop.signum).name, stop.env_steps)
        raise
    except TrainingDiverged as exc:
        for run in runs:
            run.record.fail("failed: nan", str(exc))
        raise
    except UserError:
        raise
    except BaseException:
        for run in runs:
            run.record.fail("failed", traceback.format_exc())
        raise
    status = {}
    for run, summary in zip(runs, summaries):
        if summary is None:
            status[run.record.path] = "failed: nan"
            continue
        run.record.finish(summary)
        status[run.record.path] = "resumed" if run.resumed_from is not None else "done"
        print(f"done: {run.record.path}  eval_return_mean={summary['eval_return_mean']:.4g}")
    return status
