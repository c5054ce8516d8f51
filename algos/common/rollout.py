"""The on-policy rollout as typed data: `Rollout` (T steps × E env copies, filled step by
step by `RolloutBuffer`) and `ActorBatch` (what one actor trains on, in chunks).

Shapes: T = episode_length vectorised steps, E env copies, N agents; actor data is cut into
chunks of L = data_chunk_length steps for GRU policies (L = 1 otherwise): [L, C, ...] with
C = (T / L) · E chunk columns per agent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

import numpy as np
import torch
from gymnasium import spaces

from envs.base import EnvSpec


@dataclass
class Rollout:
    """T × E transitions: numpy arrays while the buffer fills, tensors for an update
    (`map`). Per-agent fields are lists indexed by agent id. A one-step `Rollout` whose
    arrays are [E, ...] is what `RolloutBuffer.add` writes."""

    state: Any
    """[T, E, S] centralised state the actions were chosen in."""
    final_state: Any
    """[T, E, S] the true next state of each transition (info["final_state"] at episode ends)."""
    alive: Any
    """[T, E, N] bool: the agent is alive (active) at the step."""
    reward: Any
    """[T, E] team reward."""
    terminated: Any
    """[T, E] bool: the episode ended in a terminal state."""
    truncated: Any
    """[T, E] bool: the episode was cut by its time limit."""
    starts: Any
    """[T, E] bool: first step of an episode (a GRU restarts from zero)."""
    obs: list
    """N × [T, E, O_i] observations."""
    action: list
    """N × [T, E] int64 (Discrete) or [T, E, A_i] (Box): the raw samples, before clipping."""
    log_prob: list
    """N × [T, E] log π_old(a|o) when the action was drawn."""
    avail: list
    """N × [T, E, n_i] bool availability (all ones where the family has no masks) or None (Box)."""
    hidden: list | None
    """N × [T, E, R, H] GRU state the actor was fed at each step, or None without a GRU."""
    critic_hidden: Any = None
    """[T, E, V·R, H] GRU states the recurrent critic was fed at each step (V critic rows per
    env copy, on_policy.py), or None (MLP critic)."""

    @property
    def done(self) -> Any:
        """[T, E] bool: the episode ended (terminated or truncated)."""
        return self.terminated | self.truncated

    @classmethod
    def zeros(cls, spec: EnvSpec, T: int, E: int, hidden_shape: tuple[int, int] | None,
              critic_hidden: tuple[int, int] | None = None) -> Rollout:
        f32, N, S = np.float32, spec.n_agents, spec.state_space.shape[0]
        discrete = [isinstance(a, spaces.Discrete) for a in spec.action_spaces]
        return cls(
            state=np.zeros((T, E, S), f32), final_state=np.zeros((T, E, S), f32), alive=np.zeros((T, E, N), bool),
            reward=np.zeros((T, E), f32), terminated=np.zeros((T, E), bool), truncated=np.zeros((T, E), bool),
            starts=np.zeros((T, E), bool),
            obs=[np.zeros((T, E, o.shape[0]), f32) for o in spec.obs_spaces],
            action=[np.zeros((T, E), np.int64) if d else np.zeros((T, E, *a.shape), f32)
                    for d, a in zip(discrete, spec.action_spaces)],
            log_prob=[np.zeros((T, E), f32) for _ in range(N)],
            avail=[np.ones((T, E, a.n), bool) if d else None for d, a in zip(discrete, spec.action_spaces)],
            hidden=None if hidden_shape is None else [np.zeros((T, E, *hidden_shape), f32) for _ in range(N)],
            critic_hidden=None if critic_hidden is None else np.zeros((T, E, *critic_hidden), f32),
        )

    def arrays(self) -> list[Any]:
        """Every array, per-agent lists flattened, in a fixed order (None entries skipped)."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            out += [v for v in value if v is not None] if isinstance(value, list) else [] if value is None else [value]
        return out

    def map(self, fn: Callable[[Any], Any]) -> Rollout:
        """A Rollout with `fn` applied to every array (lists and None kept as they are)."""
        def apply(value: Any) -> Any:
            if isinstance(value, list):
                return [apply(v) for v in value]
            return None if value is None else fn(value)

        return Rollout(**{f.name: apply(getattr(self, f.name)) for f in fields(self)})


class RolloutBuffer:
    """One rollout of T steps for E env copies, written one step at a time (position `pos`);
    `critic_hidden`: the shape of the recurrent critic's GRU states per env copy, stored
    too (None: an MLP critic)."""

    def __init__(self, spec: EnvSpec, T: int, E: int, hidden_shape: tuple[int, int] | None,
                 critic_hidden: tuple[int, int] | None = None):
        self.T, self.pos = T, 0
        self.data = Rollout.zeros(spec, T, E, hidden_shape, critic_hidden)

    def add(self, row: Rollout) -> None:
        """Write one vectorised step (`row`'s arrays are [E, ...]) at `pos`."""
        for dest, value in zip(self.data.arrays(), row.arrays(), strict=True):
            dest[self.pos] = value
        self.pos += 1

    @property
    def full(self) -> bool:
        return self.pos >= self.T

    def tensors(self, device: torch.device) -> Rollout:
        return self.data.map(lambda a: torch.as_tensor(a, device=device))

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos, "arrays": [a.copy() for a in self.data.arrays()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos = state["pos"]
        for dest, value in zip(self.data.arrays(), state["arrays"], strict=True):
            dest[...] = value


@dataclass
class ActorBatch:
    """What one actor trains on: the samples of the agents it serves, side by side along the
    columns, in the chunked layout [L, C, ...]."""

    obs: torch.Tensor
    """[L, C, O] actor inputs."""
    action: torch.Tensor
    """[L, C] (Discrete) or [L, C, A] (Box) stored raw actions."""
    old_log_prob: torch.Tensor
    """[L, C] log π_old(a|o)."""
    advantage: torch.Tensor
    """[L, C] normalised advantages."""
    active: torch.Tensor
    """[L, C] 1.0 where the sample counts in the loss (alive, under policy active masks)."""
    starts: torch.Tensor
    """[L, C] bool episode starts."""
    factor: torch.Tensor
    """[L, C] HAPPO's factor M (ones for MAPPO); carries no gradient."""
    avail: torch.Tensor | None
    """[L, C, n] availability, or None (Box)."""
    hidden: torch.Tensor | None
    """[C, R, H] GRU state at each chunk's first step, or None."""

    def columns(self, idx: np.ndarray) -> ActorBatch:
        """The mini-batch of chunk columns `idx`."""
        def pick(name: str, value: torch.Tensor | None) -> torch.Tensor | None:
            if value is None:
                return None
            return value[idx] if name == "hidden" else value[:, idx]

        return ActorBatch(**{f.name: pick(f.name, getattr(self, f.name)) for f in fields(self)})

    @staticmethod
    def cat(parts: list[ActorBatch]) -> ActorBatch:
        """Agents' batches side by side (columns; the hidden states' rows)."""
        def join(name: str) -> torch.Tensor | None:
            values = [getattr(p, name) for p in parts]
            return None if values[0] is None else torch.cat(values, dim=0 if name == "hidden" else 1)

        return ActorBatch(**{f.name: join(f.name) for f in fields(ActorBatch)})


def agent_batch(rollout: Rollout, i: int, obs: torch.Tensor, advantage: torch.Tensor, active: torch.Tensor, L: int) -> ActorBatch:
    """Agent i's samples in the chunked layout, with factor 1. `obs` [T, E, O'] is its actor
    input, `advantage` [T, E] its normalised advantages, `active` [T, E] its loss mask."""
    hidden = None if rollout.hidden is None else to_chunks(rollout.hidden[i], L)[0]
    avail = None if rollout.avail[i] is None else to_chunks(rollout.avail[i], L)
    advantage = to_chunks(advantage, L)
    return ActorBatch(obs=to_chunks(obs, L), action=to_chunks(rollout.action[i], L),
                      old_log_prob=to_chunks(rollout.log_prob[i], L), advantage=advantage,
                      active=to_chunks(active.float(), L), starts=to_chunks(rollout.starts, L),
                      factor=torch.ones_like(advantage), avail=avail, hidden=hidden)


def to_chunks(x: torch.Tensor, L: int) -> torch.Tensor:
    """[T, E, ...] → [L, (T/L)·E, ...]: consecutive L-step pieces of each env's stream."""
    T, E = x.shape[:2]
    x = x.reshape(T // L, L, E, *x.shape[2:]).transpose(0, 1)
    return x.reshape(L, (T // L) * E, *x.shape[3:])
