"""Simulators' own output, kept off the user's terminal.

Simulators talk when they are imported or built: gymnasium-robotics' Adroit notice, MuJoCo's
`settotalmass` deprecation (written by C code straight to file descriptor 2), JaxMARL's
"Importing submoduled environments...". `captured()` sends everything written to file
descriptors 1 and 2 while a block runs (C libraries, Python prints, warnings, logging) to a
file, so the user sees the harness's own lines; the text is kept for the run's log.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import multiprocessing.forkserver
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

from envs.errors import UserError


@dataclass
class Capture:
    text: str = ""
    """What the block wrote, available once the block has ended."""


@contextlib.contextmanager
def captured(path: Path | None = None, may_start_processes: bool = True) -> Iterator[Capture]:
    """Redirect fds 1 and 2 (and sys.stdout/sys.stderr) to `path` (appended; a temporary
    file when None) for the block. Processes started in the block inherit the redirection,
    so when the block may start some (env worker processes), the forkserver that later jobs
    fork from is started first, outside it. When the block fails with anything but a
    UserError (a crash, not a missing simulator), the captured text is written to stderr
    after the block, beside the traceback."""
    if may_start_processes:
        multiprocessing.forkserver.ensure_running()
    capture, crashed = Capture(), False
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    target = open(path, "ab+") if path is not None else tempfile.TemporaryFile()
    start = target.seek(0, os.SEEK_END)
    text_stream = io.TextIOWrapper(target, encoding="utf-8", errors="replace", line_buffering=True, write_through=True)
    _flush_all()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(target.fileno(), 1)
        os.dup2(target.fileno(), 2)
        with contextlib.redirect_stdout(text_stream), contextlib.redirect_stderr(text_stream), warnings.catch_warnings():
            warnings.showwarning = partial(_show_warning, text_stream)  # also where a caller records warnings
            yield capture
    except UserError:
        raise
    except BaseException:
        crashed = True
        raise
    finally:
        text_stream.flush()
        _flush_all()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        target.seek(start)
        capture.text = target.read().decode("utf-8", errors="replace")
        text_stream.detach()
        target.close()
        if crashed and capture.text:
            sys.stderr.write(capture.text)


def _flush_all() -> None:
    """Python's buffered streams and C's stdio buffers (printf output not yet written)."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


def _show_warning(stream, message, category, filename, lineno, file=None, line=None) -> None:
    stream.write(warnings.formatwarning(message, category, filename, lineno, line))
