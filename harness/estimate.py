"""What a sweep will cost before it runs: CPU-hours and GPU-hours from measured rates.

A rate is per (family, task directory, algorithm, device): training env steps per second
of one job, and the seconds one evaluation episode takes. Sources, most specific first:

1. finished runs under the sweep's results_dir (summary.json: env steps / wall seconds,
   evaluations included), measured on the machines that ran them;
2. `<results_dir>/rates.json`: a calibration on this machine, written by
   `python -m harness.bench.rates <the sweep's command line>`;
3. `harness/rates.json`, shipped: the same command's figures on the machine it names.

A task without a rate of its own takes the median rate of the measured tasks of its family
for the same algorithm and device, and says so. A job's hours are its remaining env steps at
the training rate plus its evaluations (one at step 0, one every eval_every, one at the
end) at the evaluation rate; CPU-hours count torch_threads cores per job.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from harness.layout import RunPath

SHIPPED = Path(__file__).resolve().parent / "rates.json"
LOCAL_NAME = "rates.json"
Key = tuple[str, str, str, str]
"""(family, task directory, algorithm, device: 'cpu' | 'gpu')."""


@dataclass(frozen=True)
class Rate:
    steps_per_s: float
    """Training env steps per second (evaluation included when eval_s_per_episode is None)."""
    eval_s_per_episode: float | None
    source: str
    """Where the figure comes from, as the estimate prints it."""
    machine: str = ""
    """The machine it was measured on (a rates file's rows)."""
    load: float | None = None
    """The load average when its measurement started."""


@dataclass(frozen=True)
class CostQuery:
    """What the estimate needs to know about one job."""

    key: Key
    budget: int
    eval_every: int
    eval_episodes: int
    threads: int = 1
    steps_done: int = 0
    """Env steps already trained (a run that resumes from its checkpoint)."""


def device_kind(torch_device: str) -> str:
    return "gpu" if str(torch_device).startswith("cuda") else "cpu"


def evaluations(budget: int, eval_every: int) -> int:
    """Evaluations of a run: at step 0, every eval_every, and at the end when not on one."""
    return budget // eval_every + 1 + (budget % eval_every != 0)


def job_hours(query: CostQuery, rate: Rate) -> float:
    remaining = max(query.budget - query.steps_done, 0)
    seconds = remaining / rate.steps_per_s
    if rate.eval_s_per_episode is not None:
        left = evaluations(query.budget, query.eval_every) * remaining / max(query.budget, 1)
        seconds += left * query.eval_episodes * rate.eval_s_per_episode
    return seconds / 3600


def finished_run_rates(results_dir: Path) -> tuple[dict[Key, Rate], dict[tuple[Key, int], Rate]]:
    """Mean env steps per wall second of the finished runs under results_dir: of lone runs
    per kind, and of packed seeds (run key `pack`) per (kind, pack size) — a packed seed
    advances at its pack's pace."""
    found: dict[tuple[Key, int], list[float]] = {}
    for run in RunPath.find(Path(results_dir)):
        try:
            summary = json.loads(run.summary.read_text())
            rate = summary["env_steps"] / summary["wall_seconds"]
            device = json.loads(run.meta.read_text()).get("device", "cpu")
            pack = int((yaml.safe_load(run.config.read_text()) or {}).get("pack", 1))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ZeroDivisionError, yaml.YAMLError):
            continue
        found.setdefault(((run.family, run.task, run.algo, device_kind(device)), pack), []).append(rate)
    source = f"finished runs in {results_dir}"
    rates = {k: Rate(statistics.fmean(v), None, source) for k, v in found.items() if all(map(math.isfinite, v))}
    return {k: r for (k, size), r in rates.items() if size == 1}, {k: r for k, r in rates.items() if k[1] > 1}


def file_rates(path: Path) -> dict[Key, Rate]:
    """The rates of a JSON written by harness.bench.rates; {} when there is none."""
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    machines = table.get("machines", {})
    out = {}
    for row in table.get("rates", []):
        machine = machines.get(row.get("machine"), {})
        where = f"{SHIPPED.parent.name}/{SHIPPED.name}, shipped" if path == SHIPPED else str(path)
        key = (row["family"], row["task"], row["algo"], row["device"])
        load = (machine.get("loadavg_start") or [None])[0]
        out[key] = Rate(float(row["steps_per_s"]), row.get("eval_s_per_episode"), where, machine_text(machine), load)
    return out


def machine_text(machine: dict[str, Any]) -> str:
    return ", ".join([f"{machine.get('created', '?')[:10]} on {machine.get('host', '?')}",
                      machine.get("cpu_model") or "unknown CPU", f"{machine.get('cpu_count', '?')} CPUs",
                      f"torch {machine.get('torch', '?')}"])


@dataclass
class RateBook:
    tiers: list[dict[Key, Rate]]
    packed: dict[tuple[Key, int], Rate] = field(default_factory=dict)
    """Finished packed seeds' rates per (kind, pack size)."""

    @classmethod
    def load(cls, results_dir: Path, shipped: Path = SHIPPED) -> RateBook:
        results_dir = Path(results_dir)
        lone, packed = finished_run_rates(results_dir)
        return cls([lone, file_rates(results_dir / LOCAL_NAME), file_rates(shipped)], packed)

    def find(self, key: Key) -> tuple[Rate, bool] | None:
        """(rate, True when it is its family's median) or None."""
        for tier in self.tiers:
            if key in tier:
                return tier[key], False
        family, _, algo, device = key
        for tier in self.tiers:
            peers = [r for (f, _, a, d), r in tier.items() if (f, a, d) == (family, algo, device)]
            if peers:
                evals = [r.eval_s_per_episode for r in peers if r.eval_s_per_episode is not None]
                median_eval = statistics.median(evals) if len(evals) == len(peers) else None
                rate = Rate(statistics.median(r.steps_per_s for r in peers), median_eval, peers[0].source,
                            peers[0].machine, peers[0].load)
                return rate, True
        return None


@dataclass
class Estimate:
    cpu_hours: float = 0.0
    gpu_hours: float = 0.0
    jobs: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    measured: dict[str, set[str]] = field(default_factory=dict)
    """Per source, the machines of its rates."""
    loads: dict[str, list[float]] = field(default_factory=dict)
    """Per source, the load averages its rates were measured under."""
    family_median: list[Key] = field(default_factory=list)
    unknown: list[Key] = field(default_factory=list)
    packs_as_lone: int = 0
    """Packed jobs without a finished pack of their size: their seeds' lone hours, summed."""


def unit_hours(unit: list[CostQuery], book: RateBook) -> tuple[float, Rate, bool] | None:
    """(hours, rate, from the family median) of one job: a run, or a pack of seeds of one
    config on one device. A pack takes finished packs of its size where there are some (its
    slowest seed's remaining steps at their pace), else its seeds' lone hours one after
    another (what packing gains is not assumed). None without any rate."""
    key = unit[0].key
    if len(unit) > 1 and (key, len(unit)) in book.packed:
        rate = book.packed[(key, len(unit))]
        return max(job_hours(q, rate) for q in unit), rate, False
    found = book.find(key)
    if found is None:
        return None
    rate, median = found
    return sum(job_hours(q, rate) for q in unit), rate, median


def estimate(units: Iterable[list[CostQuery]], book: RateBook) -> Estimate:
    """The totals over jobs (each a list of the queries of the seeds it trains)."""
    out = Estimate()
    for unit in units:
        out.jobs += len(unit)
        found = unit_hours(unit, book)
        if found is None:
            out.unknown += [q.key for q in unit]
            continue
        hours, rate, median = found
        out.packs_as_lone += len(unit) > 1 and (unit[0].key, len(unit)) not in book.packed
        if unit[0].key[3] == "gpu":
            out.gpu_hours += hours
        else:
            out.cpu_hours += hours * unit[0].threads
        out.by_source[rate.source] = out.by_source.get(rate.source, 0) + len(unit)
        if rate.machine:
            out.measured.setdefault(rate.source, set()).add(rate.machine)
        if rate.load is not None:
            out.loads.setdefault(rate.source, []).append(rate.load)
        if median:
            out.family_median += [q.key for q in unit]
    return out


def key_text(keys: Iterable[Key]) -> str:
    names = dict.fromkeys(f"{f}/{t} {a}{' (gpu)' if d == 'gpu' else ''}" for f, t, a, d in keys)
    shown = list(names)[:6]
    return ", ".join(shown) + (f" and {len(names) - len(shown)} more" if len(names) > len(shown) else "")


def estimate_lines(est: Estimate, command_hint: str) -> list[str]:
    """The estimate as the dry run prints it: totals, then where each figure comes from."""
    rated = est.jobs - len(est.unknown)
    lines = [f"estimate for the {est.jobs} job{'s' * (est.jobs != 1)} left to run: {est.cpu_hours:,.1f} CPU-hours "
             f"(cores × hours), {est.gpu_hours:,.1f} GPU-hours"
             + (f", for the {rated} with a rate" if est.unknown else "")]
    for source, count in sorted(est.by_source.items(), key=lambda item: -item[1]):
        where = [f"measured {'; '.join(sorted(est.measured[source]))}"] if source in est.measured else []
        loads = est.loads.get(source, [])
        if loads:
            spread = f"{min(loads):.1f}" if max(loads) - min(loads) < 0.05 else f"{min(loads):.1f}-{max(loads):.1f}"
            where.append(f"load average {spread} when measured")
        lines.append(f"  {count} job{'s' * (count != 1)} at rates from {source}" + (f" ({'; '.join(where)})" if where else ""))
    if est.packs_as_lone:
        lines.append(f"  {est.packs_as_lone} packed job{'s' * (est.packs_as_lone != 1)} estimated from lone runs, one seed "
                     "after another (no finished pack of their size: what packing gains is not assumed)")
    if est.family_median:
        lines.append(f"  {len(est.family_median)} of them at their family's median rate (no rate of their own): "
                     f"{key_text(est.family_median)}")
    if est.unknown:
        lines.append(f"  {len(est.unknown)} job{'s' * (len(est.unknown) != 1)} without any rate ({key_text(est.unknown)}): "
                     f"measure them with `{command_hint}`")
    return lines
