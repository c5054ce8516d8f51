"""TEST DOUBLES of the Isaac simulators' Python APIs, for the dexhands adapters' tests
(tests/test_dexhands.py, tests/test_batched_env.py). They live in tests/ only: never a
family, never the simulator, never selectable from the command line."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

E, HAND, SHARED, ACT = 3, 4, 2, 5  # envs, per-hand obs block, shared object block, actions per hand


class FakeTask:
    """TEST DOUBLE of a Bi-DexHands task's buffers: reset_buf/progress_buf/obs_buf/rew_buf,
    lazy reset in the next step's pre-physics phase, time limit at max_episode_length."""

    def __init__(self, max_episode_length: int, fail_at: dict[int, int]):
        self.max_episode_length = max_episode_length
        self.fail_at = dict(fail_at)  # env -> step count at which it "drops the object", once
        self.reset_buf = torch.ones(E, dtype=torch.long)
        self.progress_buf = torch.zeros(E, dtype=torch.long)
        self.obs_buf = torch.zeros(E, 2 * HAND + SHARED)
        self.rew_buf = torch.zeros(E)
        self.last_actions = None

    def step(self, actions: torch.Tensor) -> None:
        self.last_actions = actions.clone()
        flagged = self.reset_buf.bool()
        self.progress_buf[flagged] = 0
        self.progress_buf += 1
        env_ids = torch.arange(E, dtype=torch.float32)[:, None]
        # hand 0 block = env id, hand 1 block = -env id, shared block = progress: easy to trace
        self.obs_buf[:, :HAND] = env_ids
        self.obs_buf[:, HAND:2 * HAND] = -env_ids
        self.obs_buf[:, 2 * HAND:] = self.progress_buf[:, None].float()
        self.rew_buf = actions.sum(1)
        failed = torch.tensor([self.fail_at.get(k) == int(self.progress_buf[k]) for k in range(E)])
        for k in np.flatnonzero(failed.numpy()):
            del self.fail_at[int(k)]  # fails once
        timeout = self.progress_buf >= self.max_episode_length
        self.reset_buf = (failed | timeout).long()


class FakeMultiVecTask:
    """TEST DOUBLE of bidexhands.tasks.hand_base.multi_vec_task.MultiVecTaskPython's API:
    step(list of N [E, A] tensors) -> (obs [E,N,D], state [E,N,S], reward [E,N,1], done [E,N],
    info, None); reset() -> (obs, state, None). Agent i sees its hand block + shared block."""

    num_agents = 2

    def __init__(self, max_episode_length: int = 4, fail_at: dict[int, int] | None = None):
        self.task = FakeTask(max_episode_length, fail_at or {})
        self.num_envs = E
        self.observation_space = [spaces.Box(-np.inf, np.inf, (HAND + SHARED,))] * 2
        self.share_observation_space = [spaces.Box(-np.inf, np.inf, (2 * HAND + SHARED,))] * 2
        self.action_space = (spaces.Box(-1, 1, (ACT,)), spaces.Box(-1, 1, (ACT,)))
        self.closed = False

    def _outputs(self):
        buf = self.task.obs_buf.clamp(-5, 5)
        hands = [torch.cat([buf[:, :HAND], buf[:, 2 * HAND:]], 1), torch.cat([buf[:, HAND:2 * HAND], buf[:, 2 * HAND:]], 1)]
        return torch.stack(hands, 1), torch.stack([buf, buf], 1)

    def step(self, actions):
        self.task.step(torch.hstack(list(actions)))
        obs, state = self._outputs()
        reward = torch.stack([self.task.rew_buf] * 2, 1)[..., None]
        done = torch.stack([self.task.reset_buf] * 2, 1)
        return obs, state, reward, done, torch.zeros(0), None

    def reset(self):
        self.task.step(torch.zeros(E, 2 * ACT))
        obs, state = self._outputs()
        return obs, state, None

    def close(self):
        self.closed = True
