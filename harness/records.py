"""Writing one run's results (the layout: harness/layout.py): atomic writes (temp file +
fsync + rename, so a crash never leaves a torn file), provenance (git commit and dirty
flag, package versions, command, host, device), the run's lock and meta status.
meta.json's `heartbeat` is refreshed with every train.csv row, so a run whose process died
without Python noticing (SIGKILL, a lost SLURM node) shows as `running` with a stale heartbeat.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from envs.errors import ConfigError
from harness.layout import RunPath
from harness.loggers import Loggers, LoggerSettings, RunInfo, open_loggers
from harness.preempt import slurm_job

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TRACKED_PACKAGES = (
    "hasac-bench", "torch", "numpy", "gymnasium", "hydra-core", "omegaconf", "pandas",
    "mpe2", "pettingzoo", "gymnasium-robotics", "mujoco", "tensorboard", "wandb",
)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=_jsonable) + "\n")


class CsvTable:
    """One CSV table of a run, grown a row at a time: a row with the table's columns is one
    appended line (flushed and fsynced; a reader drops an unterminated last line, see
    `read_rows_up_to`), so logging costs the same at any run length; a row bringing new
    columns (update metrics appear after warm-up) rewrites the table atomically once.
    Columns: the union of the rows' keys in first-seen order."""

    def __init__(self, path: Path, rows: list[dict[str, Any]] | None = None):
        self.path, self.rows = path, list(rows or [])
        self.columns = list(dict.fromkeys(k for r in self.rows for k in r))

    def rewrite(self) -> None:
        atomic_write_text(self.path, pd.DataFrame(self.rows, columns=self.columns).to_csv(index=False))

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new or len(self.rows) == 1:
            self.columns += new
            self.rewrite()
            return
        line = pd.DataFrame([row], columns=self.columns).to_csv(index=False, header=False)
        with open(self.path, "a") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the project checkout (None outside a git checkout)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(device: str) -> dict[str, Any]:
    """Everything needed to say where a number came from."""
    return {
        "git": git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": device,
        "slurm": slurm_job(),
    }


def check_writable(root: Path) -> None:
    """Refuse, leaving nothing behind, a results root that cannot be written: a directory is
    made and removed again in its nearest existing ancestor (permissions alone do not tell,
    e.g. for root or in /proc)."""
    existing = root.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"results_dir={root} cannot be written: {existing} is a file; choose another results_dir")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".hasac-bench-probe-"))
    except OSError as exc:
        raise ConfigError(f"results_dir={root} cannot be written: {exc.strerror} in {existing}; "
                          "choose another results_dir") from None


class RunLocked(ConfigError):
    """Another live process holds the run directory."""


class RunRecord:
    """Owns one run directory: the lock, meta status and heartbeat, the CSV tables,
    summary and DONE. It is also the one place the live loggers (harness/loggers.py) are
    fed: each CSV row goes to them as it is written."""

    def __init__(self, path: RunPath, loggers: LoggerSettings = LoggerSettings()):
        self.path = path
        self.train = CsvTable(path.train_csv)
        self.eval = CsvTable(path.eval_csv)
        self.meta: dict[str, Any] = {}
        self._lock_handle = None
        self.logger_settings = loggers
        self.loggers = Loggers([])

    def lock(self) -> None:
        """Take the directory's lock or refuse with one line naming the holder. flock is
        released by the kernel when the holder dies, so a crashed run never blocks a rerun."""
        self.path.dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.path.lock, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(handle)
            handle.close()
            raise RunLocked(f"{self.path} is in use by {holder}; wait for it or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {now()}\n")
        handle.flush()
        self._lock_handle = handle

    @staticmethod
    def _holder(handle, patience_s: float = 2.0) -> str:
        """The holder's line. The holder writes it just after taking the lock (truncating
        first), so a refused process may look in between: it waits briefly for the line."""
        deadline = time.monotonic() + patience_s
        while True:
            handle.seek(0)
            holder = handle.read().strip()
            if holder or time.monotonic() > deadline:
                return holder or "another process"
            time.sleep(0.05)

    def unlock(self) -> None:
        self.loggers.close(failed=True)  # still open only when the run stopped on an error
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def start(self, config_yaml: str, device: str) -> None:
        self.meta = {**provenance(device), "start": now(), "end": None, "status": "running", "heartbeat": now()}
        self._open_loggers(yaml.safe_load(config_yaml) or {})  # one that cannot start (no W&B login) stops us here
        self.path.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path.config, config_yaml)
        atomic_write_json(self.path.meta, self.meta)

    def resume(self, device: str, env_steps: int) -> None:
        """Continue a run from its checkpoint at `env_steps`: keep the rows up to it (later
        ones are redone), keep the original start, and log the resumption in meta."""
        self.train = CsvTable(self.path.train_csv, read_rows_up_to(self.path.train_csv, env_steps))
        self.eval = CsvTable(self.path.eval_csv, read_rows_up_to(self.path.eval_csv, env_steps))
        old = read_meta(self.path)
        resumes = old.get("resumed", []) + [{"at": now(), "env_steps": env_steps, "host": socket.gethostname(),
                                             "slurm": slurm_job()}]
        self.meta = {**provenance(device), "start": old.get("start", now()), "end": None, "status": "running",
                     "heartbeat": now(), "resumed": resumes}
        if "interrupted" in old:
            self.meta["interrupted"] = old["interrupted"]
        atomic_write_json(self.path.meta, self.meta)
        self.train.rewrite()
        self.eval.rewrite()
        self._open_loggers()

    def _open_loggers(self, config: dict[str, Any] | None = None) -> None:
        """Open the selected loggers, holding the rows the CSV tables hold now."""
        if self.logger_settings.names == ("csv",):
            return  # the CSV tables are written here anyway
        config = config if config is not None else yaml.safe_load(self.path.config.read_text()) or {}
        fields = {k: v for k, v in self.meta.items() if k not in ("status", "end", "heartbeat")}
        self.loggers = open_loggers(self.logger_settings, RunInfo(self.path, config, fields),
                                    self.train.rows, self.eval.rows)

    def add_train_row(self, row: dict[str, Any]) -> None:
        self.train.add(row)
        self.meta["heartbeat"] = now()
        atomic_write_json(self.path.meta, self.meta)
        self.loggers.log("train", row)

    def add_eval_row(self, row: dict[str, Any]) -> None:
        self.eval.add(row)
        self.loggers.log("eval", row)
        self.loggers.flush()

    def finish(self, summary: dict[str, Any]) -> None:
        self.loggers.close()  # complete before DONE says every file can be trusted
        atomic_write_json(self.path.summary, summary)
        self._set_status("done")
        atomic_write_text(self.path.done_marker, now() + "\n")

    def interrupt(self, signal_name: str, env_steps: int) -> None:
        """The run stopped on a signal with its checkpoint at `env_steps` (harness/preempt.py);
        every such stop is listed in meta, next to the resumption that followed it."""
        self.loggers.close()  # a clean stop: the resumed run rebuilds its curves from the CSV rows
        stops = self.meta.get("interrupted", []) + [{"at": now(), "env_steps": env_steps, "signal": signal_name,
                                                     "slurm": slurm_job()}]
        self.meta["interrupted"] = stops
        self._set_status("interrupted")

    def fail(self, status: str, details: str) -> None:
        self.loggers.close(failed=True)
        atomic_write_text(self.path.error, details)
        self._set_status(status)

    def _set_status(self, status: str) -> None:
        self.meta.update(status=status, end=now(), heartbeat=now())
        atomic_write_json(self.path.meta, self.meta)


def read_meta(path: RunPath) -> dict[str, Any]:
    """meta.json of a run, {} when absent or unreadable."""
    try:
        return json.loads(path.meta.read_text())
    except (OSError, ValueError):
        return {}


def heartbeat_age_seconds(meta: dict[str, Any]) -> float | None:
    beat = meta.get("heartbeat")
    if not beat:
        return None
    return (dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(beat)).total_seconds()


def read_rows_up_to(path: Path, env_steps: int) -> list[dict[str, Any]]:
    """The rows of a run's table up to `env_steps`; an unterminated last line (a crash during
    an append) is dropped."""
    if not path.exists():
        return []
    text = path.read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    if not text.strip():
        return []
    rows = pd.read_csv(io.StringIO(text), float_precision="round_trip")  # the default parser can be 1 ulp off
    return rows[rows["env_steps"] <= env_steps].to_dict("records")
