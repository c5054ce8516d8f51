"""Which jobs of a sweep can run here, and why not: each job is classified once, before
anything is launched.

A job is runnable, or not runnable here for one of four reasons, each one line that the
dry run and the sweep's summary print once, with the jobs it covers:
- no simulator: the family's simulator (or the chosen backend's) is not installed; the line
  names the extra or script that installs it (the family module's `EnvUnavailable`);
- unsupported: the simulator here cannot run the task, e.g. a SMAC map with medivacs on SMAX
  (the family module's `TaskUnsupported`);
- n/a: the algorithm cannot act in the task's action space (its config's `action_spaces`),
  or a field of its config does not fit the task;
- too large: what the learner preallocates on this task (its config's `memory_bytes`, the
  replay table of an off-policy learner) exceeds its share of this machine's memory, where
  the job trains here on the CPU (MemoryShare: a 1M-transition replay of
  HumanoidStandup-17x1 is 53 GB, of SMACv2 zerg_10_vs_11 25 GB).
What a family needs to run lives in the family's own errors: this module names no family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import os

import yaml

from envs.base import EnvSpec
from envs.errors import ConfigError, EnvUnavailable, TaskUnsupported
from harness.quiet import captured

RUNNABLE, NO_SIMULATOR, UNSUPPORTED, NOT_APPLICABLE, TOO_LARGE = "runnable", "no simulator", "unsupported", "n/a", "too large"
CLASS_TEXT = {
    RUNNABLE: "runnable here",
    NO_SIMULATOR: "need a simulator not installed here",
    UNSUPPORTED: "cannot run on the simulator installed here",
    NOT_APPLICABLE: "n/a (the algorithm cannot act in the task's action space)",
    TOO_LARGE: "need more memory than this machine has",
}
"""How each class is counted in the dry run's and the summary's count line."""


@dataclass(frozen=True)
class Verdict:
    kind: str
    """RUNNABLE | NO_SIMULATOR | UNSUPPORTED | NOT_APPLICABLE | TOO_LARGE."""
    reason: str = ""
    """One line for the not-runnable classes; shared by every job with the same cause."""
    spec: EnvSpec | None = None


class Prober:
    """Builds one env per distinct env config to learn its spec; what the simulator prints
    meanwhile is kept in `output` (for the sweep's log), not shown."""

    def __init__(self) -> None:
        self._found: dict[str, EnvSpec | EnvUnavailable | TaskUnsupported] = {}
        self.output: list[str] = []

    def spec(self, family: str, task: str, fields: dict[str, Any]) -> EnvSpec:
        """The task's EnvSpec; raises EnvUnavailable / TaskUnsupported (remembered for the
        next job with the same env config) or ConfigError (bad input: the sweep stops)."""
        import envs

        key = yaml.safe_dump([family, task, fields])
        if key not in self._found:
            # one copy in this process: worker processes would show nothing more about the spec
            local = fields | {"vectorization": "sync"} if fields.get("vectorization") == "subproc" else fields
            with captured() as out:
                try:
                    env = envs.make(family, task, n_envs=1, seed=0, **local)
                except (EnvUnavailable, TaskUnsupported) as exc:
                    self._found[key] = exc
                else:
                    self._found[key] = env.spec
                    env.close()
            if out.text:
                self.output.append(out.text)
        found = self._found[key]
        if isinstance(found, Exception):
            raise found
        return found


def first_line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


PROCESS_RESERVE = 2 * 10**9
"""Bytes a training process needs besides its learner's preallocated data (Python, torch,
the simulator): left out of each job's share of the memory."""


@dataclass(frozen=True)
class MemoryShare:
    """What one seed of a job may preallocate where it trains: this machine's memory, less
    PROCESS_RESERVE per job, over the jobs that train at once and the seeds of a pack."""

    total: int
    jobs: int = 1
    pack: int = 1

    @classmethod
    def here(cls, jobs: int, pack: int) -> MemoryShare:
        return cls(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), max(1, jobs), max(1, pack))

    @property
    def per_seed(self) -> int:
        return (self.total // self.jobs - PROCESS_RESERVE) // self.pack

    def text(self) -> str:
        parts = [f"this machine's {self.total / 1e9:.1f} GB less {PROCESS_RESERVE / 1e9:.0f} GB per process"]
        if self.jobs > 1:
            parts.append(f"over launcher.n_jobs={self.jobs}")
        if self.pack > 1:
            parts.append(f"over pack={self.pack} seeds")
        return ", ".join(parts)


def classify(algo: str, algo_config: Any, family: str, task: str, env_fields: dict[str, Any],
             prober: Prober, strict: bool = False, n_envs: int = 1, memory: MemoryShare | None = None) -> Verdict:
    """The verdict for one composed job (its algorithm, algorithm config and env, n_envs
    copies). `memory`: what the job may preallocate where it trains (None: not checked).
    With `strict` (a single run), a job that cannot run raises its own error instead."""
    from algos.common.registry import check_compatible, config_class

    try:
        spec = prober.spec(family, task, env_fields)
    except (EnvUnavailable, TaskUnsupported) as exc:
        if strict:
            raise
        return Verdict(NO_SIMULATOR if isinstance(exc, EnvUnavailable) else UNSUPPORTED, first_line(exc))
    try:
        check_compatible(algo, spec)
    except ConfigError:  # its message names the task; the reason is shared by every such task
        if strict:
            raise
        supported = config_class(algo).action_spaces
        if spec.action_kind in supported:  # refused for its per-agent states
            return Verdict(NOT_APPLICABLE, f"{algo} does not take one state per agent (HARL's FP state)", spec)
        return Verdict(NOT_APPLICABLE, f"{algo} cannot act in {spec.action_kind} action spaces (it supports: "
                       f"{', '.join(sorted(supported))})", spec)
    try:
        algo_config.validate(spec)
    except ConfigError as exc:
        if strict:
            raise
        return Verdict(NOT_APPLICABLE, first_line(exc), spec)
    need = algo_config.memory_bytes(spec, n_envs)
    if memory is not None and need > memory.per_seed:
        reason = (f"the learner preallocates {need / 1e9:.1f} GB (its replay buffer) on this task, more than the "
                  f"{max(memory.per_seed, 0) / 1e9:.1f} GB a seed has here ({memory.text()}): "
                  "lower algo.buffer_size, or run it on a larger node")
        if strict:
            raise ConfigError(f"{family} task {task}: {reason}")
        return Verdict(TOO_LARGE, reason, spec)
    return Verdict(RUNNABLE, spec=spec)


# -- the jobs a reason covers, in a few words -------------------------------------------------
def seed_text(seeds: Iterable[int]) -> str:
    """[0, 1, 2, 3, 5, 7, 8] -> 's0-3,5,7-8'."""
    ordered = sorted(set(seeds))
    runs: list[list[int]] = []
    for seed in ordered:
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return "s" + ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)


def jobs_text(jobs: Iterable[tuple[str, str, int]]) -> str:
    """(task, algo, seed) triples as 'task, task × algo, algo s0-9; task × algo s0-2': tasks
    that share their algorithms and seeds are listed together."""
    per_task: dict[str, dict[str, set[int]]] = {}
    for task, algo, seed in jobs:
        per_task.setdefault(task, {}).setdefault(algo, set()).add(seed)
    groups: dict[str, list[str]] = {}
    for task, algos in per_task.items():
        by_seeds: dict[str, list[str]] = {}
        for algo, seeds in algos.items():
            by_seeds.setdefault(seed_text(seeds), []).append(algo)
        what = "; ".join(f"{', '.join(names)} {seeds}" for seeds, names in by_seeds.items())
        groups.setdefault(what, []).append(task)
    return "; ".join(f"{', '.join(tasks)} × {what}" for what, tasks in groups.items())


def reason_lines(jobs: Iterable[tuple[str, str, tuple[str, str, int]]]) -> list[str]:
    """(class, reason, (task, algo, seed)) of the jobs that cannot run here → one line per
    reason, with the number of jobs and which ones, most jobs first."""
    grouped: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    for kind, reason, job in jobs:
        grouped.setdefault((kind, reason), []).append(job)
    ordered = sorted(grouped.items(), key=lambda item: -len(item[1]))
    return [f"  {kind}: {reason}\n      {len(members)} job{'s' * (len(members) != 1)}: {jobs_text(members)}"
            for (kind, reason), members in ordered]


def count_line(kinds: Iterable[str]) -> str:
    """'920 jobs: 560 runnable here, 180 need a simulator not installed here, ...'."""
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    total = sum(counts.values())
    parts = [f"{counts.get(k, 0)} {CLASS_TEXT[k]}" for k in CLASS_TEXT if counts.get(k) or k == RUNNABLE]
    return f"{total} job{'s' * (total != 1)}: " + ", ".join(parts)
