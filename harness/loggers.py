"""Live metric loggers beside the CSV tables: TensorBoard and Weights & Biases.

`logger=csv,tensorboard,wandb` selects them (csv is always on). The harness feeds every
train.csv / eval.csv row to them from one place (harness/records.py), so they see exactly
the CSV's numbers, at the row's `env_steps`, under the same names:

    tag = column          where the column already has a group ("loss/critic", "perf/sps")
    tag = <table>/column  otherwise ("train/train_return_mean", "eval/eval_return_mean")

A logger's files are rebuilt from the CSV rows each time a run is opened, so a run killed
and resumed from its checkpoint shows each point once, with the values its CSV keeps:
  - TensorBoard: event files in the run directory (`tensorboard --logdir results/<suite>`
    shows every run as <family>/<task>/<algo>/seed_<k>); opening removes the run's old
    event files and writes the kept rows again.
  - W&B: offline by default (files under <run>/wandb/, `wandb sync` them later); online
    with `wandb_mode=online` or WANDB_MODE=online. One W&B run per run directory, its id
    kept in <run>/wandb/run_id: project `wandb_project` (default hasac-bench-<suite>),
    group <family>/<task>/<algo>, name <family>/<task>/<algo>/seed_<k>. W&B cannot resume an
    offline run, so opening an offline run starts it again under the same id, replays the
    kept rows and deletes the run's older offline directories: the one left holds the whole
    history. Online, W&B resumes the run and rows below its last step are not sent again.
Both packages are optional extras imported only when selected; a missing one is a one-line
ConfigError naming the extra, raised before a run writes anything (`check_loggers`).
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from envs.errors import ConfigError
from harness.layout import RunPath

LOGGERS = {"csv": None, "tensorboard": "tensorboard", "wandb": "wandb"}
"""Logger name → the package (and hasac-bench extra of the same name) it needs."""
WANDB_MODES = ("offline", "online")
TB_FLUSH_SECS = 10


def logger_names(value: str | Iterable[str]) -> list[str]:
    """`csv,tensorboard` or ['csv', 'tensorboard'] → the selected loggers, csv first;
    an unknown name is a ConfigError."""
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [str(n).strip() for n in names if str(n).strip()]
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise ConfigError(f"unknown logger {unknown[0]!r}; valid: {', '.join(LOGGERS)} (e.g. logger=csv,tensorboard)")
    return list(dict.fromkeys(["csv", *names]))


def check_loggers(value: str | Iterable[str], wandb_mode: str | None = None) -> list[str]:
    """Validate a selection before anything is written: names, mode, installed packages."""
    names = logger_names(value)
    for name in names:
        package = LOGGERS[name]
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(f"logger={name} needs the {package} package: pip install 'hasac-bench[{package}]'")
    if wandb_mode is not None and wandb_mode not in WANDB_MODES:
        raise ConfigError(f"wandb_mode must be one of {', '.join(WANDB_MODES)}, got {wandb_mode!r}")
    return names


@dataclass(frozen=True)
class RunInfo:
    """What a logger attaches to a run: where it is in the sweep, its config, its provenance."""

    path: RunPath
    config: dict[str, Any]
    provenance: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.path.family}/{self.path.task}/{self.path.algo}"


@dataclass(frozen=True)
class WandbOptions:
    mode: str | None = None
    """offline | online; None: $WANDB_MODE, else offline."""
    project: str | None = None
    entity: str | None = None


@dataclass(frozen=True)
class LoggerSettings:
    """The run keys `logger`, `wandb_mode`, `wandb_project`, `wandb_entity`."""

    names: tuple[str, ...] = ("csv",)
    wandb: WandbOptions = WandbOptions()

    @classmethod
    def from_config(cls, cfg: Any) -> LoggerSettings:
        return cls(tuple(check_loggers(cfg.logger, cfg.wandb_mode)),
                   WandbOptions(cfg.wandb_mode, cfg.wandb_project, cfg.wandb_entity))


def tag(table: str, column: str) -> str:
    return column if "/" in column else f"{table}/{column}"


def scalars(table: str, row: dict[str, Any]) -> dict[str, float]:
    """The row's numbers under their logger tags. env_steps is the step, not a metric, and a
    NaN is an empty cell (a metric the row does not have), so it is not logged."""
    out = {}
    for column, value in row.items():
        if column != "env_steps" and isinstance(value, numbers.Real) and not isinstance(value, bool):
            if not math.isnan(value):
                out[tag(table, column)] = float(value)
    return out


def in_log_order(train_rows: list[dict], eval_rows: list[dict]) -> list[tuple[str, dict]]:
    """Both tables' rows in the order the loop wrote them: by env step, the train row of a
    step before the evaluation at that step."""
    tagged = [(int(r["env_steps"]), 0, "train", r) for r in train_rows]
    tagged += [(int(r["env_steps"]), 1, "eval", r) for r in eval_rows]
    return [(table, row) for _, _, table, row in sorted(tagged, key=lambda t: t[:2])]


class TensorBoardLogger:
    def __init__(self, info: RunInfo):
        from torch.utils.tensorboard import SummaryWriter

        for old in info.path.tensorboard_events:
            old.unlink()  # rebuilt from the CSV rows below, so nothing is shown twice
        self.writer = SummaryWriter(log_dir=str(info.path.dir), flush_secs=TB_FLUSH_SECS)
        self.writer.add_text("config", _code_block(json.dumps(info.config, indent=2, default=str)), 0)
        self.writer.add_text("provenance", _code_block(json.dumps(info.provenance, indent=2, default=str)), 0)

    def log(self, table: str, row: dict[str, Any]) -> None:
        step = int(row["env_steps"])
        for name, value in scalars(table, row).items():
            self.writer.add_scalar(name, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, failed: bool = False) -> None:
        self.writer.close()


class WandbLogger:
    def __init__(self, info: RunInfo, options: WandbOptions):
        import wandb

        mode = options.mode or os.environ.get("WANDB_MODE") or "offline"
        if mode not in WANDB_MODES:
            raise ConfigError(f"W&B mode must be one of {', '.join(WANDB_MODES)}, got {mode!r}")
        run_id = _wandb_run_id(info.path.wandb)
        try:
            self.run = wandb.init(
                dir=str(info.path.dir), mode=mode, id=run_id, resume="allow",
                project=options.project or f"hasac-bench-{info.path.suite}", entity=options.entity,
                group=info.label, name=f"{info.label}/seed_{info.path.seed}", job_type="train",
                tags=[info.path.family, info.path.task, info.path.algo],
                config={**info.config, "provenance": info.provenance, "run_dir": str(info.path)},
                settings=wandb.Settings(console="off", silent=True),
                reinit="create_new",  # a pack (run key pack) holds one W&B run per seed in one process
            )
        except wandb.errors.Error as exc:  # e.g. online without `wandb login`
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            raise ConfigError(f"W&B could not start the run ({mode}): {lines[0]}") from None
        # Online, a resumed run already holds every step below run.step; offline starts anew.
        self.first_step = self.run.step if mode == "online" else 0
        if mode == "offline":
            current = Path(self.run.dir).parent.resolve()
            for old in info.path.wandb.glob(f"offline-run-*-{run_id}"):
                if old.resolve() != current:
                    shutil.rmtree(old, ignore_errors=True)

    def log(self, table: str, row: dict[str, Any]) -> None:
        step = int(row["env_steps"])
        if step >= self.first_step:
            self.run.log(scalars(table, row), step=step)

    def flush(self) -> None:
        pass  # wandb-core writes its file itself, every 15 s and at the end

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def _wandb_run_id(folder: Path) -> str:
    """The run directory's W&B id, made once and kept beside W&B's own files."""
    path = folder / "run_id"
    if path.exists():
        return path.read_text().strip()
    run_id = uuid.uuid4().hex[:16]
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".run_id.tmp"
    tmp.write_text(run_id + "\n")
    os.replace(tmp, path)  # never a torn id
    return run_id


def _code_block(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())  # Markdown code in TensorBoard's text tab


class Loggers:
    """The selected loggers of one run, fed the CSV rows."""

    def __init__(self, sinks: list[Any]):
        self.sinks = sinks

    def log(self, table: str, row: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.log(table, row)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self, failed: bool = False) -> None:
        for sink in self.sinks:
            sink.close(failed)
        self.sinks = []


def open_loggers(settings: LoggerSettings, info: RunInfo, train_rows: list[dict] = (),
                 eval_rows: list[dict] = ()) -> Loggers:
    """Open the selected loggers (besides csv) for a run whose CSV tables hold `train_rows`
    and `eval_rows` (empty for a new run, the rows up to the checkpoint for a resumed one);
    those rows are written to the loggers first."""
    sinks: list[Any] = []
    try:
        for name in settings.names:
            if name == "tensorboard":
                sinks.append(TensorBoardLogger(info))
            elif name == "wandb":
                sinks.append(WandbLogger(info, settings.wandb))
    except BaseException:
        Loggers(sinks).close(failed=True)
        raise
    loggers = Loggers(sinks)
    for table, row in in_log_order(list(train_rows), list(eval_rows)):
        loggers.log(table, row)
    loggers.flush()
    return loggers
