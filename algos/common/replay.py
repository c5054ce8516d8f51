"""Replay buffer with n-step returns for the off-policy HA algorithms.

Storage is a ring over vectorised steps, `[T, E, W]` (T = ceil(capacity / E)), so the
successor of transition (t, e) is (t + 1, e): the same layout as HARL's interleaved
threads (off_policy_buffer_base.py). n-step returns are formed at sampling time
(HARL `next_n`): follow up to n successors, stopping after an episode end (terminated
or truncated) or at the newest transition of that copy.

    R⁽ⁿ⁾ = Σ_{j<k} γʲ r_{t+j},   discount = γᵏ,   next view and `terminated` from t+k−1,

with k ≤ n the number of steps actually taken. Truncation stops the sum but bootstraps
(terminated stays False), termination does not.

With one state per agent (EnvSpec.agent_states, HARL's FP state) a transition is N critic
rows, agent-major in the batch (row k·B + b is agent k's, HARL off_policy_buffer_fp.py):
agent k's window also stops at its death, which ends its row like a termination
(off_policy_base_runner.py [06d697f] `insert`, its FP branch: an agent's `done` is its
death or the episode's end, its `term` that done unless the episode timed out), and its
next view comes from its own window end, the next observations of each agent included.

Why one float32 table on the update device: every field of a transition is a column slice
of one preallocated `[T, E, W]` tensor (`Layout`), so `add` is one host→device copy per
env step, and `sample` is two row gathers (the start rows and the window-end rows) plus
one `[B, n]` gather for the n-step window, with no Python loop over fields or steps and
no transfer back to the host. Flags, availability masks and Discrete action indices are
stored as exact 0/1 or small-integer floats. The buffer also builds the critic's input:
Box actions raw, Discrete actions one-hot.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces

from envs.base import EnvSpec, Step


class Batch(NamedTuple):
    """A sampled minibatch as tensors. B batch, N agents; R critic rows: B, or N·B
    (agent-major) with per-agent states."""

    state: torch.Tensor  # [R, S] (S: one agent's state with per-agent states)
    obs: list[torch.Tensor]  # N × [B, O_i]
    actions: list[torch.Tensor]  # N × [B, A_i] critic encoding (Box raw, Discrete one-hot)
    avail: list[torch.Tensor | None]  # N × [B, n_i] bool, None for Box
    valid: torch.Tensor  # [B, N] float: agent alive at the start of the transition
    reward: torch.Tensor  # [R, 1] n-step return R⁽ⁿ⁾
    discount: torch.Tensor  # [R, 1] γᵏ
    terminated: torch.Tensor  # [R, 1] float: 1 = no bootstrap
    next_state: torch.Tensor  # [R, S]
    next_obs: list[torch.Tensor]  # N × [B, O_i] (agent i's at its own window end)
    next_avail: list[torch.Tensor | None]  # N × [B, n_i] bool, None for Box


class Layout:
    """Column slices of the transition table: field name → slice of the W columns."""

    def __init__(self, spec: EnvSpec):
        widths = {"state": spec.state_space.shape[0], "next_state": spec.state_space.shape[0],
                  "alive": spec.n_agents, "reward": 1, "terminated": 1, "done": 1}
        if spec.agent_states:  # each agent's own end of its row: done (death or episode end), term
            widths |= {"agent_done": spec.n_agents, "agent_term": spec.n_agents}
        for i, (obs_space, act_space) in enumerate(zip(spec.obs_spaces, spec.action_spaces)):
            widths[f"obs_{i}"] = widths[f"next_obs_{i}"] = obs_space.shape[0]
            if isinstance(act_space, spaces.Discrete):
                widths[f"action_{i}"] = 1  # the index; one-hot at sampling time
                widths[f"avail_{i}"] = widths[f"next_avail_{i}"] = int(act_space.n)
            else:
                widths[f"action_{i}"] = int(np.prod(act_space.shape))
        self.columns: dict[str, slice] = {}
        start = 0
        for name, width in widths.items():
            self.columns[name] = slice(start, start + width)
            start += width
        self.width = start

    def bytes_per_transition(self) -> int:
        return 4 * self.width


class ReplayBuffer:
    """Ring buffer of `capacity` transitions from `n_envs` lock-step copies, preallocated
    as one float32 table on `device` (where the updates run)."""

    def __init__(self, spec: EnvSpec, capacity: int, n_envs: int, gamma: float, n_step: int,
                 device: torch.device | str = "cpu", next_avail_after_reset: bool = True):
        self.spec, self.n_envs, self.gamma, self.n_step = spec, n_envs, gamma, n_step
        # next Discrete masks at an episode end: the reset episode's (HARL) or the ended one's
        self.next_avail_after_reset = next_avail_after_reset
        self.device = torch.device(device)
        self.T = -(-capacity // n_envs)
        self.pos = 0  # next row to write
        self.filled = 0  # rows written, at most T
        self.layout = Layout(spec)
        self.table = torch.zeros((self.T, n_envs, self.layout.width), dtype=torch.float32, device=self.device)
        self.discount_powers = torch.tensor([gamma**j for j in range(n_step + 1)], dtype=torch.float64, device=self.device)
        self.row = np.zeros((n_envs, self.layout.width), np.float32)  # host staging of one add()

    def __len__(self) -> int:
        return self.filled * self.n_envs

    def add(self, step: Step, actions: list[np.ndarray], nxt: Step) -> None:
        """Store the E transitions step --actions--> nxt; the next view is nxt.info['final_*']
        (the next masks: nxt.avail_actions or nxt.info['final_avail_actions'], see __init__)."""
        row = {
            "state": step.state,
            "next_state": nxt.info["final_state"],
            "alive": step.alive,
            "reward": nxt.reward,
            "terminated": nxt.terminated,
            "done": nxt.terminated | nxt.truncated,
        }
        if self.spec.agent_states:  # an agent dead after the step ends its row, a time-out excepted
            row["agent_done"] = row["done"][:, None] | ~nxt.alive
            row["agent_term"] = row["agent_done"] & ~nxt.truncated[:, None]
        final_avail = nxt.avail_actions if self.next_avail_after_reset else nxt.info.get("final_avail_actions")
        for i, space in enumerate(self.spec.action_spaces):
            row[f"obs_{i}"] = step.obs[i]
            row[f"next_obs_{i}"] = nxt.info["final_obs"][i]
            row[f"action_{i}"] = actions[i]
            if isinstance(space, spaces.Discrete):
                row[f"avail_{i}"] = True if step.avail_actions is None else step.avail_actions[i]
                row[f"next_avail_{i}"] = True if final_avail is None else final_avail[i]
        for key, value in row.items():
            value = np.asarray(value)
            self.row[:, self.layout.columns[key]] = value[:, None] if value.ndim == 1 else value
        self.table[self.pos].copy_(torch.from_numpy(self.row))
        self.pos = (self.pos + 1) % self.T
        self.filled = min(self.filled + 1, self.T)

    def sample(self, batch_size: int, rng: np.random.Generator, device: torch.device | None = None) -> Batch:
        """`batch_size` transitions drawn uniformly without replacement, with n-step returns.
        The batch is built on the buffer's device and moved to `device` only if that differs."""
        if device is not None and torch.device(device) != self.device:
            return Batch(*(move(field, torch.device(device)) for field in self.sample(batch_size, rng)))
        return self.batch_at(torch.as_tensor(self.draw(batch_size, rng), device=self.device))

    def draw(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """The flat indices t·E + e of `batch_size` stored transitions, uniformly without
        replacement (what `sample` draws from `rng`)."""
        return rng.choice(len(self), size=batch_size, replace=False)

    def batch_at(self, flat: torch.Tensor) -> Batch:
        """The minibatch of the transitions at flat indices `flat` [B] (on the buffer's device),
        with n-step returns; packed seeds move every seed's indices to the device at once."""
        if self.spec.agent_states:
            return self.agent_rows_at(flat)
        t, e = flat // self.n_envs, flat % self.n_envs
        last, reward, discount = self.n_step_window(t, e)
        rows = self.table.view(-1, self.layout.width)
        start, end = rows.index_select(0, flat), rows.index_select(0, last * self.n_envs + e)  # [B, W] each
        return self.assemble(start, [end] * self.spec.n_agents, start[:, self.layout.columns["state"]],
                             end[:, self.layout.columns["next_state"]], reward.unsqueeze(-1), discount.unsqueeze(-1),
                             end[:, self.layout.columns["terminated"]])

    def agent_rows_at(self, flat: torch.Tensor) -> Batch:
        """`batch_at` with one state per agent: N critic rows per transition, agent-major,
        agent k's n-step window ended by its own `agent_done` (HARL off_policy_buffer_fp.py
        sample: per-agent indices, end flags, rewards and γᵏ)."""
        t, e = flat // self.n_envs, flat % self.n_envs
        rows, col, N = self.table.view(-1, self.layout.width), self.layout.columns, self.spec.n_agents
        start = rows.index_select(0, flat)
        ends, rewards, discounts = [], [], []
        for k in range(N):
            last, reward, discount = self.n_step_window(t, e, col["agent_done"].start + k)
            ends.append(rows.index_select(0, last * self.n_envs + e))
            rewards.append(reward)
            discounts.append(discount)
        d = self.spec.state_space.shape[0] // N
        state = start[:, col["state"]].view(-1, N, d).transpose(0, 1).reshape(-1, d)
        next_state = torch.cat([end[:, col["next_state"]][:, k * d:(k + 1) * d] for k, end in enumerate(ends)])
        terminated = torch.cat([end[:, col["agent_term"].start + k:col["agent_term"].start + k + 1] for k, end in enumerate(ends)])
        return self.assemble(start, ends, state, next_state, torch.cat(rewards).unsqueeze(-1),
                             torch.cat(discounts).unsqueeze(-1), terminated)

    def assemble(self, start: torch.Tensor, ends: list[torch.Tensor], state: torch.Tensor, next_state: torch.Tensor,
                 reward: torch.Tensor, discount: torch.Tensor, terminated: torch.Tensor) -> Batch:
        """The Batch of the start rows [B, W] and each agent's window-end rows N × [B, W]
        (agent i's next observation and masks are read from ends[i]) and the critic rows."""
        col = self.layout.columns
        actions, avail, next_avail = [], [], []
        for i, space in enumerate(self.spec.action_spaces):
            if isinstance(space, spaces.Discrete):
                actions.append(F.one_hot(start[:, col[f"action_{i}"]].squeeze(-1).long(), int(space.n)).float())
                avail.append(start[:, col[f"avail_{i}"]].bool())
                next_avail.append(ends[i][:, col[f"next_avail_{i}"]].bool())
            else:
                actions.append(start[:, col[f"action_{i}"]])
                avail.append(None)
                next_avail.append(None)
        n = self.spec.n_agents
        return Batch(
            state=state,
            obs=[start[:, col[f"obs_{i}"]] for i in range(n)],
            actions=actions,
            avail=avail,
            valid=start[:, col["alive"]],
            reward=reward,
            discount=discount,
            terminated=terminated,
            next_state=next_state,
            next_obs=[ends[i][:, col[f"next_obs_{i}"]] for i in range(n)],
            next_avail=next_avail,
        )

    def n_step_window(self, t: torch.Tensor | np.ndarray, e: torch.Tensor | np.ndarray,
                      done_column: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For rows (t, e) [B]: the last row index of the n-step window [B], the n-step
        return R⁽ⁿ⁾ [B] and the bootstrap discount γᵏ [B], all on the buffer's device.

        Step j of the window is open when j ≤ age (successors of t already written) and no
        episode ended at steps < j (by the table's column `done_column`, default the
        episode's `done`); k = number of open steps ≥ 1."""
        t, e = (torch.as_tensor(x, device=self.device).long() for x in (t, e))
        j = torch.arange(self.n_step, device=self.device)
        newest = (self.pos - 1) % self.T
        age = (newest - t) % self.T
        window = ((t.unsqueeze(-1) + j) % self.T) * self.n_envs + e.unsqueeze(-1)  # flat rows [B, n]
        table, col = self.table.view(-1, self.layout.width), self.layout.columns
        done_column = col["done"].start if done_column is None else done_column
        reward, done = table[window, col["reward"].start], table[window, done_column]  # one column each: cheap gathers
        ended_before = (done.cumsum(-1) - done) > 0
        open_ = (j <= age.unsqueeze(-1)) & ~ended_before
        k = open_.sum(-1)
        n_step_return = (open_ * self.discount_powers[:-1] * reward.double()).sum(-1)
        return (t + k - 1) % self.T, n_step_return.float(), self.discount_powers[k].float()

    def state_dict(self) -> dict[str, Any]:
        """The written rows only (on the CPU), so a small run's checkpoint stays small."""
        return {"pos": self.pos, "filled": self.filled, "columns": dict(self.layout.columns),
                "table": self.table[: self.filled].cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("columns") != self.layout.columns:
            raise ValueError("replay layout differs from this task's (checkpoint of another task or version)")
        self.pos, self.filled = state["pos"], state["filled"]
        self.table[: self.filled] = state["table"].to(self.device)


def move(field: torch.Tensor | list | None, device: torch.device):
    """A Batch field (tensor, per-agent list, or None) on `device`."""
    if isinstance(field, list):
        return [move(x, device) for x in field]
    return None if field is None else field.to(device)
