"""Google Research Football (gfootball 2.10.2): the real C++ engine, academy scenarios.

The engine has no binary wheel: `bash scripts/install_football.sh` builds it once (about
10 min on 2 cores) and caches the wheel. Its Python side needs `six` and `gym==0.25.2`
(the old 4-tuple step API), the `football` extra.

Conventions of the official HARL wrapper (harl/envs/football/football_env.py), kept:
- `create_environment(representation="simple115v2", rewards="scoring,checkpoints",
  number_of_left_players_agent_controls=<the scenario's agent count>)`, headless;
- agent counts: pass_and_shoot and run_pass_and_shoot 2, 3_vs_1 3, counterattack 4,
  corner and single_goal_versus_lazy 11 (the whole team, keeper included);
- Discrete(19) per agent, every action always available;
- the team reward is agent 0's reward (the checkpoint reward is paid per player to the
  one holding the ball, so the agents' rewards can differ);
- the global state is built from the raw observation with the layout below.

Global state (float32, 104 + 11·N), from the raw observation of the N controlled players:

    [  0: 22]  left team positions (x, y) × 11      padded with -1 when fewer than 11
    [ 22: 44]  left team directions (dx, dy) × 11   padded with -1
    [ 44: 66]  right team positions × 11            padded with -1
    [ 66: 88]  right team directions × 11           padded with -1
    [ 88: 91]  ball position (x, y, z)
    [ 91: 94]  ball direction (dx, dy, dz)
    [ 94: 97]  ball owner one-hot (nobody, left, right)
    [ 97:104]  game mode one-hot (normal, kick-off, goal kick, free kick, corner, throw-in, penalty)
    [104 + 11k : 115 + 11k]  one-hot of the left-team player agent k controls (all 0 if none)

Episodes: the engine ends an episode on a goal, when the ball goes out of play, when
possession changes (not in academy_corner) and at the scenario's step limit (401 steps
for every academy scenario: game_duration 400, counted from -1). The last is a truncation (bootstrap), the others terminate;
a goal scored on the limit step counts as a termination. `env.episode_limit` can shorten
the limit (we truncate before the engine does). The episode statistic `score` is true when
the episode's scoring reward (the engine's `score_reward`, +1 per goal for, -1 against)
summed to more than 0: the official "score rate".

Seeding: a copy keeps its own numpy random stream; every reset draws the engine's
`game_engine_random_seed` from it (gfootball would draw from Python's global `random`), so
a seed fixes the sequence of episodes. The academy scenarios are non-deterministic
(`deterministic=False`): their randomness is that engine seed.

Snapshots: the engine's own `get_state`/`set_state` (ball, players, AI, the reward
wrappers' bookkeeping) plus our random stream and episode counters.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Sequence

import numpy as np
from gymnasium import spaces

from envs.base import AgentView, EnvSpec, FamilyConfig, SingleEnv
from envs.errors import ConfigError, EnvUnavailable

# scenario -> agents controlled (HARL's table); academy_empty_goal_close: a 1-agent sanity task
AGENTS = {
    "academy_3_vs_1_with_keeper": 3,
    "academy_counterattack_easy": 4,
    "academy_counterattack_hard": 4,
    "academy_pass_and_shoot_with_keeper": 2,
    "academy_run_pass_and_shoot_with_keeper": 2,
    "academy_corner": 11,
    "academy_single_goal_versus_lazy": 11,
    "academy_empty_goal_close": 1,
}
TASKS = tuple(AGENTS)
# Every scenario above has game_duration 400; the engine's clock starts at -1, so it ends an
# episode on the 401st step (steps_left is 401 after reset).
SCENARIO_STEPS = 401
N_ACTIONS = 19  # gfootball's default action set
OBS_DIM = 115  # simple115v2
REWARD_TERMS = ("scoring", "checkpoints")
INSTALL_HINT = "bash scripts/install_football.sh"

# Global state layout: (raw observation key, width), then the per-agent active one-hots.
PLAYERS = 11
STATE_BLOCKS = (
    ("left_team", 2 * PLAYERS), ("left_team_direction", 2 * PLAYERS),
    ("right_team", 2 * PLAYERS), ("right_team_direction", 2 * PLAYERS),
    ("ball", 3), ("ball_direction", 3), ("ball_owned_team", 3), ("game_mode", 7),
)
SHARED_STATE_DIM = sum(width for _, width in STATE_BLOCKS)  # 104


def state_dim(n_agents: int) -> int:
    """104 shared entries + one 11-wide active-player one-hot per agent (HARL: 115 + 11·(N-1))."""
    return SHARED_STATE_DIM + PLAYERS * n_agents


@dataclass
class Config(FamilyConfig):
    rewards: str = "scoring,checkpoints"
    """gfootball reward terms, comma-separated: 'scoring' or 'scoring,checkpoints' (official)."""
    episode_limit: int | None = None
    """Truncate after this many steps; None: the scenario's own limit (401)."""
    vectorization: str = "subproc"
    """'subproc' (default: the engine is a single-threaded C++ process per copy) or 'sync'."""


def _check_engine() -> None:
    """EnvUnavailable naming the fix when gfootball, its engine or its runtime pins are missing."""
    if importlib.util.find_spec("gfootball") is None or importlib.util.find_spec("gfootball_engine") is None:
        raise EnvUnavailable(
            f"env=football needs Google Research Football (gfootball 2.10.2, a C++ engine built from source): "
            f"run `{INSTALL_HINT}` in this Python environment"
        )
    try:
        gym_version = importlib.metadata.version("gym")
    except importlib.metadata.PackageNotFoundError:
        gym_version = None
    if importlib.util.find_spec("six") is None or gym_version is None or _version_tuple(gym_version) >= (0, 26):
        raise EnvUnavailable(
            "env=football needs gfootball's runtime pins six and gym<0.26 (found gym "
            f"{gym_version or 'none'}): pip install 'hasac-bench[football]' or run `{INSTALL_HINT}`"
        )


def _import_gfootball():
    """`gfootball.env`, without the three-line "gym is unmaintained" notice that importing
    gym 0.25 prints to stderr (in every worker process)."""
    with contextlib.redirect_stderr(io.StringIO()):
        import gfootball.env
    return gfootball.env


def create_engine(task: str, rewards: str = "scoring,checkpoints"):
    """gfootball's own env for `task` as the official configs make it: simple115v2, the
    scenario's agents, headless, no dumps (old gym API: obs [N, 115], reward [N], done, info)."""
    gfootball_env = _import_gfootball()
    with warnings.catch_warnings():  # gym 0.25's notice that the old step API is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        return gfootball_env.create_environment(
            env_name=task,
            representation="simple115v2",
            rewards=rewards,
            number_of_left_players_agent_controls=AGENTS[task],
            render=False,
            write_goal_dumps=False,
            write_full_episode_dumps=False,
        )


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def global_state(raw: Sequence[dict]) -> np.ndarray:
    """The global state (layout in the module docstring) from the raw observation list,
    one dict per controlled player; the shared blocks come from the first."""
    first = raw[0]
    out = np.zeros(state_dim(len(raw)), np.float32)
    at = 0
    for key, width in STATE_BLOCKS:
        if key == "ball_owned_team":  # -1 nobody, 0 left, 1 right
            out[at + int(first[key]) + 1] = 1.0
        elif key == "game_mode":
            out[at + int(first[key])] = 1.0
        else:
            values = np.asarray(first[key], np.float32).ravel()
            out[at : at + values.size] = values
            out[at + values.size : at + width] = -1.0  # fewer than 11 players
        at += width
    for player in raw:
        if player["active"] != -1:
            out[at + int(player["active"])] = 1.0
        at += PLAYERS
    return out


class FootballEnv(SingleEnv):
    """One gfootball engine controlling the scenario's left-team agents."""

    def __init__(self, task: str, config: Config):
        self.n_agents = AGENTS[task]
        self.limit = SCENARIO_STEPS if config.episode_limit is None else int(config.episode_limit)
        self._env = create_engine(task, config.rewards)
        self._engine_config = self._env.unwrapped._config  # read by the engine on each reset
        obs_space = spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        self.spec = EnvSpec(
            family="football",
            task=task,
            n_agents=self.n_agents,
            obs_spaces=(obs_space,) * self.n_agents,
            state_space=spaces.Box(-np.inf, np.inf, (state_dim(self.n_agents),), np.float32),
            action_spaces=(spaces.Discrete(N_ACTIONS),) * self.n_agents,
            episode_limit=self.limit,
            success_metric="score",
        )
        self._rng = np.random.default_rng()
        self._steps = 0
        self._goals = 0  # summed score_reward of the running episode

    def reset(self, seed: int | None) -> AgentView:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        engine_seed = int(self._rng.integers(2_000_000_000))
        # What a fresh env would pick from this seed (gfootball fixes team order once, at its first episode).
        self._engine_config["game_engine_random_seed"] = engine_seed
        self._engine_config["reverse_team_processing"] = bool(engine_seed % 2)
        obs = self._env.reset()
        self._steps, self._goals = 0, 0
        return self._view(obs)

    def step(self, actions: Sequence[np.ndarray]):
        joint = []
        for a in actions:
            index = int(np.asarray(a).reshape(-1)[0])
            if not 0 <= index < N_ACTIONS:
                raise ValueError(f"action {index} outside Discrete({N_ACTIONS})")
            joint.append(index)
        obs, rewards, done, info = self._env.step(joint)
        self._steps += 1
        goal = int(info["score_reward"])
        self._goals += goal
        steps_left = self._env.unwrapped.observation()[0]["steps_left"]
        terminated = bool(done) and (steps_left > 0 or goal != 0)  # a rule ended it, not the clock
        truncated = not terminated and (bool(done) or self._steps >= self.limit)
        episode = {"score": self._goals > 0} if terminated or truncated else {}
        return self._view(obs), float(np.ravel(rewards)[0]), terminated, truncated, episode

    def _view(self, obs: np.ndarray) -> AgentView:
        per_agent = np.asarray(obs, np.float32).reshape(self.n_agents, OBS_DIM)
        return AgentView(obs=list(per_agent), state=global_state(self._env.unwrapped.observation()))

    def get_state(self) -> dict[str, Any]:
        """The engine's snapshot (bytes), our random stream and episode counters."""
        return {"engine": self._env.get_state(), "rng": self._rng.bit_generator.state,
                "steps": self._steps, "goals": self._goals}

    def set_state(self, state: dict[str, Any]) -> None:
        self._env.set_state(state["engine"])
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        self._steps, self._goals = state["steps"], state["goals"]

    def close(self) -> None:
        self._env.close()


def env_factory(task: str, config: Config):
    """Validate the task, the config and the engine now; build copies later."""
    if task not in AGENTS:
        raise ConfigError(f"unknown football task {task!r}; valid tasks: {', '.join(TASKS)}")
    terms = config.rewards.split(",") if isinstance(config.rewards, str) else []
    if not terms or "scoring" not in terms or not set(terms) <= set(REWARD_TERMS) or len(set(terms)) != len(terms):
        raise ConfigError(f"env.rewards must be 'scoring' or 'scoring,checkpoints', got {config.rewards!r}")
    if config.episode_limit is not None and not 1 <= int(config.episode_limit) <= SCENARIO_STEPS:
        raise ConfigError(f"env.episode_limit must be in 1..{SCENARIO_STEPS} (the scenario's limit), "
                          f"got {config.episode_limit}")
    _check_engine()
    return partial(FootballEnv, task, config)
