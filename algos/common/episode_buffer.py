"""Episode replay for recurrent value-based learners (QMIX): whole episodes, padded to the
episode limit, with a `filled` mask (PyMARL's EpisodeBatch, capacity and batch in episodes).

Every env copy has one episode under construction; VecEnv auto-resets, so the copies'
episodes are not aligned and each is committed to the ring buffer on its own when it ends.
An episode of length L occupies views t = 0..L (the view at L is the true last view,
`info["final_*"]`, so truncated episodes can bootstrap) and transitions t = 0..L−1.

Shapes: C capacity, T episode limit, N agents, O the widest observation (narrower ones are
zero-padded), A the most actions of any agent (an agent's extra actions are never available),
S state dim.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from envs.base import EnvSpec, Step

VIEW_KEYS = ("obs", "state", "avail", "alive")  # [.., T+1, ..]: views before and after each step
STEP_KEYS = ("actions", "reward", "terminated", "truncated", "filled")  # [.., T, ..]: one row per transition


def padded_dims(spec: EnvSpec) -> tuple[int, int]:
    """(O, A): the widest observation and the most actions of any agent."""
    obs_dim = max(int(np.prod(s.shape)) for s in spec.obs_spaces)
    n_actions = max(int(s.n) for s in spec.action_spaces if isinstance(s, spaces.Discrete))
    return obs_dim, n_actions


class EpisodeBuffer:
    """Ring buffer of `capacity` episodes plus one episode under construction per env copy."""

    def __init__(self, spec: EnvSpec, capacity: int, n_envs: int):
        self.spec, self.capacity, self.n_envs = spec, capacity, n_envs
        self.T, self.N = spec.episode_limit, spec.n_agents
        self.O, self.A = padded_dims(spec)
        self.own_actions = np.zeros((self.N, self.A), bool)  # agent i may use actions < nᵢ
        for i, s in enumerate(spec.action_spaces):
            self.own_actions[i, : s.n] = True
        self.data = self.empty(capacity)
        self.open = self.empty(n_envs)  # episodes under construction, one per copy
        self.length = np.zeros(n_envs, np.int64)  # transitions written so far per copy
        self.pos = 0  # next slot of the ring
        self.stored = 0  # episodes in the ring (≤ capacity)
        self.episodes = 0  # episodes committed since the start

    def empty(self, rows: int) -> dict[str, np.ndarray]:
        T, N, O, A = self.T, self.N, self.O, self.A
        return {
            "obs": np.zeros((rows, T + 1, N, O), np.float32),
            "state": np.zeros((rows, T + 1, self.spec.state_space.shape[0]), np.float32),
            "avail": np.zeros((rows, T + 1, N, A), bool),
            "alive": np.zeros((rows, T + 1, N), bool),
            "actions": np.zeros((rows, T, N), np.int64),
            "reward": np.zeros((rows, T), np.float32),
            "terminated": np.zeros((rows, T), bool),
            "truncated": np.zeros((rows, T), bool),
            "filled": np.zeros((rows, T), bool),
        }

    def __len__(self) -> int:
        return self.stored

    def views(self, step: Step, final: bool) -> dict[str, np.ndarray]:
        """A Step as padded arrays: obs [E, N, O], state [E, S], avail [E, N, A], alive [E, N].
        final=True reads `info["final_*"]`, the true last views of episodes that just ended."""
        obs = step.info["final_obs"] if final else step.obs
        avail = step.info["final_avail_actions"] if final else step.avail_actions
        padded = np.zeros((step.n_envs, self.N, self.O), np.float32)
        for i, o in enumerate(obs):
            padded[:, i, : o.shape[1]] = o
        mask = np.broadcast_to(self.own_actions, (step.n_envs, self.N, self.A)).copy()
        if avail is not None:
            for i, a in enumerate(avail):
                mask[:, i, : a.shape[1]] &= a.astype(bool)
        return {
            "obs": padded,
            "state": (step.info["final_state"] if final else step.state).astype(np.float32),
            "avail": mask,
            "alive": (step.info["final_alive"] if final else step.alive).astype(bool),
        }

    def add(self, step: Step, actions: list[np.ndarray], nxt: Step) -> int:
        """Append step --actions--> nxt for every copy; returns how many episodes ended."""
        now, after = self.views(step, final=False), self.views(nxt, final=True)
        joint = np.stack([np.asarray(a, np.int64).reshape(-1) for a in actions], axis=1)  # [E, N]
        ended = 0
        for e in range(self.n_envs):
            t = self.length[e]
            if t == 0:
                for key in VIEW_KEYS:
                    self.open[key][e, 0] = now[key][e]
            for key in VIEW_KEYS:
                self.open[key][e, t + 1] = after[key][e]
            self.open["actions"][e, t] = joint[e]
            self.open["reward"][e, t] = nxt.reward[e]
            self.open["terminated"][e, t] = nxt.terminated[e]
            self.open["filled"][e, t] = True
            self.length[e] = t + 1
            if nxt.done[e] or self.length[e] == self.T:
                # an episode that reaches the limit without a done flag is stored as truncated;
                # the copy's next transition then starts a new stored episode
                self.open["truncated"][e, t] = not nxt.terminated[e]
                self.commit(e)
                ended += int(nxt.done[e])
        return ended

    def commit(self, e: int) -> None:
        for key, value in self.open.items():
            self.data[key][self.pos] = value[e]
            value[e] = 0
        self.length[e] = 0
        self.pos = (self.pos + 1) % self.capacity
        self.stored = min(self.stored + 1, self.capacity)
        self.episodes += 1

    def sample(self, batch_size: int, rng: np.random.Generator, device: torch.device) -> dict[str, torch.Tensor]:
        """`batch_size` distinct stored episodes, cut to the longest one in the batch:
        views [B, L+1, ...], transitions [B, L, ...]."""
        index = np.sort(rng.choice(self.stored, size=batch_size, replace=False))
        length = int(self.data["filled"][index].sum(axis=1).max())
        out = {}
        for key, value in self.data.items():
            cut = length + 1 if key in VIEW_KEYS else length
            out[key] = torch.as_tensor(value[index, :cut], device=device)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Stored episodes (only the written slots) and the episodes under construction."""
        return {
            "data": {k: v[: self.stored].copy() for k, v in self.data.items()},
            "open": {k: v.copy() for k, v in self.open.items()},
            "length": self.length.copy(), "pos": self.pos, "stored": self.stored, "episodes": self.episodes,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos, self.stored, self.episodes = state["pos"], state["stored"], state["episodes"]
        self.length = state["length"].copy()
        for key, value in state["data"].items():
            self.data[key][: self.stored] = value
        for key, value in state["open"].items():
            self.open[key][...] = value
