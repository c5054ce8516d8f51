"""A generated results tree (for the report's tests and its speed check in harness/bench.py):
runs laid out exactly as harness/records.py writes them, with scores from a known law."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def write_run(run_dir: Path, steps: np.ndarray, scores: np.ndarray, status: str = "done",
              success: str | None = None) -> None:
    """One run directory: meta.json, eval.csv (scores as returns, or as a success fraction
    in column `success` when given), DONE when finished."""
    run_dir.mkdir(parents=True, exist_ok=True)
    evals = {"env_steps": steps, "eval_return_mean": scores if success is None else np.zeros_like(scores)}
    if success is not None:
        evals[success] = scores
    pd.DataFrame(evals).to_csv(run_dir / "eval.csv", index=False)
    (run_dir / "meta.json").write_text(json.dumps({"status": status}))
    if status == "done":
        (run_dir / "DONE").write_text("done\n")


def synthetic_tree(root: Path, algos: list[str], tasks: list[str], seeds: int, points: int = 50,
                   budget: int = 1_000_000, seed: int = 0) -> Path:
    """root/<suite=synthetic>/<family>/<task>/<algo>/seed_k with rising noisy curves; each
    algorithm's level differs so that orderings are known."""
    rng = np.random.default_rng(seed)
    suite = root / "synthetic"
    steps = np.linspace(0, budget, points).astype(int)
    for a, algo in enumerate(algos):
        for task in tasks:
            family, name = task.split("/", 1)
            for k in range(seeds):
                level = 10.0 * (a + 1)
                scores = level * (1 - np.exp(-5 * steps / budget)) + rng.normal(0, 1, points)
                write_run(suite / family / name / algo / f"seed_{k}", steps, scores)
    return suite
