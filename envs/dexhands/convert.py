"""What the dexhands backends share: tensor ↔ numpy conversion (both simulators keep their
buffers as torch tensors on the simulation device; `Step` holds numpy) and the snapshots
of a simulator that cannot snapshot itself."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from gymnasium import spaces


def host(tensor) -> np.ndarray:
    """A float32/bool numpy array of a (possibly GPU) tensor: the one transfer per tensor."""
    array = tensor.detach().cpu().numpy()
    return array.astype(np.float32, copy=False) if array.dtype.kind == "f" else array


def float32_box(shape: tuple[int, ...], bound: float) -> spaces.Box:
    return spaces.Box(-bound, bound, shape=tuple(shape), dtype=np.float32)


def device_actions(torch, actions: Sequence[np.ndarray], boxes: Sequence[spaces.Box], n_envs: int, device) -> list:
    """N × [E, A_i] numpy actions → N float32 tensors on `device`, each clipped to its
    agent's Box there (one host→device copy per agent)."""
    out = []
    for a, box in zip(actions, boxes):
        tensor = torch.as_tensor(np.asarray(a, np.float32), device=device)
        out.append(tensor.reshape(n_envs, *box.shape).clamp(float(box.low.min()), float(box.high.max())))
    return out


class RestartSnapshots:
    """`get_state`/`set_state` of a BatchedEnv whose simulator cannot snapshot itself: a
    marker per env, and restoring restarts every env (a resumed run continues the learner
    exactly, not the episodes in flight). Needs `spec`, `n_envs`, `reset` and `close`."""

    def get_state(self) -> list:
        return [{"task": f"dexhands/{self.spec.task}"} for _ in range(self.n_envs)]

    def set_state(self, states: Sequence) -> None:
        if len(states) != self.n_envs:
            raise ValueError(f"{len(states)} env states for {self.n_envs} env copies")
        self.reset()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
