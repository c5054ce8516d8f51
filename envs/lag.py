"""Light Aircraft Game: 2v2 F-16 air combat over PyPI JSBSim, a clean reimplementation.

A reimplementation of the task description in ../shared/reference/hard_families.md §3, not
the original (GPL) LAG/HARL code, so returns are NOT comparable with the paper's numbers.
Physics, autopilot, missile and reward terms live in envs/lag_sim.py.

Tasks (Red = our 2 learned agents, Blue = the built-in opponent):
- `2v2-NoWeapon-vsBaseline`: Blue pursues (matches its first enemy's altitude and speed and
  turns toward it). Obs 27 per agent, state 108.
- `2v2-ShootMissile-vsBaseline`: 2 missiles per aircraft; Blue flies a scripted evasive
  schedule once a missile is inbound and fires whenever the launch constraints allow.
  Obs 33 per agent, state 132.
- `1-Heading`: one F-16, Box(4) surfaces (aileron, elevator, rudder, throttle), rewarded
  for reaching random altitude/heading/speed targets: the task for training a learned
  low-level controller with our own algorithms (`HeadingEnv`); the PID's own score on it
  is the bar such a controller has to beat (`pid_heading_action`).

Deviations from the original, on purpose:
- Actions. The original is hierarchical MultiDiscrete [3, 5, 3] (Δaltitude, Δheading,
  Δspeed; ShootMissile adds fire [2]). Our algorithms take Discrete or Box per agent, so the
  product is flattened into one Discrete(45) (Discrete(90) with fire), in row-major order
  of (Δalt, Δheading, Δspeed[, fire]) — the same joint choices, one categorical over them.
- Low-level control. The original feeds the targets to a pretrained GRU (GPL weights);
  we fly them with our own PID autopilot (lag_sim.Autopilot), so the dynamics differ.
- Terms the spec leaves open (orientation/range functions, missile thrust, the evasive
  schedule, the missile-posture formula) are our choices, documented in lag_sim.py.
- Dead aircraft stop being simulated; other aircraft see zeros in their feature block.
- Initial conditions are fixed (as in the original); the seed changes nothing physical.

Snapshots: JSBSim has no cheap exact copy of its whole state (FCS filters, engine),
so `get_state` stores the actions taken since the last reset and `set_state` replays them
on fresh aircraft; JSBSim is deterministic, so this is bit-identical (test_lag.py checks).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import numpy as np
from gymnasium import spaces

from envs.base import AgentView, EnvSpec, FamilyConfig, SingleEnv
from envs.errors import ConfigError, EnvUnavailable

TASKS = ("2v2-NoWeapon-vsBaseline", "2v2-ShootMissile-vsBaseline", "1-Heading")
WEAPONS = {"2v2-NoWeapon-vsBaseline": False, "2v2-ShootMissile-vsBaseline": True}
HEADING_TASK = "1-Heading"

SUBSTEPS = 12  # 60 Hz FDM, one agent decision every 0.2 s
DT = 1.0 / 60.0
D_ALT = (100.0, 0.0, -100.0)  # m (±0.1 × 1 km)
D_HEADING = tuple(math.radians(d) for d in (-30.0, -15.0, 0.0, 15.0, 30.0))
D_SPEED = (17.0, 0.0, -17.0)  # m/s (±0.05 × 340)
N_MOVES = len(D_ALT) * len(D_HEADING) * len(D_SPEED)  # 45
# name, lat, lon, heading (deg); all start at 20,000 ft with body u = 800 ft/s
START = (("A0100", 60.0, 120.0, 0.0), ("A0200", 60.0, 120.01, 0.0),
         ("B0100", 60.1, 120.0, 180.0), ("B0200", 60.1, 120.01, 180.0))
START_ALT, START_U = 20000 * 0.3048, 800 * 0.3048
EGO, PER_OTHER = 9, 6

# Rewards and termination (spec values)
POSTURE_SCALE, MISSILE_POSTURE_SCALE, EVENT = 15.0, 30.0, 200.0
CRASH_ALT, OVERLOAD_G, OVERLOAD_AFTER = 2500.0, 10.0, 10.0
MISSILES_PER_AIRCRAFT, LAUNCH_ANGLE, LAUNCH_RANGE, LAUNCH_INTERVAL = 2, math.radians(45.0), 14000.0, 125
# Blue's evasive schedule (ShootMissile): heading offsets from the heading at detection,
# each held for EVADE_HOLD seconds (our choice: the spec only says "scripted schedule").
EVADE_OFFSETS, EVADE_HOLD = tuple(math.radians(d) for d in (90.0, 180.0, 270.0, 180.0)), 8.0
CRUISE_ALT, CRUISE_SPEED = 6096.0, 243.0


@dataclass
class Config(FamilyConfig):
    episode_limit: int = 1000
    """Agent steps (0.2 s each) before truncation (spec: 1,000 = 200 s)."""
    autopilot_every: int = 12
    """FDM sub-steps between autopilot updates (12 = once per decision, like the original's
    low-level policy; smaller = a faster control loop, slower env)."""


def _check_jsbsim() -> None:
    if importlib.util.find_spec("jsbsim") is None:
        raise EnvUnavailable("env=lag needs the JSBSim flight model: pip install 'hasac-bench[lag]' (jsbsim==1.3.3)")


def decode(action: int, fire: bool) -> tuple[int, int, int, int]:
    """Flat Discrete index -> (Δalt, Δheading, Δspeed, fire) indices, row-major."""
    n = N_MOVES * (2 if fire else 1)
    if not 0 <= action < n:
        raise ValueError(f"action {action} outside Discrete({n})")
    f = 0
    if fire:
        action, f = divmod(action, 2)
    rest, s = divmod(action, len(D_SPEED))
    a, h = divmod(rest, len(D_HEADING))
    return a, h, s, f


class LagEnv(SingleEnv):
    """One 2v2 engagement: 4 JSBSim F-16s, Red agents 0 and 1, Blue scripted."""

    def __init__(self, task: str, config: Config):
        from envs import lag_sim

        self._sim = lag_sim
        self.task, self.config = task, config
        self.weapons = WEAPONS[task]
        self.obs_dim = EGO + 3 * PER_OTHER + (PER_OTHER if self.weapons else 0)
        obs_space = spaces.Box(-10.0, 10.0, (self.obs_dim,), np.float32)
        state_space = spaces.Box(-10.0, 10.0, (4 * self.obs_dim,), np.float32)
        act = spaces.Discrete(N_MOVES * (2 if self.weapons else 1))
        self.spec = EnvSpec(family="lag", task=task, n_agents=2, obs_spaces=(obs_space, obs_space),
                            state_space=state_space, action_spaces=(act, act),
                            episode_limit=config.episode_limit, success_metric="win_rate")
        self.autopilot = lag_sim.Autopilot()
        self.missile_model = lag_sim.MissileModel()
        self.aircraft: list = []

    # -- episode ------------------------------------------------------------------------
    def reset(self, seed: int | None) -> AgentView:
        sim = self._sim
        self.aircraft = [sim.Aircraft(n, lat, lon, START_ALT, hdg, START_U) for n, lat, lon, hdg in START]
        for ac in self.aircraft:
            ac.missiles_left = MISSILES_PER_AIRCRAFT if self.weapons else 0
        self.autopilot.reset()
        self.missiles: list = []
        self.steps = 0
        self.history: list[tuple[int, int]] = []
        self.evade_start: dict[int, tuple[float, float]] = {}
        self.stats = {"missiles_fired": 0, "missiles_hit": 0, "crash": 0}
        self.potential = [self._potential(i) for i in range(2)]  # Red only
        return self._view()

    def step(self, actions: Sequence[np.ndarray]):
        acts = tuple(int(np.asarray(a).reshape(-1)[0]) for a in actions)
        self.history.append(acts)
        reward, terminated, truncated, info = self._advance(acts)
        return self._view(), reward, terminated, truncated, info

    def _advance(self, acts: tuple[int, ...]):
        acs = self.aircraft
        self.steps += 1
        was_alive = [ac.alive for ac in acs]
        targets, fire = [], []
        for i in range(2):
            a, h, s, f = decode(acts[i], self.weapons)
            ac = acs[i]
            targets.append((ac.alt + D_ALT[a], ac.psi + D_HEADING[h], ac.vt + D_SPEED[s]))
            fire.append(bool(f))
        for i in (2, 3):
            targets.append(self._blue_targets(i))
            fire.append(self.weapons)  # spec quirk: the baseline fires whenever it can
        for i, ac in enumerate(acs):
            if ac.alive and fire[i]:
                self._try_launch(i)
        missile_speed = {id(m): m.speed for m in self.missiles}
        every = self.config.autopilot_every
        for k in range(SUBSTEPS):
            chased = {id(m.target) for m in self.missiles if m.alive}
            for i, ac in enumerate(acs):
                if not ac.alive:
                    continue
                if k % every == 0:
                    self.autopilot.control(ac, *targets[i], every * DT)
                ac.run()
                if k == SUBSTEPS - 1 or (k + 1) % every == 0:
                    ac.sense()
                elif id(ac) in chased:
                    ac.track()
            for m in self.missiles:
                m.step(DT)
        for m in self.missiles:  # resolve hits once per decision
            if m.state == "hit" and not m.counted:
                m.counted = True
                if not m.target.alive:  # two hits in one decision: only the first counts
                    continue
                m.target.alive, m.target.shot_down = False, True
                m.shooter.kills += 1
                if acs.index(m.shooter) < 2:
                    self.stats["missiles_hit"] += 1
        for i, ac in enumerate(acs):
            if ac.alive and self._crashed(ac):
                ac.alive, ac.crashed = False, True
                self.stats["crash"] += i < 2
        rewards = [self._reward(i, was_alive[i], missile_speed) for i in range(2)]
        for ac in acs:
            ac.kills = 0
        reward = float(np.mean(rewards))
        red_dead = not (acs[0].alive or acs[1].alive)
        blue_dead = not (acs[2].alive or acs[3].alive)
        inbound_red = any(m.alive and acs.index(m.target) < 2 for m in self.missiles)
        terminated = red_dead or (blue_dead and not inbound_red)
        truncated = not terminated and self.steps >= self.config.episode_limit
        info = {}
        if terminated or truncated:
            info = {"win": bool(blue_dead and not red_dead), "loss": bool(red_dead),
                    "timeout": bool(truncated), **self.stats}
        return reward, terminated, truncated, info

    # -- opponent, weapons, termination ------------------------------------------------
    def _blue_targets(self, i: int) -> tuple[float, float, float]:
        ac = self.aircraft[i]
        enemies = [e for e in self.aircraft[:2] if e.alive]
        if not ac.alive or not enemies:
            return ac.alt, ac.psi, ac.vt
        if not self.weapons:  # pursue the first living enemy
            e = enemies[0]
            return e.alt, math.atan2(e.pos[1] - ac.pos[1], e.pos[0] - ac.pos[0]), e.vt
        if any(m.alive and m.target is ac for m in self.missiles):
            self.evade_start.setdefault(i, (ac.time, ac.psi))
        if i in self.evade_start:
            t0, psi0 = self.evade_start[i]
            k = int((ac.time - t0) // EVADE_HOLD) % len(EVADE_OFFSETS)
            return CRUISE_ALT, psi0 + EVADE_OFFSETS[k], CRUISE_SPEED
        e = min(enemies, key=lambda e: math.dist(e.pos, ac.pos))
        return CRUISE_ALT, math.atan2(e.pos[1] - ac.pos[1], e.pos[0] - ac.pos[0]), CRUISE_SPEED

    def _enemies(self, i: int) -> list:
        return self.aircraft[2:] if i < 2 else self.aircraft[:2]

    def _try_launch(self, i: int) -> bool:
        """Launch at the nearest living enemy if within 45° of the nose and 14 km, with a
        missile left and 125 decisions since the last launch."""
        ac = self.aircraft[i]
        enemies = [e for e in self._enemies(i) if e.alive]
        if not enemies or ac.missiles_left <= 0 or self.steps - ac.last_launch_step < LAUNCH_INTERVAL:
            return False
        e = min(enemies, key=lambda e: math.dist(e.pos, ac.pos))
        ao, _, rng, _ = self._sim.geometry(ac.pos, ac.vel, e.pos, e.vel)
        if ao > LAUNCH_ANGLE or rng > LAUNCH_RANGE:
            return False
        self.missiles.append(self._sim.Missile(ac, e, self.missile_model))
        ac.missiles_left -= 1
        ac.last_launch_step = self.steps
        if i < 2:
            self.stats["missiles_fired"] += 1
        return True

    @staticmethod
    def _crashed(ac) -> bool:
        """Below 2,500 m; an extreme state; or overload once 10 s have been flown."""
        if ac.alt <= CRASH_ALT:
            return True
        speed = math.sqrt(ac.vn**2 + ac.ve**2 + ac.vd**2)
        rates = math.sqrt(ac.p**2 + ac.q**2 + ac.r**2)
        loads = (abs(ac.nx), abs(ac.ny), abs(ac.nz + 1.0))  # n_z is -1 g in level flight
        if not math.isfinite(speed) or speed >= 1e10 or rates >= 1000.0 or max(loads) > 10 * OVERLOAD_G:
            return True
        return ac.time > OVERLOAD_AFTER and max(loads) > OVERLOAD_G

    # -- rewards ------------------------------------------------------------------------
    def _potential(self, i: int) -> list[float | None]:
        """Φ's term per enemy (None once it is dead): the posture reward sums the change of
        the terms of enemies alive before and after, so a kill is no jump in Φ."""
        ac = self.aircraft[i]
        return [self._sim.posture_potential(ac.kin, [e.kin]) if e.alive else None for e in self._enemies(i)]

    def _reward(self, i: int, was_alive: bool, missile_speed: dict) -> float:
        """Posture + altitude + event (+ missile posture) for Red aircraft i; 0 once dead."""
        sim, ac = self._sim, self.aircraft[i]
        if not was_alive:
            return 0.0
        r = EVENT * ac.kills
        if not ac.alive:
            return r - EVENT  # shot down or crashed this step
        phi = self._potential(i)
        r += POSTURE_SCALE * sum(now - before for now, before in zip(phi, self.potential[i])
                                 if now is not None and before is not None)
        self.potential[i] = phi
        r += sim.altitude_reward(ac.alt, -ac.vd)
        m = self._inbound(ac)
        if m is not None:
            dv = m.speed - missile_speed.get(id(m), m.speed)
            r += MISSILE_POSTURE_SCALE * sim.missile_posture(ac.kin, m.kin, dv)
        return r

    def _inbound(self, ac):
        """The nearest living missile aimed at `ac`, or None."""
        inbound = [m for m in self.missiles if m.alive and m.target is ac]
        return min(inbound, key=lambda m: math.dist(m.pos, ac.pos), default=None)

    # -- observations -------------------------------------------------------------------
    def _features(self, i: int) -> np.ndarray:
        sim, acs = self._sim, self.aircraft
        ac = acs[i]
        mate = acs[i ^ 1]
        out = [ac.alt / 5000.0, math.sin(ac.roll), math.cos(ac.roll), math.sin(ac.pitch), math.cos(ac.pitch),
               ac.u / sim.MACH, ac.v / sim.MACH, ac.w / sim.MACH, ac.vc / sim.MACH]
        for other in (mate, *self._enemies(i)):
            out += sim.relative_features(ac.kin, other.kin) if other.alive else [0.0] * PER_OTHER
        if self.weapons:
            m = self._inbound(ac)
            out += sim.relative_features(ac.kin, m.kin) if m is not None else [0.0] * PER_OTHER
        return np.clip(np.asarray(out, np.float32), -10.0, 10.0)

    def _view(self) -> AgentView:
        obs = [self._features(i) for i in range(4)]
        return AgentView(obs=obs[:2], state=np.concatenate(obs),
                         alive=np.array([self.aircraft[0].alive, self.aircraft[1].alive]))

    # -- snapshots ----------------------------------------------------------------------
    def get_state(self) -> dict:
        """The actions since the last reset (see the module docstring: replayed on restore)."""
        return {"history": [list(a) for a in self.history]}

    def set_state(self, state: dict) -> None:
        self.reset(None)
        for acts in state["history"]:
            self.history.append(tuple(acts))
            self._advance(tuple(acts))


# 1-Heading: targets redrawn every HEADING_HOLD decisions, our choice of ranges and widths.
HEADING_HOLD = 150  # 30 s
TARGET_RANGES = (1000.0, math.radians(90.0), 30.0)  # ± altitude (m), heading, speed (m/s)
REWARD_WIDTHS = (50.0, math.radians(10.0), 10.0)


class HeadingEnv(SingleEnv):
    """One F-16 flown surface by surface toward random altitude/heading/speed targets.

    Obs (12): Δalt/1 km, Δheading (rad), Δspeed/340 (target minus own), then the 9 ego
    features of the 2v2 tasks. Action: Box(-1, 1, (4,)) = aileron, elevator, rudder and
    throttle (mapped to [0.4, 0.9]), held for 12 FDM sub-steps. Reward per decision: the
    mean of exp(-(error/width)²) over the three targets, in [0, 1]; -200 and termination
    on a crash (the 2v2 crash rules). The random stream only draws targets."""

    def __init__(self, config: Config):
        from envs import lag_sim

        self._sim, self.config = lag_sim, config
        box = spaces.Box(-10.0, 10.0, (12,), np.float32)
        self.spec = EnvSpec(family="lag", task=HEADING_TASK, n_agents=1, obs_spaces=(box,), state_space=box,
                            action_spaces=(spaces.Box(-1.0, 1.0, (4,), np.float32),),
                            episode_limit=config.episode_limit)
        self.rng = np.random.default_rng()

    def reset(self, seed: int | None) -> AgentView:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.rng_at_reset = self.rng.bit_generator.state  # a fresh dict: safe to keep
        self.history: list[list[float]] = []
        self._start()
        return self._view()

    def _start(self) -> None:
        name, lat, lon, hdg = START[0]
        self.ac = self._sim.Aircraft(name, lat, lon, START_ALT, hdg, START_U)
        self.steps = 0
        self._new_target()

    def _new_target(self) -> None:
        ac, (d_alt, d_psi, d_v) = self.ac, TARGET_RANGES
        u = self.rng.uniform(-1.0, 1.0, 3)
        self.target = (max(ac.alt + d_alt * u[0], 4000.0), self._sim.wrap(ac.psi + d_psi * u[1]), ac.vt + d_v * u[2])

    def errors(self) -> tuple[float, float, float]:
        """Target minus own: altitude (m), heading (rad, wrapped), true airspeed (m/s)."""
        ac, (alt, psi, v) = self.ac, self.target
        return alt - ac.alt, self._sim.wrap(psi - ac.psi), v - ac.vt

    def step(self, actions: Sequence[np.ndarray]):
        action = np.clip(np.asarray(actions[0], np.float64).reshape(4), -1.0, 1.0)
        self.history.append(action.tolist())
        return self._advance(action)

    def _advance(self, action: np.ndarray):
        ac = self.ac
        ac.set_controls(action[0], action[1], action[2], 0.4 + 0.25 * (action[3] + 1.0))
        for _ in range(SUBSTEPS):
            ac.run()
        ac.sense()
        self.steps += 1
        terminated = LagEnv._crashed(ac)
        if terminated:
            reward = -EVENT
        else:
            reward = float(np.mean([math.exp(-((e / w) ** 2)) for e, w in zip(self.errors(), REWARD_WIDTHS)]))
        truncated = not terminated and self.steps >= self.config.episode_limit
        if not terminated and self.steps % HEADING_HOLD == 0:
            self._new_target()
        return self._view(), reward, terminated, truncated, {"crash": terminated} if terminated or truncated else {}

    def _view(self) -> AgentView:
        ac, sim = self.ac, self._sim
        d_alt, d_psi, d_v = self.errors()
        obs = np.clip(np.array([d_alt / 1000.0, d_psi, d_v / sim.MACH, ac.alt / 5000.0, math.sin(ac.roll),
                                math.cos(ac.roll), math.sin(ac.pitch), math.cos(ac.pitch), ac.u / sim.MACH,
                                ac.v / sim.MACH, ac.w / sim.MACH, ac.vc / sim.MACH], np.float32), -10.0, 10.0)
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


def pid_heading_action(env: HeadingEnv, autopilot) -> np.ndarray:
    """Our PID autopilot's surfaces for `env`'s current target, as a 1-Heading action."""
    ail, elev, rud, thr = autopilot.commands(env.ac, *env.target, SUBSTEPS * DT)
    return np.array([ail, elev, rud, (thr - 0.4) / 0.25 - 1.0], np.float32)


def env_factory(task: str, config: Config):
    """Validate the task, the config and jsbsim now; build copies later."""
    if task not in TASKS:
        raise ConfigError(f"unknown lag task {task!r}; valid tasks: {', '.join(TASKS)}")
    if int(config.episode_limit) < 1:
        raise ConfigError(f"env.episode_limit must be >= 1, got {config.episode_limit}")
    if not 1 <= int(config.autopilot_every) <= SUBSTEPS:
        raise ConfigError(f"env.autopilot_every must be in 1..{SUBSTEPS}, got {config.autopilot_every}")
    _check_jsbsim()
    if task == HEADING_TASK:
        return partial(HeadingEnv, config)
    return partial(LagEnv, task, config)
