"""Test-wide settings: one torch thread (2-core machines; see install notes)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import submitit  # noqa: E402,F401  (first: see below)
import torch  # noqa: E402

torch.set_num_threads(1)

# Why submitit is imported first: its import runs logging.config.dictConfig, which closes
# every existing logging handler. Once JAX (SMAX tests) has imported absl, one of those is
# absl's handler, whose stream is pytest's capture file of that moment; closing it made
# every later test's output capture fail with "I/O operation on closed file". Imported
# here, before any test imports JAX, submitit configures logging while absl's handler does
# not exist yet (and never again: the module is cached).
