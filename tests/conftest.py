"""Test-wide settings: one torch thread (2-core machines; see install notes); the
`fake_sbatch` fixture."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import submitit  # noqa: E402,F401  (first: see below)
import torch  # noqa: E402

torch.set_num_threads(1)

# Why submitit is imported first: its import runs logging.config.dictConfig, which closes
# every existing logging handler. Once JAX (SMAX tests) has imported absl, one of those is
# absl's handler, whose stream is pytest's capture file of that moment. In an earlier session
# every test after the SMAX ones then failed with "I/O operation on closed file", and the
# SMAX tests were moved to the end. On 2026-12-01 the whole suite passed without that
# reordering and without this import (jax 0.10.2), so the failure did not reproduce; the
# import stays because it costs nothing and removes the one cause that was found.


import pytest  # noqa: E402


@pytest.fixture
def fake_sbatch(tmp_path, monkeypatch):
    """A stand-in for the cluster's `sbatch` command on PATH, printing what sbatch prints, so
    that the real submission path (Submitit's SlurmExecutor) runs without a cluster. An `srun`
    too: SlurmExecutor refuses to start where `srun` is not on PATH (submitit 1.5.4,
    `SlurmExecutor.affinity`), and a machine without SLURM installed has none."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/sh\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for name in ("sbatch", "srun"):
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
