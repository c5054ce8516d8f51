"""The one collect-and-update loop. It names no algorithm: everything algorithm-specific is
behind act / observe / ready / update (algos/base.py).

    actions = algo.act(step) → nxt = env.step(actions) → algo.observe(step, actions, nxt)
    → while algo.ready(env_steps): algo.update()

`pack_rounds` runs it for the K seeds of a pack (run key `pack`) at once and `rounds` for one
run. Both yield after every vectorised env step, so their callers decide everything else:
training (harness/train.py) evaluates, logs and checkpoints between rounds, the bench
(harness/bench/) times whole training cycles of them, tests run a number of env steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

from algos.base import Algorithm
from algos.common.packed import InTurn, Pack
from envs.base import Step, VecEnv


class TrainingDiverged(RuntimeError):
    """A loss or metric became NaN/inf: the run is recorded as `failed: nan`. In a pack,
    `seeds` are the indices of the seeds that diverged and `partial` the round it
    interrupted (with the updates made so far)."""

    def __init__(self, message: str, seeds: list[int] | None = None, partial: PackRound | None = None):
        super().__init__(message)
        self.seeds, self.partial = seeds or [0], partial


@dataclass
class Round:
    """One vectorised env step and the updates it made due."""

    env_steps: int
    """Training env steps so far, summed over the copies, this round's included."""
    step: Step
    """The step the next round acts on (this round's result)."""
    metrics: list[dict[str, float]]
    """One dict per update of this round (none when no update was due)."""


@dataclass
class PackRound:
    """One round of every seed of a pack (algos/common/packed.py), in lock-step."""

    env_steps: int
    """Training env steps of each seed so far."""
    steps: list[Step]
    """Each seed's step for the next round."""
    metrics: list[list[dict[str, float]]]
    """Each seed's metrics, one dict per update of this round."""


def pack_rounds(pack: Pack, envs: list[VecEnv], steps: list[Step], env_steps: int = 0) -> Iterator[PackRound]:
    """The loop for K seeds trained together (one env per seed, `steps` theirs), one round
    per `next()`, without end. A non-finite metric raises TrainingDiverged at the update
    that made it, naming the seeds."""
    while True:
        actions = pack.act(steps)
        nxts = [env.step(a) for env, a in zip(envs, actions)]
        env_steps += envs[0].n_envs
        pack.observe(steps, actions, nxts)
        steps = nxts
        metrics: list[list[dict[str, float]]] = [[] for _ in steps]
        while pack.ready(env_steps):
            for seed_metrics, update in zip(metrics, pack.update()):
                seed_metrics.append(update)
            bad = [k for k, m in enumerate(metrics) if not all(math.isfinite(v) for v in m[-1].values())]
            if bad:
                raise TrainingDiverged(f"non-finite metric at env step {env_steps}: {metrics[bad[0]][-1]}", bad,
                                       PackRound(env_steps, steps, metrics))
        yield PackRound(env_steps, steps, metrics)


def rounds(algo: Algorithm, env: VecEnv, step: Step, env_steps: int = 0) -> Iterator[Round]:
    """The loop of one run from `step` (with `env_steps` done before it): pack_rounds with a
    pack of one, one round per `next()`, without end. A non-finite metric raises
    TrainingDiverged at the update that made it."""
    for done in pack_rounds(InTurn([algo]), [env], [step], env_steps):
        yield Round(done.env_steps, done.steps[0], done.metrics[0])
