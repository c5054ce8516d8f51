"""Air-combat physics for the Light Aircraft Game tasks (envs/lag): JSBSim F-16s, our own
PID autopilot, a point-mass missile, the relative geometry and the reward terms.

Written from the published description of LAG's tasks and textbook flight mechanics, not from the (GPL) LAG code. Units: metres, seconds, radians; positions
in a local north-east-up (NEU) frame centred at lon 120°, lat 60°, altitude 0.

The original LAG drives its aircraft with a pretrained GRU controller (GPL weights we do not
use). `Autopilot` replaces it: a PID altitude/heading/speed hold on top of the F-16 model's
own fly-by-wire (in JSBSim's f16, aileron-cmd commands roll rate and elevator-cmd a load
factor), so the outer loops here only need to choose bank angle, load factor and throttle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

FT = 0.3048  # metres per foot
G = 9.80665
MACH = 340.0  # the feature scale of the specification (m/s)
ORIGIN = (60.0, 120.0, 0.0)  # lat, lon (deg), altitude (m) of the NEU frame

# WGS84, for the geodetic -> local frame conversion.
_A, _E2 = 6378137.0, 6.69437999014e-3


def _ecef(lat_deg: float, lon_deg: float, h: float) -> tuple[float, float, float]:
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    n = _A / math.sqrt(1.0 - _E2 * math.sin(lat) ** 2)
    return ((n + h) * math.cos(lat) * math.cos(lon), (n + h) * math.cos(lat) * math.sin(lon),
            (n * (1.0 - _E2) + h) * math.sin(lat))


_O = _ecef(*ORIGIN)
_SLAT, _CLAT = math.sin(math.radians(ORIGIN[0])), math.cos(math.radians(ORIGIN[0]))
_SLON, _CLON = math.sin(math.radians(ORIGIN[1])), math.cos(math.radians(ORIGIN[1]))


def geodetic_to_neu(lat_deg: float, lon_deg: float, h: float) -> tuple[float, float, float]:
    """Exact WGS84 geodetic -> ECEF -> local tangent plane at ORIGIN, as (north, east, up)."""
    x, y, z = _ecef(lat_deg, lon_deg, h)
    dx, dy, dz = x - _O[0], y - _O[1], z - _O[2]
    east = -_SLON * dx + _CLON * dy
    north = -_SLAT * _CLON * dx - _SLAT * _SLON * dy + _CLAT * dz
    up = _CLAT * _CLON * dx + _CLAT * _SLON * dy + _SLAT * dz
    return (north, east, up)


def wrap(angle: float) -> float:
    """Angle in (-pi, pi]."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


# --------------------------------------------------------------------------------------
# Geometry and observation features
# --------------------------------------------------------------------------------------
# Plain-float 3-vector maths: numpy's per-call overhead dominated on 3-vectors (profiled).
def _sub(a, b) -> tuple[float, float, float]:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _cross(a, b) -> tuple[float, float, float]:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _scale(a, k: float) -> tuple[float, float, float]:
    return (a[0] * k, a[1] * k, a[2] * k)


def _dot(a, b) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _norm(a) -> float:
    return math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])


def _acos_ratio(dot: float, na: float, nb: float) -> float:
    """The angle whose cosine is dot/(na·nb); 0 when either vector is (nearly) zero."""
    if na < 1e-9 or nb < 1e-9:
        return 0.0
    return math.acos(max(-1.0, min(1.0, dot / (na * nb))))


def _angle(a, b) -> float:
    return _acos_ratio(_dot(a, b), _norm(a), _norm(b))


def _side(vel, los) -> float:
    cross = vel[0] * los[1] - vel[1] * los[0]  # north x east: > 0 means to the right
    return 1.0 if cross > 0 else (-1.0 if cross < 0 else 0.0)


def geometry(own_pos, own_vel, other_pos, other_vel) -> tuple[float, float, float, float]:
    """(AO, TA, range, side). AO: angle between own velocity and the line of sight to the
    other; TA: angle between the other's velocity and that same line of sight (0 = we sit
    on its tail, pi = it flies straight at us); side: +1 when the other is to the right of
    own horizontal velocity, -1 left, 0 dead ahead/behind."""
    los = _sub(other_pos, own_pos)
    return _angle(own_vel, los), _angle(other_vel, los), _norm(los), _side(own_vel, los)


def pair_geometry(a: "Kinematics", b: "Kinematics") -> tuple[tuple, tuple]:
    """`geometry` seen from a and from b, from one line of sight: bit-identical to two
    `geometry` calls (negating a float is exact), at about half the cost."""
    los = _sub(b.pos, a.pos)
    rng, na, nb = _norm(los), _norm(a.vel), _norm(b.vel)
    dot_a, dot_b = _dot(a.vel, los), _dot(b.vel, los)
    from_a = (_acos_ratio(dot_a, na, rng), _acos_ratio(dot_b, nb, rng), rng, _side(a.vel, los))
    back = (-los[0], -los[1], -los[2])
    from_b = (_acos_ratio(-dot_b, nb, rng), _acos_ratio(-dot_a, na, rng), rng, _side(b.vel, back))
    return from_a, from_b


def features_from(own: "Kinematics", other: "Kinematics", geo: tuple) -> list[float]:
    """The 6 features the spec gives per other aircraft (or missile) from their `geometry`:
    Δ body-u speed / 340, Δ altitude / 1 km (other minus own), AO, TA, range / 10 km, side."""
    ao, ta, rng, side = geo
    return [(other.u - own.u) / MACH, (other.pos[2] - own.pos[2]) / 1000.0, ao, ta, rng / 10000.0, side]


def relative_features(own: "Kinematics", other: "Kinematics") -> list[float]:
    """`features_from` with the geometry computed here."""
    return features_from(own, other, geometry(own.pos, own.vel, other.pos, other.vel))


def ego_features(ac: "Aircraft") -> list[float]:
    """The spec's 9 own-state features: altitude / 5 km, sin and cos of roll and pitch, body
    u, v, w and calibrated airspeed / 340."""
    return [ac.alt / 5000.0, math.sin(ac.roll), math.cos(ac.roll), math.sin(ac.pitch), math.cos(ac.pitch),
            ac.u / MACH, ac.v / MACH, ac.w / MACH, ac.vc / MACH]


@dataclass
class Kinematics:
    """What geometry needs of any flying object: NEU position and velocity, body-u speed."""

    pos: tuple[float, float, float]
    vel: tuple[float, float, float]
    u: float


# --------------------------------------------------------------------------------------
# Aircraft: one JSBSim F-16
# --------------------------------------------------------------------------------------
SUBSTEPS = 12  # 60 Hz FDM, one agent decision every 0.2 s
DT = 1.0 / 60.0
# What `sense` reads, in this order: (JSBSim property, factor to SI).
_READ = (
    ("position/lat-geod-deg", 1.0), ("position/long-gc-deg", 1.0), ("position/h-sl-meters", 1.0),
    ("attitude/phi-rad", 1.0), ("attitude/theta-rad", 1.0), ("attitude/psi-rad", 1.0),
    ("velocities/u-fps", FT), ("velocities/v-fps", FT), ("velocities/w-fps", FT),
    ("velocities/vc-fps", FT), ("velocities/vt-fps", FT),
    ("velocities/v-north-fps", FT), ("velocities/v-east-fps", FT), ("velocities/v-down-fps", FT),
    ("velocities/p-rad_sec", 1.0), ("velocities/q-rad_sec", 1.0), ("velocities/r-rad_sec", 1.0),
    ("accelerations/n-pilot-x-norm", 1.0), ("accelerations/n-pilot-y-norm", 1.0),
    ("accelerations/n-pilot-z-norm", 1.0),
)
_CONTROLS = ("fcs/aileron-cmd-norm", "fcs/elevator-cmd-norm", "fcs/rudder-cmd-norm", "fcs/throttle-cmd-norm")


class Aircraft:
    """One JSBSim F-16 with a fixed start point, plus the state the task layer reads
    (refreshed by `sense`). The FDM is built once and re-trimmed at its start by `reset`.

    Reuse is exact: `reset` re-initialises every JSBSim model and trims from the same state
    each time, so every episode flies bit-identically to a new aircraft's first (tested).
    The one trap: re-initialising an FDM whose initial conditions were never set lands in a
    slightly different state (about 0.06 m off within 20 s), so `__init__` sets them first.
    Reuse skips loading the model; the trim, about 15 ms of CPU per aircraft, remains."""

    def __init__(self, name: str, lat: float, lon: float, alt_m: float, heading_deg: float, u_mps: float):
        import jsbsim  # lazy: envs/lag checks availability first

        jsbsim.FGJSBBase().debug_lvl = 0  # silences the start-up banner of every FGFDMExec
        self.name = name
        self._initial = (("ic/lat-geod-deg", lat), ("ic/long-gc-deg", lon), ("ic/h-sl-ft", alt_m / FT),
                         ("ic/psi-true-deg", heading_deg), ("ic/u-fps", u_mps / FT))
        fdm = jsbsim.FGFDMExec(jsbsim.get_default_root_dir())
        fdm.set_debug_level(0)
        fdm.load_model("f16")
        fdm.set_dt(DT)
        self.fdm = fdm
        self._load_initial()  # before the first reset: see the class docstring
        manager = fdm.get_property_manager()
        self._nodes = [manager.get_node(p) for p, _ in _READ]
        self._factors = [f for _, f in _READ]
        self._controls = [manager.get_node(p) for p in _CONTROLS]
        self.reset()

    def _load_initial(self) -> None:
        for prop, value in self._initial:
            self.fdm[prop] = value

    def reset(self) -> None:
        """Back to the start point, engine running, trimmed for level flight."""
        fdm = self.fdm
        fdm.reset_to_initial_conditions(0)
        self._load_initial()
        fdm.run_ic()
        fdm.get_propulsion().init_running(-1)
        fdm.get_propulsion().get_steady_state()
        fdm["simulation/do_simple_trim"] = 1  # level flight: without it the F-16 dives
        self.trim_throttle = float(fdm["fcs/throttle-cmd-norm"])
        self.alive, self.crashed, self.shot_down = True, False, False
        self.frames = 0
        self.missiles_left, self.kills = 0, 0
        self.last_launch_step = -10**9
        self.sense()

    @property
    def time(self) -> float:
        """Seconds flown since the last reset."""
        return self.frames * DT

    def sense(self) -> None:
        """Copy JSBSim's properties into attributes (SI units) and the NEU kinematics."""
        (self.lat, self.lon, self.alt, self.roll, self.pitch, self.psi, self.u, self.v, self.w, self.vc, self.vt,
         self.vn, self.ve, self.vd, self.p, self.q, self.r, self.nx, self.ny, self.nz) = [
            node.get_double_value() * f for node, f in zip(self._nodes, self._factors)]
        self.pos = geodetic_to_neu(self.lat, self.lon, self.alt)
        self.vel = (self.vn, self.ve, -self.vd)
        self.kin = Kinematics(self.pos, self.vel, self.u)

    def position_velocity(self) -> tuple[tuple, tuple]:
        """NEU position and velocity read now (what a missile chasing us needs each sub-step);
        the same arithmetic as `sense`, so both agree to the bit."""
        nodes = self._nodes
        pos = geodetic_to_neu(nodes[0].get_double_value(), nodes[1].get_double_value(), nodes[2].get_double_value())
        vel = (nodes[11].get_double_value() * FT, nodes[12].get_double_value() * FT,
               -(nodes[13].get_double_value() * FT))
        return pos, vel

    def set_controls(self, aileron: float, elevator: float, rudder: float, throttle: float) -> None:
        for node, value in zip(self._controls, (aileron, elevator, rudder, throttle)):
            node.set_double_value(value)

    def run(self, frames: int = 1) -> None:
        """Advance the FDM `frames` sub-steps with the controls held."""
        run = self.fdm.run
        for _ in range(frames):
            run()
        self.frames += frames


@dataclass
class Autopilot:
    """Our PID altitude / heading / true-airspeed hold (not the original's pretrained GRU).

    Heading error -> bank-angle command -> aileron (roll-rate command of the F-16 FBW);
    altitude error -> climb-rate -> flight-path-angle command -> load-factor command, with
    the 1/cos(bank) term a level turn needs -> elevator (load-factor command, negative =
    pull); airspeed error -> throttle, limited to [0.4, 0.9] like the original controller."""

    k_heading: float = 4.0  # bank (rad) per rad of heading error
    max_bank: float = math.radians(70.0)
    k_bank: float = 1.2  # aileron per rad of bank error
    k_roll_rate: float = 0.15  # aileron per rad/s of roll rate (damping)
    k_alt: float = 0.1  # climb rate (m/s) per m of altitude error
    max_climb: float = 80.0
    k_gamma: float = 8.0  # g per rad of flight-path error
    k_gamma_i: float = 0.1  # g per rad·s of accumulated flight-path error
    g_per_elevator: float = 8.0  # F-16 FBW: about 1 + 8·(-elevator) g
    k_speed: float = 0.04  # throttle per m/s of speed error
    throttle_range: tuple[float, float] = (0.4, 0.9)
    _gamma_int: dict = field(default_factory=dict, repr=False)

    def reset(self) -> None:
        self._gamma_int.clear()

    def control(self, ac: Aircraft, alt: float, heading: float, speed: float, dt: float) -> None:
        """Fly toward the targets: compute the surfaces and set them on `ac`."""
        ac.set_controls(*self.commands(ac, alt, heading, speed, dt))

    def commands(self, ac: Aircraft, alt: float, heading: float, speed: float,
                 dt: float) -> tuple[float, float, float, float]:
        """(aileron, elevator, rudder, throttle) for the targets; updates the integrator."""
        bank_cmd = max(-self.max_bank, min(self.max_bank, self.k_heading * wrap(heading - ac.psi)))
        aileron = self.k_bank * (bank_cmd - ac.roll) - self.k_roll_rate * ac.p
        climb = max(-self.max_climb, min(self.max_climb, self.k_alt * (alt - ac.alt)))
        v = max(ac.vt, 1.0)
        gamma_cmd = math.asin(max(-0.9, min(0.9, climb / v)))
        gamma = math.asin(max(-1.0, min(1.0, -ac.vd / v)))
        err = gamma_cmd - gamma
        integ = max(-0.5, min(0.5, self._gamma_int.get(ac.name, 0.0) + err * dt))
        self._gamma_int[ac.name] = integ
        cos_bank = max(math.cos(min(abs(ac.roll), self.max_bank)), 0.3)
        n_cmd = math.cos(gamma) / cos_bank + self.k_gamma * err + self.k_gamma_i * integ
        elevator = -(n_cmd - 1.0) / self.g_per_elevator
        throttle = ac.trim_throttle + self.k_speed * (speed - ac.vt)
        lo, hi = self.throttle_range
        return max(-1.0, min(1.0, aileron)), max(-1.0, min(1.0, elevator)), 0.0, max(lo, min(hi, throttle))


# --------------------------------------------------------------------------------------
# Missile: AIM-9L-like point mass with proportional navigation
# --------------------------------------------------------------------------------------
@dataclass
class MissileModel:
    """Numbers from the spec (gain, life, burn, mass, drag factor, kill radius, failure
    speed) plus our own choices where it is silent: thrust, reference area, g limit."""

    nav_gain: float = 3.0
    life: float = 60.0
    burn_time: float = 3.0
    mass0: float = 84.0
    mass_rate: float = 6.0  # kg/s while the motor burns
    thrust: float = 10000.0  # N (our choice)
    drag_cd: float = 0.4
    area: float = 0.0127  # m², a 127 mm body (our choice)
    max_accel: float = 30.0 * G  # lateral acceleration limit (our choice)
    kill_radius: float = 300.0
    min_speed: float = 150.0


def air_density(alt: float) -> float:
    """ISA troposphere density (kg/m³), held at the 11 km value above."""
    t = 288.15 - 0.0065 * min(max(alt, 0.0), 11000.0)
    return 1.225 * (t / 288.15) ** 4.2559


class Missile:
    """One missile in flight; `step` integrates one FDM sub-step and reports hit/miss."""

    def __init__(self, shooter: Aircraft, target: Aircraft, model: MissileModel):
        self.shooter, self.target, self.model = shooter, target, model
        self.pos, self.vel = tuple(shooter.pos), tuple(shooter.vel)
        self.t = 0.0
        self.mass = model.mass0
        self.state = "flying"  # -> "hit" | "miss"
        self.counted = False  # the env has credited the hit

    @property
    def alive(self) -> bool:
        return self.state == "flying"

    @property
    def speed(self) -> float:
        return _norm(self.vel)

    @property
    def kin(self) -> Kinematics:
        return Kinematics(self.pos, self.vel, self.speed)

    def step(self, dt: float, target_pos, target_vel) -> None:
        """One sub-step toward a target now at `target_pos` moving at `target_vel` (the env
        records the target's track while it flies, then steps the missiles along it)."""
        m = self.model
        if not self.alive:
            return
        if not self.target.alive:
            self.state = "miss"
            return
        v = self.vel
        speed = _norm(v)
        r, w = _sub(target_pos, self.pos), _sub(target_vel, v)
        rng2 = max(r[0] * r[0] + r[1] * r[1] + r[2] * r[2], 1.0)
        # PN: a = N·(ω × v_m), ω = (r × v_rel)/|r|², gain fading linearly over the life
        om = _scale(_cross(r, w), 1.0 / rng2)
        a = _scale(_cross(om, v), m.nav_gain * max(0.0, 1.0 - self.t / m.life))
        a_norm = _norm(a)
        if a_norm > m.max_accel:
            a = _scale(a, m.max_accel / a_norm)
        thrust = m.thrust if self.t < m.burn_time else 0.0
        drag = 0.5 * air_density(self.pos[2]) * speed**2 * m.area * m.drag_cd
        along = (thrust - drag) / self.mass / max(speed, 1e-6)
        v = (v[0] + (a[0] + v[0] * along) * dt, v[1] + (a[1] + v[1] * along) * dt,
             v[2] + (a[2] + v[2] * along - G) * dt)
        self.vel = v
        self.pos = (self.pos[0] + v[0] * dt, self.pos[1] + v[1] * dt, self.pos[2] + v[2] * dt)
        self.t += dt
        if self.t < m.burn_time:
            self.mass -= m.mass_rate * dt
        if _norm(_sub(target_pos, self.pos)) <= m.kill_radius:
            self.state = "hit"
        elif self.t >= m.life or (self.t > m.burn_time and self.speed < m.min_speed) or self.pos[2] <= 0.0:
            self.state = "miss"


# --------------------------------------------------------------------------------------
# Termination (the spec's crash rules, shared by every task)
# --------------------------------------------------------------------------------------
CRASH_ALT, OVERLOAD_G, OVERLOAD_AFTER = 2500.0, 10.0, 10.0


def crashed(ac) -> bool:
    """Below 2,500 m; an extreme state; or overload once 10 s have been flown."""
    if ac.alt <= CRASH_ALT:
        return True
    speed = math.sqrt(ac.vn**2 + ac.ve**2 + ac.vd**2)
    rates = math.sqrt(ac.p**2 + ac.q**2 + ac.r**2)
    loads = (abs(ac.nx), abs(ac.ny), abs(ac.nz + 1.0))  # n_z is -1 g in level flight
    if not math.isfinite(speed) or speed >= 1e10 or rates >= 1000.0 or max(loads) > 10 * OVERLOAD_G:
        return True
    return ac.time > OVERLOAD_AFTER and max(loads) > OVERLOAD_G


# --------------------------------------------------------------------------------------
# Reward terms (each a pure function, so tests can check signs and bounds by hand)
# --------------------------------------------------------------------------------------
def orientation(ao: float, ta: float) -> float:
    """f(AO, TA) in [-1, 1]: +1 pointing at an enemy that flies away (its tail), -1 with
    the enemy on our tail pointing at us, 0 head-on."""
    return 0.5 * (math.cos(ao) + math.cos(ta))


def range_factor(rng: float) -> float:
    """g(R): 1 within 5 km, decaying exponentially (5 km scale) beyond."""
    return 1.0 if rng <= 5000.0 else math.exp(-(rng - 5000.0) / 5000.0)


def posture_potential(own: Kinematics, enemies: list[Kinematics]) -> float:
    """Φ = Σ_enemies f(AO, TA)·g(R); the posture reward is 15·(Φ_t − Φ_{t−1})."""
    total = 0.0
    for e in enemies:
        ao, ta, rng, _ = geometry(own.pos, own.vel, e.pos, e.vel)
        total += orientation(ao, ta) * range_factor(rng)
    return total


def altitude_reward(alt: float, climb_rate: float, safe: float = 4000.0, danger: float = 3500.0,
                    kv: float = 0.2) -> float:
    """Below `safe`: a descent penalty climb_rate/(kv·340) in [-1, 0]; below `danger`: a
    further alt/danger − 1 in [-1, 0]. Sum in [-2, 0]."""
    r = 0.0
    if alt < safe:
        r += max(-1.0, min(0.0, climb_rate / (kv * MACH)))
    if alt < danger:
        r += max(-1.0, min(0.0, alt / danger - 1.0))
    return r


def missile_posture(own: Kinematics, missile: Kinematics, speed_change: float) -> float:
    """Per-step term for an inbound missile, before the scale of 30: d·clip(−Δv/340, ±1),
    d = cos(angle between own velocity and the missile-to-own direction) (+1 flying
    straight away). Positive when flying away while the missile bleeds speed."""
    away = _angle(own.vel, _sub(own.pos, missile.pos))
    return math.cos(away) * max(-1.0, min(1.0, -speed_change / MACH))
