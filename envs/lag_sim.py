"""Air-combat physics for the Light Aircraft Game tasks (envs/lag.py): JSBSim F-16s, our own
PID autopilot, a point-mass missile, the relative geometry and the reward terms.

Written from the task description in ../shared/reference/hard_families.md §3 and textbook
flight mechanics, not from the (GPL) LAG code. Units: metres, seconds, radians; positions
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


def _norm(a) -> float:
    return math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])


def _angle(a, b) -> float:
    na, nb = _norm(a), _norm(b)
    if na < 1e-9 or nb < 1e-9:
        return 0.0
    return math.acos(max(-1.0, min(1.0, (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]) / (na * nb))))


def geometry(own_pos, own_vel, other_pos, other_vel) -> tuple[float, float, float, float]:
    """(AO, TA, range, side). AO: angle between own velocity and the line of sight to the
    other; TA: angle between the other's velocity and that same line of sight (0 = we sit
    on its tail, pi = it flies straight at us); side: +1 when the other is to the right of
    own horizontal velocity, -1 left, 0 dead ahead/behind."""
    los = _sub(other_pos, own_pos)
    cross = own_vel[0] * los[1] - own_vel[1] * los[0]  # north x east: > 0 means to the right
    side = 1.0 if cross > 0 else (-1.0 if cross < 0 else 0.0)
    return _angle(own_vel, los), _angle(other_vel, los), _norm(los), side


def relative_features(own: "Kinematics", other: "Kinematics") -> list[float]:
    """The 6 features the spec gives per other aircraft (or missile): Δ body-u speed / 340,
    Δ altitude / 1 km (other minus own), AO, TA, range / 10 km, side flag."""
    ao, ta, rng, side = geometry(own.pos, own.vel, other.pos, other.vel)
    return [(other.u - own.u) / MACH, (other.pos[2] - own.pos[2]) / 1000.0, ao, ta, rng / 10000.0, side]


@dataclass
class Kinematics:
    """What geometry needs of any flying object: NEU position and velocity, body-u speed."""

    pos: tuple[float, float, float]
    vel: tuple[float, float, float]
    u: float


# --------------------------------------------------------------------------------------
# Aircraft: one JSBSim F-16
# --------------------------------------------------------------------------------------
_READ = {  # attribute -> (JSBSim property, factor to SI)
    "lat": ("position/lat-geod-deg", 1.0), "lon": ("position/long-gc-deg", 1.0),
    "alt": ("position/h-sl-meters", 1.0),
    "roll": ("attitude/phi-rad", 1.0), "pitch": ("attitude/theta-rad", 1.0), "psi": ("attitude/psi-rad", 1.0),
    "u": ("velocities/u-fps", FT), "v": ("velocities/v-fps", FT), "w": ("velocities/w-fps", FT),
    "vc": ("velocities/vc-fps", FT), "vt": ("velocities/vt-fps", FT),
    "vn": ("velocities/v-north-fps", FT), "ve": ("velocities/v-east-fps", FT), "vd": ("velocities/v-down-fps", FT),
    "p": ("velocities/p-rad_sec", 1.0), "q": ("velocities/q-rad_sec", 1.0), "r": ("velocities/r-rad_sec", 1.0),
    "nx": ("accelerations/n-pilot-x-norm", 1.0), "ny": ("accelerations/n-pilot-y-norm", 1.0),
    "nz": ("accelerations/n-pilot-z-norm", 1.0),
}
_CONTROLS = ("fcs/aileron-cmd-norm", "fcs/elevator-cmd-norm", "fcs/rudder-cmd-norm", "fcs/throttle-cmd-norm")


class Aircraft:
    """One trimmed JSBSim F-16 plus the state the task layer reads (refreshed by `sense`)."""

    def __init__(self, name: str, lat: float, lon: float, alt_m: float, heading_deg: float, u_mps: float):
        import jsbsim  # lazy: envs/lag.py checks availability first

        jsbsim.FGJSBBase().debug_lvl = 0  # silences the start-up banner of every FGFDMExec
        self.name = name
        fdm = jsbsim.FGFDMExec(jsbsim.get_default_root_dir())
        fdm.set_debug_level(0)
        fdm.load_model("f16")
        for prop, value in (("ic/lat-geod-deg", lat), ("ic/long-gc-deg", lon), ("ic/h-sl-ft", alt_m / FT),
                            ("ic/psi-true-deg", heading_deg), ("ic/u-fps", u_mps / FT)):
            fdm[prop] = value
        fdm.set_dt(1.0 / 60.0)
        fdm.run_ic()
        fdm.get_propulsion().init_running(-1)
        fdm.get_propulsion().get_steady_state()
        fdm["simulation/do_simple_trim"] = 1  # level flight: without it the F-16 dives
        self.fdm = fdm
        manager = fdm.get_property_manager()
        self._nodes = {k: (manager.get_node(p), f) for k, (p, f) in _READ.items()}
        self._controls = [manager.get_node(p) for p in _CONTROLS]
        self.trim_throttle = float(fdm["fcs/throttle-cmd-norm"])
        self.alive, self.crashed, self.shot_down = True, False, False
        self.time = 0.0
        self.missiles_left, self.kills = 0, 0
        self.last_launch_step = -10**9
        self.sense()

    def sense(self) -> None:
        """Copy JSBSim's properties into attributes (SI units) and the NEU kinematics."""
        for key, (node, factor) in self._nodes.items():
            setattr(self, key, node.get_double_value() * factor)
        self.pos = geodetic_to_neu(self.lat, self.lon, self.alt)
        self.vel = (self.vn, self.ve, -self.vd)
        self.kin = Kinematics(self.pos, self.vel, self.u)

    def track(self) -> None:
        """Refresh only position and velocity (what a missile chasing us needs each sub-step)."""
        nodes = self._nodes
        self.pos = geodetic_to_neu(nodes["lat"][0].get_double_value(), nodes["lon"][0].get_double_value(),
                                   nodes["alt"][0].get_double_value())
        self.vel = (nodes["vn"][0].get_double_value() * FT, nodes["ve"][0].get_double_value() * FT,
                    -nodes["vd"][0].get_double_value() * FT)

    def set_controls(self, aileron: float, elevator: float, rudder: float, throttle: float) -> None:
        for node, value in zip(self._controls, (aileron, elevator, rudder, throttle)):
            node.set_double_value(value)

    def run(self) -> None:
        self.fdm.run()
        self.time += 1.0 / 60.0


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

    def step(self, dt: float) -> None:
        m, tgt = self.model, self.target
        if not self.alive:
            return
        if not tgt.alive:
            self.state = "miss"
            return
        v = self.vel
        speed = _norm(v)
        r, w = _sub(tgt.pos, self.pos), _sub(tgt.vel, v)
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
        if _norm(_sub(tgt.pos, self.pos)) <= m.kill_radius:
            self.state = "hit"
        elif self.t >= m.life or (self.t > m.burn_time and self.speed < m.min_speed) or self.pos[2] <= 0.0:
            self.state = "miss"


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
