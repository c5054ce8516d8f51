"""Test-wide settings: one torch thread (2-core machines; see install notes)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_collection_modifyitems(session, config, items):
    """Run the tests that execute SMAX (JAX) last: after JAX has run in this process,
    pytest's output capture of every later test fails with "I/O operation on closed file"
    (seen with jax 0.10.2 / jaxlib on CPU; cause not found). Later tests would fail for a
    reason that is not theirs."""
    items.sort(key=lambda item: item.path.name == "test_smac.py")
