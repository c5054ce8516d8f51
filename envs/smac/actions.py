"""SMAC's action layout on SMAX, so a policy sees the same action meanings on either backend.

SMAC: 0 no-op (available only to dead units), 1 stop, 2-5 move north/south/east/west,
6+k attack enemy k. SMAX: 0 north, 1 east, 2 south, 3 west, 4 stop, 5+k attack enemy k,
and its dead units may only "stop". Death masks follow SMAC's rule (alive = no-op
unavailable).
"""

from __future__ import annotations

import numpy as np

SMAC_TO_SMAX_MOVES = np.array([4, 4, 0, 2, 1, 3])  # SMAC 0 no-op, 1 stop, 2 N, 3 S, 4 E, 5 W


def smac_actions_to_smax(actions, xp=np):
    """[..., N] SMAC indices -> SMAX indices (no-op and stop both become SMAX's stop).
    `xp`: numpy or jax.numpy."""
    actions = xp.asarray(actions).astype(xp.int32)
    return xp.where(actions >= 6, actions - 1, xp.asarray(SMAC_TO_SMAX_MOVES, xp.int32)[xp.minimum(actions, 5)])


def smax_avail_to_smac(avail, alive, xp=np):
    """[..., N, 5+K] SMAX masks -> [..., N, 6+K] SMAC masks: no-op only for the dead, stop
    and moves only for the living (SMAX lets the dead 'stop'). `xp`: numpy or jax.numpy."""
    alive = alive[..., None]
    noop = ~alive
    stop = avail[..., 4:5].astype(bool) & alive
    moves = avail[..., [0, 2, 1, 3]].astype(bool)
    attacks = avail[..., 5:].astype(bool)
    return xp.concatenate([noop, stop, moves, attacks], axis=-1)
