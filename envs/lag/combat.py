"""The 2v2 tasks, `2v2-NoWeapon-vsBaseline` and `2v2-ShootMissile-vsBaseline`: four F-16s,
Red agents 0 and 1 (learned), Blue 2 and 3 (scripted). See envs/lag/__init__.py for the
task summary and our deviations from the original, envs/lag/sim.py for the physics.

Speed: a decision is 4 aircraft × 12 JSBSim sub-steps, and JSBSim is most of its cost; the
rest is kept small on purpose: each aircraft flies its 12 sub-steps in one go (aircraft do
not interact within a decision; missiles follow their target's recorded track afterwards),
the geometry of each pair of aircraft is computed once per decision and shared by the
observations and the posture reward, and all four observations are one numpy array.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from gymnasium import spaces

from envs.base import AgentView, EnvSpec, SingleEnv
from envs.lag import COMBAT_TASKS, RESULTS_NOTE, Config
from envs.lag import sim
from envs.lag.sim import DT, SUBSTEPS

WEAPONS = dict(zip(COMBAT_TASKS, (False, True)))

D_ALT = (100.0, 0.0, -100.0)  # m (±0.1 × 1 km)
D_HEADING = tuple(math.radians(d) for d in (-30.0, -15.0, 0.0, 15.0, 30.0))
D_SPEED = (17.0, 0.0, -17.0)  # m/s (±0.05 × 340)
N_MOVES = len(D_ALT) * len(D_HEADING) * len(D_SPEED)  # 45
HOLD = 22  # (Δalt 0, Δheading 0, Δspeed 0): index 1·15 + 2·3 + 1
# name, lat, lon, heading (deg); all start at 20,000 ft with body u = 800 ft/s
START = (("A0100", 60.0, 120.0, 0.0), ("A0200", 60.0, 120.01, 0.0),
         ("B0100", 60.1, 120.0, 180.0), ("B0200", 60.1, 120.01, 180.0))
START_ALT, START_U = 20000 * 0.3048, 800 * 0.3048
EGO, PER_OTHER = 9, 6
RED, BLUE = (0, 1), (2, 3)

# Rewards (spec values)
POSTURE_SCALE, MISSILE_POSTURE_SCALE, EVENT = 15.0, 30.0, 200.0
MISSILES_PER_AIRCRAFT, LAUNCH_ANGLE, LAUNCH_RANGE, LAUNCH_INTERVAL = 2, math.radians(45.0), 14000.0, 125
# Blue's evasive schedule (ShootMissile): heading offsets from the heading at detection,
# each held for EVADE_HOLD seconds (our choice: the spec only says "scripted schedule").
EVADE_OFFSETS, EVADE_HOLD = tuple(math.radians(d) for d in (90.0, 180.0, 270.0, 180.0)), 8.0
CRUISE_ALT, CRUISE_SPEED = 6096.0, 243.0


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
    """One 2v2 engagement: 4 JSBSim F-16s, Red agents 0 and 1, Blue scripted. The aircraft
    are built once per env and re-trimmed at their start points on each reset."""

    def __init__(self, task: str, config: Config):
        self.task, self.config = task, config
        self.weapons = WEAPONS[task]
        self.obs_dim = EGO + 3 * PER_OTHER + (PER_OTHER if self.weapons else 0)
        obs_space = spaces.Box(-10.0, 10.0, (self.obs_dim,), np.float32)
        state_space = spaces.Box(-10.0, 10.0, (4 * self.obs_dim,), np.float32)
        act = spaces.Discrete(N_MOVES * (2 if self.weapons else 1))
        self.spec = EnvSpec(family="lag", task=task, n_agents=2, obs_spaces=(obs_space, obs_space),
                            state_space=state_space, action_spaces=(act, act),
                            episode_limit=config.episode_limit, success_metric="win_rate",
                            results_note=RESULTS_NOTE)
        self.autopilot = sim.Autopilot()
        self.missile_model = sim.MissileModel()
        self.aircraft: list[sim.Aircraft] = []

    # -- episode ------------------------------------------------------------------------
    def reset(self, seed: int | None) -> AgentView:
        if not self.aircraft:
            self.aircraft = [sim.Aircraft(n, lat, lon, START_ALT, hdg, START_U) for n, lat, lon, hdg in START]
        for ac in self.aircraft:
            ac.reset()
            ac.missiles_left = MISSILES_PER_AIRCRAFT if self.weapons else 0
        self.autopilot.reset()
        self.missiles: list[sim.Missile] = []
        self.steps = 0
        self.history: list[tuple[int, int]] = []
        self.evade_start: dict[int, tuple[float, float]] = {}
        self.stats = {"missiles_fired": 0, "missiles_hit": 0, "crash": 0}
        self._measure()
        self.potential = [self._potential(i) for i in RED]
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
        for i in RED:
            a, h, s, f = decode(acts[i], self.weapons)
            ac = acs[i]
            targets.append((ac.alt + D_ALT[a], ac.psi + D_HEADING[h], ac.vt + D_SPEED[s]))
            fire.append(bool(f))
        for i in BLUE:
            targets.append(self._blue_targets(i))
            fire.append(self.weapons)  # spec quirk: the baseline fires whenever it can
        for i, ac in enumerate(acs):
            if ac.alive and fire[i]:
                self._try_launch(i)
        missile_speed = {id(m): m.speed for m in self.missiles}
        self._fly(targets)
        for m in self.missiles:  # resolve hits once per decision
            if m.state == "hit" and not m.counted:
                m.counted = True
                if not m.target.alive:  # two hits in one decision: only the first counts
                    continue
                m.target.alive, m.target.shot_down = False, True
                m.shooter.kills += 1
                if acs.index(m.shooter) in RED:
                    self.stats["missiles_hit"] += 1
        for i, ac in enumerate(acs):
            if ac.alive and sim.crashed(ac):
                ac.alive, ac.crashed = False, True
                self.stats["crash"] += i in RED
        self._measure()
        r0, r1 = (self._reward(i, was_alive[i], missile_speed) for i in RED)
        reward = (r0 + r1) / 2.0  # the team reward: the mean over Red
        for ac in acs:
            ac.kills = 0
        red_dead = not (acs[0].alive or acs[1].alive)
        blue_dead = not (acs[2].alive or acs[3].alive)
        inbound_red = any(m.alive and acs.index(m.target) in RED for m in self.missiles)
        terminated = red_dead or (blue_dead and not inbound_red)
        truncated = not terminated and self.steps >= self.config.episode_limit
        info = {}
        if terminated or truncated:
            info = {"win": bool(blue_dead and not red_dead), "loss": bool(red_dead),
                    "timeout": bool(truncated), **self.stats}
        return reward, terminated, truncated, info

    def _fly(self, targets: list[tuple[float, float, float]]) -> None:
        """12 sub-steps of every living aircraft under the autopilot, then of every missile.

        Aircraft do not interact within a decision, so each flies its sub-steps in one go;
        a missile's target records its position and velocity after each sub-step, and the
        missiles then fly along those tracks: the same numbers as interleaving the two."""
        every, autopilot = self.config.autopilot_every, self.autopilot
        flying = [m for m in self.missiles if m.alive]
        chased = {id(m.target) for m in flying}
        tracks: dict[int, list] = {}
        for ac, target in zip(self.aircraft, targets):
            if not ac.alive:
                continue
            track = tracks[id(ac)] = [] if id(ac) in chased else None
            for start in range(0, SUBSTEPS, every):
                autopilot.control(ac, *target, every * DT)
                frames = min(every, SUBSTEPS - start)
                if track is None:
                    ac.run(frames)
                else:
                    for _ in range(frames - 1):
                        ac.run()
                        track.append(ac.position_velocity())
                    ac.run()
                ac.sense()
                if track is not None:
                    track.append((ac.pos, ac.vel))
        for k in range(SUBSTEPS):
            for m in flying:
                track = tracks.get(id(m.target))
                if track is None:  # its target was dead before this decision: `step` calls it a miss
                    m.step(DT, m.target.pos, m.target.vel)
                else:
                    m.step(DT, *track[k])

    # -- opponent, weapons ---------------------------------------------------------------
    def _blue_targets(self, i: int) -> tuple[float, float, float]:
        ac = self.aircraft[i]
        enemies = [e for e in self._enemies(i) if e.alive]
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

    def _enemies(self, i: int) -> list[sim.Aircraft]:
        return self.aircraft[2:] if i in RED else self.aircraft[:2]

    def _try_launch(self, i: int) -> bool:
        """Launch at the nearest living enemy if within 45° of the nose and 14 km, with a
        missile left and 125 decisions since the last launch."""
        ac = self.aircraft[i]
        enemies = [e for e in self._enemies(i) if e.alive]
        if not enemies or ac.missiles_left <= 0 or self.steps - ac.last_launch_step < LAUNCH_INTERVAL:
            return False
        e = min(enemies, key=lambda e: math.dist(e.pos, ac.pos))
        ao, _, rng, _ = sim.geometry(ac.pos, ac.vel, e.pos, e.vel)
        if ao > LAUNCH_ANGLE or rng > LAUNCH_RANGE:
            return False
        self.missiles.append(sim.Missile(ac, e, self.missile_model))
        ac.missiles_left -= 1
        ac.last_launch_step = self.steps
        if i in RED:
            self.stats["missiles_fired"] += 1
        return True

    def _inbound(self, ac: sim.Aircraft) -> sim.Missile | None:
        """The nearest living missile aimed at `ac`, or None."""
        inbound = [m for m in self.missiles if m.alive and m.target is ac]
        return min(inbound, key=lambda m: math.dist(m.pos, ac.pos), default=None)

    # -- geometry, rewards, observations -------------------------------------------------
    def _measure(self) -> None:
        """`geometry` for every ordered pair with a living aircraft in it, from one line of
        sight per pair: what the posture reward and the observations read this decision."""
        acs = self.aircraft
        self.geo: dict[tuple[int, int], tuple] = {}
        for i in range(4):
            for j in range(i + 1, 4):
                if acs[i].alive or acs[j].alive:
                    self.geo[i, j], self.geo[j, i] = sim.pair_geometry(acs[i].kin, acs[j].kin)

    def _potential(self, i: int) -> list[float | None]:
        """Φ's term per enemy (None once it is dead): the posture reward sums the change of
        the terms of enemies alive before and after, so a kill is no jump in Φ."""
        out = []
        for j in (BLUE if i in RED else RED):
            ao, ta, rng, _ = self.geo[i, j]
            out.append(sim.orientation(ao, ta) * sim.range_factor(rng) if self.aircraft[j].alive else None)
        return out

    def _reward(self, i: int, was_alive: bool, missile_speed: dict) -> float:
        """Posture + altitude + event (+ missile posture) for Red aircraft i; 0 once dead."""
        ac = self.aircraft[i]
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

    def _features(self, i: int) -> list[float]:
        """Aircraft i's observation (dead ones too: the state holds all four rows)."""
        acs = self.aircraft
        ac = acs[i]
        out = sim.ego_features(ac)
        for j in (i ^ 1, *(BLUE if i in RED else RED)):  # partner first, then the two enemies
            other = acs[j]
            out += sim.features_from(ac.kin, other.kin, self.geo[i, j]) if other.alive else [0.0] * PER_OTHER
        if self.weapons:
            m = self._inbound(ac)
            out += sim.relative_features(ac.kin, m.kin) if m is not None else [0.0] * PER_OTHER
        return out

    def _view(self) -> AgentView:
        rows = np.array([self._features(i) for i in range(4)], np.float32)
        np.clip(rows, -10.0, 10.0, out=rows)
        return AgentView(obs=[rows[0], rows[1]], state=rows.reshape(-1),
                         alive=np.array([self.aircraft[0].alive, self.aircraft[1].alive]))

    # -- snapshots ----------------------------------------------------------------------
    def get_state(self) -> dict:
        """The actions since the last reset (see envs/lag/__init__.py: replayed on restore)."""
        return {"history": [list(a) for a in self.history]}

    def set_state(self, state: dict) -> None:
        self.reset(None)
        for acts in state["history"]:
            self.history.append(tuple(acts))
            self._advance(tuple(acts))
