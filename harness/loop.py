"""The one collect-and-update loop. It names no algorithm: everything algorithm-specific is
behind act / observe / ready / update (algos/base.py).

    actions = algo.act(step) → nxt = env.step(actions) → algo.observe(step, actions, nxt)
    → while algo.ready(env_steps): algo.update()

`rounds` yields after every vectorised env step, so its callers decide everything else:
training (harness/train.py) evaluates, logs and checkpoints between rounds, the bench
(harness/bench/) times whole training cycles of them, tests run a number of env steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

from algos.base import Algorithm
from envs.base import Step, VecEnv


class TrainingDiverged(RuntimeError):
    """A loss or metric became NaN/inf: the run is recorded as `failed: nan`."""


@dataclass
class Round:
    """One vectorised env step and the updates it made due."""

    env_steps: int
    """Training env steps so far, summed over the copies, this round's included."""
    step: Step
    """The step the next round acts on (this round's result)."""
    metrics: list[dict[str, float]]
    """One dict per update of this round (none when no update was due)."""


def rounds(algo: Algorithm, env: VecEnv, step: Step, env_steps: int = 0) -> Iterator[Round]:
    """The loop from `step` (with `env_steps` done before it), one round per `next()`,
    without end. A non-finite metric raises TrainingDiverged at the update that made it."""
    while True:
        actions = algo.act(step, explore=True)
        nxt = env.step(actions)
        env_steps += env.n_envs
        algo.observe(step, actions, nxt)
        metrics = []
        while algo.ready(env_steps):
            metrics.append(algo.update())
            if not all(math.isfinite(v) for v in metrics[-1].values()):
                raise TrainingDiverged(f"non-finite metric at env step {env_steps}: {metrics[-1]}")
        step = nxt
        yield Round(env_steps, step, metrics)
