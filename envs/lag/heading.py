"""`1-Heading`: one F-16 flown surface by surface toward random altitude/heading/speed
targets, the task for training a learned low-level controller with our own algorithms.
Our PID autopilot's score on it (`pid_heading_action`) is the bar such a controller has
to beat. Not a paper task; targets, ranges and reward widths are our choices."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from gymnasium import spaces

from envs.base import AgentView, EnvSpec, SingleEnv
from envs.lag import HEADING_TASK, RESULTS_NOTE, Config
from envs.lag import sim
from envs.lag.combat import EVENT, START, START_ALT, START_U
from envs.lag.sim import DT, SUBSTEPS

HEADING_HOLD = 150  # decisions (30 s) between new targets
TARGET_RANGES = (1000.0, math.radians(90.0), 30.0)  # ± altitude (m), heading, speed (m/s)
MIN_TARGET_ALT = 4000.0
REWARD_WIDTHS = (50.0, math.radians(10.0), 10.0)
THROTTLE_RANGE = sim.Autopilot.throttle_range  # what action[3] in [-1, 1] maps to: [0.4, 0.9]


class HeadingEnv(SingleEnv):
    """One F-16 flown toward random targets.

    Obs (12): Δalt/1 km, Δheading (rad), Δspeed/340 (target minus own), then the 9 ego
    features of the 2v2 tasks. Action: Box(-1, 1, (4,)) = aileron, elevator, rudder and
    throttle (mapped to [0.4, 0.9]), held for 12 FDM sub-steps. Reward per decision: the
    mean of exp(-(error/width)²) over the three targets, in [0, 1]; -200 and termination
    on a crash (the 2v2 crash rules). The random stream only draws targets."""

    def __init__(self, config: Config):
        self.config = config
        box = spaces.Box(-10.0, 10.0, (12,), np.float32)
        self.spec = EnvSpec(family="lag", task=HEADING_TASK, n_agents=1, obs_spaces=(box,), state_space=box,
                            action_spaces=(spaces.Box(-1.0, 1.0, (4,), np.float32),),
                            episode_limit=config.episode_limit, results_note=RESULTS_NOTE)
        self.rng = np.random.default_rng()
        self.ac: sim.Aircraft | None = None

    def reset(self, seed: int | None) -> AgentView:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.rng_at_reset = self.rng.bit_generator.state  # a fresh dict: safe to keep
        self.history: list[list[float]] = []
        self._start()
        return self._view()

    def _start(self) -> None:
        if self.ac is None:
            name, lat, lon, hdg = START[0]
            self.ac = sim.Aircraft(name, lat, lon, START_ALT, hdg, START_U)
        self.ac.reset()
        self.steps = 0
        self._new_target()

    def _new_target(self) -> None:
        ac, (d_alt, d_psi, d_v) = self.ac, TARGET_RANGES
        u = self.rng.uniform(-1.0, 1.0, 3)
        self.target = (max(ac.alt + d_alt * u[0], MIN_TARGET_ALT), sim.wrap(ac.psi + d_psi * u[1]), ac.vt + d_v * u[2])

    def errors(self) -> tuple[float, float, float]:
        """Target minus own: altitude (m), heading (rad, wrapped), true airspeed (m/s)."""
        ac, (alt, psi, v) = self.ac, self.target
        return alt - ac.alt, sim.wrap(psi - ac.psi), v - ac.vt

    def step(self, actions: Sequence[np.ndarray]):
        action = np.clip(np.asarray(actions[0], np.float64).reshape(4), -1.0, 1.0)
        self.history.append(action.tolist())
        return self._advance(action)

    def _advance(self, action: np.ndarray):
        ac = self.ac
        lo, hi = THROTTLE_RANGE
        ac.set_controls(action[0], action[1], action[2], lo + (hi - lo) / 2.0 * (action[3] + 1.0))
        ac.run(SUBSTEPS)
        ac.sense()
        self.steps += 1
        terminated = sim.crashed(ac)
        if terminated:
            reward = -EVENT
        else:
            reward = sum(math.exp(-((e / w) ** 2)) for e, w in zip(self.errors(), REWARD_WIDTHS)) / 3.0
        truncated = not terminated and self.steps >= self.config.episode_limit
        if not terminated and self.steps % HEADING_HOLD == 0:
            self._new_target()
        return self._view(), reward, terminated, truncated, {"crash": terminated} if terminated or truncated else {}

    def _view(self) -> AgentView:
        d_alt, d_psi, d_v = self.errors()
        obs = np.array([d_alt / 1000.0, d_psi, d_v / sim.MACH, *sim.ego_features(self.ac)], np.float32)
        np.clip(obs, -10.0, 10.0, out=obs)
        return AgentView(obs=[obs], state=obs)

    def get_state(self) -> dict:
        """The random stream as it was at the last reset plus the actions since (replayed)."""
        return {"rng_at_reset": self.rng_at_reset, "history": [list(a) for a in self.history]}

    def set_state(self, state: dict) -> None:
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng_at_reset"]
        self.rng_at_reset = self.rng.bit_generator.state
        self.history = [list(a) for a in state["history"]]
        self._start()
        for action in self.history:
            self._advance(np.asarray(action))


def pid_heading_action(env: HeadingEnv, autopilot: sim.Autopilot) -> np.ndarray:
    """Our PID autopilot's surfaces for `env`'s current target, as a 1-Heading action."""
    ail, elev, rud, thr = autopilot.commands(env.ac, *env.target, SUBSTEPS * DT)
    lo, hi = THROTTLE_RANGE
    return np.array([ail, elev, rud, (thr - lo) / ((hi - lo) / 2.0) - 1.0], np.float32)
