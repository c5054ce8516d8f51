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


class FakeDirectMARLEnv:
    """TEST DOUBLE of Isaac Lab's `DirectMARLEnv` API as `Isaac-Shadow-Hand-Over-Direct-v0`
    uses it (isaaclab/envs/direct_marl_env.py): dict-per-agent reset/step, `state()`,
    separate terminated and time-out dicts, the reset of ended sub-envs inside `step`
    through `_reset_idx` *before* the observations are computed, and Over's time-out at
    `episode_length_buf >= max_episode_length - 1`. Heterogeneous on purpose: the right
    hand sees RIGHT_OBS values and acts with RIGHT_ACT, the left LEFT_OBS / LEFT_ACT.

    Observations trace everything: [env id, agent sign (+1 right, -1 left), step in the
    episode, episode count, ...]; the state is both observations concatenated. The reward
    of a step is the sum of the right hand's actions plus 10 × the left's first action.
    `drop_at` = {env: step}: the ball falls at that step of the env's first episode
    (terminated for both agents); `one_agent_at` = {env: step}: only the right hand reports
    terminated (no reset: DirectMARLEnv resets when every agent is done)."""

    possible_agents = ["right_hand", "left_hand"]
    RIGHT_OBS, LEFT_OBS, RIGHT_ACT, LEFT_ACT = 6, 5, 3, 2

    def __init__(self, max_episode_length: int = 6, drop_at: dict | None = None, one_agent_at: dict | None = None):
        self.num_envs = E
        self.device = torch.device("cpu")
        self.max_episode_length = max_episode_length
        self.observation_spaces = {"right_hand": spaces.Box(-np.inf, np.inf, (self.RIGHT_OBS,)),
                                   "left_hand": spaces.Box(-np.inf, np.inf, (self.LEFT_OBS,))}
        self.action_spaces = {"right_hand": spaces.Box(-np.inf, np.inf, (self.RIGHT_ACT,)),
                              "left_hand": spaces.Box(-np.inf, np.inf, (self.LEFT_ACT,))}
        self.state_space = spaces.Box(-np.inf, np.inf, (self.RIGHT_OBS + self.LEFT_OBS,))
        self.drop_at, self.one_agent_at = dict(drop_at or {}), dict(one_agent_at or {})
        self.episode_length_buf = torch.zeros(E, dtype=torch.long)
        self.episodes = torch.zeros(E, dtype=torch.long)
        self.reset_seeds, self.reset_calls, self.last_actions, self.closed = [], [], None, False

    def _get_observations(self) -> dict:
        ids = torch.arange(E, dtype=torch.float32)
        base = torch.stack([ids, torch.zeros(E), self.episode_length_buf.float(), self.episodes.float()], 1)
        right = torch.cat([base, torch.full((E, self.RIGHT_OBS - 4), 7.0)], 1)
        left = torch.cat([base, torch.full((E, self.LEFT_OBS - 4), -7.0)], 1)
        right[:, 1], left[:, 1] = 1.0, -1.0
        return {"right_hand": right, "left_hand": left}

    def state(self):
        obs = self._get_observations()
        return torch.cat([obs["right_hand"], obs["left_hand"]], 1)

    def _reset_idx(self, env_ids):
        self.reset_calls.append(env_ids.tolist())
        self.episode_length_buf[env_ids] = 0
        self.episodes[env_ids] += 1

    def reset(self, seed=None, options=None):
        self.reset_seeds.append(seed)
        self._reset_idx(torch.arange(E))
        self.episodes[:] = 0
        return self._get_observations(), {}

    def step(self, actions: dict):
        self.last_actions = {a: t.clone() for a, t in actions.items()}
        self.episode_length_buf += 1
        first = self.episodes == 0
        t = self.episode_length_buf
        dropped = torch.tensor([bool(first[k]) and self.drop_at.get(k) == int(t[k]) for k in range(E)])
        right_only = torch.tensor([bool(first[k]) and self.one_agent_at.get(k) == int(t[k]) for k in range(E)])
        time_out = t >= self.max_episode_length - 1
        terminated = {"right_hand": dropped | right_only, "left_hand": dropped.clone()}
        time_outs = {a: time_out.clone() for a in self.possible_agents}
        reward = actions["right_hand"].sum(1) + 10 * actions["left_hand"][:, 0]
        rewards = {a: reward.clone() for a in self.possible_agents}
        reset = (terminated["right_hand"] & terminated["left_hand"]) | time_out
        ids = reset.nonzero(as_tuple=False).squeeze(-1)
        if len(ids):
            self._reset_idx(ids)
        return self._get_observations(), rewards, terminated, time_outs, {}

    def close(self):
        self.closed = True


def isaaclab_over_double():
    """The Isaac Lab adapter over FakeDirectMARLEnv (a picklable factory: it also runs in
    a worker process, as the harness's second simulation does)."""
    from envs.dexhands.isaaclab_backend import IsaacLabVecEnv

    return IsaacLabVecEnv(FakeDirectMARLEnv(max_episode_length=6, drop_at={1: 3}, one_agent_at={2: 2}), "Over", 5)
