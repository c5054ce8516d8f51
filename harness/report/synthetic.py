"""A generated results tree (for the report's tests and its speed check in harness/bench.py):
runs laid out as harness/layout.py says, with scores from a known law."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from harness.layout import RunPath


def write_run(run_dir: Path, steps: np.ndarray, scores: np.ndarray, status: str = "done",
              success: str | None = None, summary: dict | None = None) -> None:
    """One run directory: meta.json, eval.csv (scores as returns, or as a success fraction
    in column `success` when given), summary.json when given, DONE when finished."""
    path = RunPath(run_dir)
    path.dir.mkdir(parents=True, exist_ok=True)
    evals = {"env_steps": steps, "eval_return_mean": scores if success is None else np.zeros_like(scores)}
    if success is not None:
        evals[success] = scores
    pd.DataFrame(evals).to_csv(path.eval_csv, index=False)
    path.meta.write_text(json.dumps({"status": status}))
    if summary is not None:
        path.summary.write_text(json.dumps(summary))
    if status == "done":
        path.done_marker.write_text("done\n")


def synthetic_tree(root: Path, algos: list[str], tasks: list[str], seeds: int, points: int = 50,
                   budget: int = 1_000_000, seed: int = 0) -> Path:
    """root/<suite=synthetic>/<family>/<task>/<algo>/seed_k with rising noisy curves; each
    algorithm's level differs so that orderings are known."""
    rng = np.random.default_rng(seed)
    steps = np.linspace(0, budget, points).astype(int)
    for a, algo in enumerate(algos):
        for task in tasks:
            family, name = task.split("/", 1)
            for k in range(seeds):
                level = 10.0 * (a + 1)
                scores = level * (1 - np.exp(-5 * steps / budget)) + rng.normal(0, 1, points)
                write_run(RunPath.build(root, "synthetic", family, name, algo, k).dir, steps, scores)
    return root / "synthetic"
