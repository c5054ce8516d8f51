"""The results layout of one run, written atomically (temp file + rename), with provenance.

results/<suite>/<family>/<task>/<algo>/seed_<k>/
    config.yaml    the fully resolved config
    meta.json      git commit + dirty flag, package versions, command, host, device,
                   start/end, status (running | done | failed | failed: nan)
    train.csv      env_steps, episodes, train return, sps, update metrics
    eval.csv       env_steps, eval return mean/std, episodes, win_rate/score
    summary.json   the final evaluation (+ policy_probs for single-state tasks)
    checkpoints/   latest.pt
    DONE           written last
A reader that sees DONE can trust every other file; a crash never leaves a torn file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TRACKED_PACKAGES = (
    "hasac-bench", "torch", "numpy", "gymnasium", "hydra-core", "omegaconf", "pandas",
    "mpe2", "pettingzoo", "gymnasium-robotics", "mujoco",
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


def atomic_write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the whole table; columns are the union of the rows' keys in first-seen order."""
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))


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
    }


class RunRecord:
    """Owns one run directory: meta status, the CSV tables, summary and DONE."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.train_rows: list[dict[str, Any]] = []
        self.eval_rows: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {}

    @property
    def done(self) -> bool:
        return (self.dir / "DONE").exists()

    def start(self, config_yaml: str, device: str) -> None:
        (self.dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.dir / "config.yaml", config_yaml)
        self.meta = {**provenance(device), "start": now(), "end": None, "status": "running"}
        atomic_write_json(self.dir / "meta.json", self.meta)

    def add_train_row(self, row: dict[str, Any]) -> None:
        self.train_rows.append(row)
        atomic_write_csv(self.dir / "train.csv", self.train_rows)

    def add_eval_row(self, row: dict[str, Any]) -> None:
        self.eval_rows.append(row)
        atomic_write_csv(self.dir / "eval.csv", self.eval_rows)

    def finish(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.dir / "summary.json", summary)
        self._set_status("done")
        atomic_write_text(self.dir / "DONE", now() + "\n")

    def fail(self, status: str, details: str) -> None:
        atomic_write_text(self.dir / "error.txt", details)
        self._set_status(status)

    def _set_status(self, status: str) -> None:
        self.meta.update(status=status, end=now())
        atomic_write_json(self.dir / "meta.json", self.meta)
