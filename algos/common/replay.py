"""Replay buffer with n-step returns for the off-policy HA algorithms.

Storage is a ring over vectorised steps, `[T, E, ...]` (T = ceil(capacity / E)), so the
successor of transition (t, e) is (t + 1, e): the same layout as HARL's interleaved
threads (off_policy_buffer_base.py). n-step returns are formed at sampling time
(HARL `next_n`): follow up to n successors, stopping after an episode end (terminated
or truncated) or at the newest transition of that copy.

    R⁽ⁿ⁾ = Σ_{j<k} γʲ r_{t+j},   discount = γᵏ,   next view and `terminated` from t+k−1,

with k ≤ n the number of steps actually taken. Truncation stops the sum but bootstraps
(terminated stays False), termination does not.

The buffer also builds the critic's input: Box actions raw, Discrete actions one-hot.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

from envs.base import EnvSpec, Step


class Batch(NamedTuple):
    """A sampled minibatch as tensors. B batch, N agents."""

    state: torch.Tensor  # [B, S]
    obs: list[torch.Tensor]  # N × [B, O_i]
    actions: list[torch.Tensor]  # N × [B, A_i] critic encoding (Box raw, Discrete one-hot)
    avail: list[torch.Tensor | None]  # N × [B, n_i] bool, None for Box
    valid: torch.Tensor  # [B, N] float: agent alive at the start of the transition
    reward: torch.Tensor  # [B, 1] n-step return R⁽ⁿ⁾
    discount: torch.Tensor  # [B, 1] γᵏ
    terminated: torch.Tensor  # [B, 1] float: 1 = no bootstrap
    next_state: torch.Tensor  # [B, S]
    next_obs: list[torch.Tensor]  # N × [B, O_i]
    next_avail: list[torch.Tensor | None]  # N × [B, n_i] bool, None for Box


class ReplayBuffer:
    """Ring buffer of `capacity` transitions from `n_envs` lock-step copies."""

    def __init__(self, spec: EnvSpec, capacity: int, n_envs: int, gamma: float, n_step: int):
        self.spec, self.n_envs, self.gamma, self.n_step = spec, n_envs, gamma, n_step
        self.T = -(-capacity // n_envs)
        self.pos = 0  # next row to write
        self.filled = 0  # rows written, at most T
        T, E = self.T, n_envs
        self.data: dict[str, np.ndarray] = {
            "state": np.zeros((T, E, *spec.state_space.shape), np.float32),
            "next_state": np.zeros((T, E, *spec.state_space.shape), np.float32),
            "alive": np.zeros((T, E, spec.n_agents), bool),
            "reward": np.zeros((T, E), np.float32),
            "terminated": np.zeros((T, E), bool),
            "done": np.zeros((T, E), bool),
        }
        for i, (obs_space, act_space) in enumerate(zip(spec.obs_spaces, spec.action_spaces)):
            self.data[f"obs_{i}"] = np.zeros((T, E, *obs_space.shape), np.float32)
            self.data[f"next_obs_{i}"] = np.zeros((T, E, *obs_space.shape), np.float32)
            if isinstance(act_space, spaces.Discrete):
                self.data[f"action_{i}"] = np.zeros((T, E), np.int64)
                self.data[f"avail_{i}"] = np.zeros((T, E, act_space.n), bool)
                self.data[f"next_avail_{i}"] = np.zeros((T, E, act_space.n), bool)
            else:
                self.data[f"action_{i}"] = np.zeros((T, E, *act_space.shape), np.float32)

    def __len__(self) -> int:
        return self.filled * self.n_envs

    def add(self, step: Step, actions: list[np.ndarray], nxt: Step) -> None:
        """Store the E transitions step --actions--> nxt; the next view is nxt.info['final_*']."""
        row = {
            "state": step.state,
            "next_state": nxt.info["final_state"],
            "alive": step.alive,
            "reward": nxt.reward,
            "terminated": nxt.terminated,
            "done": nxt.terminated | nxt.truncated,
        }
        for i, space in enumerate(self.spec.action_spaces):
            row[f"obs_{i}"] = step.obs[i]
            row[f"next_obs_{i}"] = nxt.info["final_obs"][i]
            row[f"action_{i}"] = actions[i]
            if isinstance(space, spaces.Discrete):
                row[f"avail_{i}"] = True if step.avail_actions is None else step.avail_actions[i]
                final_avail = nxt.info.get("final_avail_actions")
                row[f"next_avail_{i}"] = True if final_avail is None else final_avail[i]
        for key, value in row.items():
            self.data[key][self.pos] = value
        self.pos = (self.pos + 1) % self.T
        self.filled = min(self.filled + 1, self.T)

    def sample(self, batch_size: int, rng: np.random.Generator, device: torch.device) -> Batch:
        """`batch_size` transitions drawn uniformly without replacement, with n-step returns."""
        flat = rng.choice(len(self), size=batch_size, replace=False)
        t, e = flat // self.n_envs, flat % self.n_envs
        last, reward, discount = self.n_step_window(t, e)
        d = self.data

        def tensor(array: np.ndarray, dtype=torch.float32) -> torch.Tensor:
            return torch.as_tensor(array, device=device).to(dtype)

        def column(x: np.ndarray) -> torch.Tensor:
            return tensor(x).unsqueeze(-1)

        actions, avail, next_avail = [], [], []
        for i, space in enumerate(self.spec.action_spaces):
            if isinstance(space, spaces.Discrete):
                actions.append(tensor(np.eye(space.n, dtype=np.float32)[d[f"action_{i}"][t, e]]))
                avail.append(tensor(d[f"avail_{i}"][t, e], torch.bool))
                next_avail.append(tensor(d[f"next_avail_{i}"][last, e], torch.bool))
            else:
                actions.append(tensor(d[f"action_{i}"][t, e]))
                avail.append(None)
                next_avail.append(None)
        n = self.spec.n_agents
        return Batch(
            state=tensor(d["state"][t, e]),
            obs=[tensor(d[f"obs_{i}"][t, e]) for i in range(n)],
            actions=actions,
            avail=avail,
            valid=tensor(d["alive"][t, e]),
            reward=column(reward),
            discount=column(discount),
            terminated=column(d["terminated"][last, e]),
            next_state=tensor(d["next_state"][last, e]),
            next_obs=[tensor(d[f"next_obs_{i}"][last, e]) for i in range(n)],
            next_avail=next_avail,
        )

    def n_step_window(self, t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For rows (t, e) [B]: the last row index of the n-step window [B], the n-step
        return R⁽ⁿ⁾ [B] and the bootstrap discount γᵏ [B]."""
        newest = (self.pos - 1) % self.T
        age = (newest - t) % self.T  # successors of t already written
        reward = np.zeros(t.shape, np.float64)
        going = np.ones(t.shape, bool)  # window still open before step j
        last = t.copy()
        k = np.zeros(t.shape, np.int64)
        for j in range(self.n_step):
            going &= j <= age
            row = (t + j) % self.T
            reward += np.where(going, self.gamma**j * self.data["reward"][row, e], 0.0)
            last = np.where(going, row, last)
            k += going
            going &= ~self.data["done"][row, e]
        return last, reward.astype(np.float32), (self.gamma**k).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """The written rows only, so a small run's checkpoint stays small."""
        return {"pos": self.pos, "filled": self.filled, "data": {k: v[: self.filled].copy() for k, v in self.data.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos, self.filled = state["pos"], state["filled"]
        for key, value in state["data"].items():
            self.data[key][: self.filled] = value
