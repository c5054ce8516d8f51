"""Checkpoints: the algorithm's full state plus the loop's counters and RNG states,
written atomically; a file that cannot be read is a one-line ConfigError, not a traceback."""

from __future__ import annotations

import io
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.errors import ConfigError
from harness.records import atomic_write_bytes

FORMAT = "hasac-bench/checkpoint/1"


def global_rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_global_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "rng": global_rng_state(), **payload}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint of ours; corrupt or foreign files raise ConfigError."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise ConfigError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}); delete it to start over") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"checkpoint {path} was not written by hasac-bench ({FORMAT}); delete it to start over")
    return payload


def check_checkpoint_intact(path: Path) -> None:
    """A cheap up-front check (zip CRCs, no unpickling) so a corrupt checkpoint stops a
    sweep before it starts; a foreign one is caught when its job loads it."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}); "
                          "delete it to start that run over") from None
    if bad is not None:
        raise ConfigError(f"checkpoint {path} is corrupt ({bad} fails its CRC); delete it to start that run over")
