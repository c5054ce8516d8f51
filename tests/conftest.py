"""Test-wide settings: one torch thread (2-core machines; see install notes)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
