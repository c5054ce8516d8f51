"""Light Aircraft Game: 2v2 F-16 air combat over PyPI JSBSim, a clean reimplementation.

A reimplementation from the published description of LAG's 2v2 tasks (the LAG paper and
HARL's README; the terms it leaves open are our choices, in sim.py), not the original
(GPL) LAG/HARL code, so returns are NOT comparable with the paper's numbers.

The package, bottom up:
- `sim`: JSBSim F-16s (60 Hz, NEU frame), our PID autopilot, the point-mass missile, the
  geometry, the crash rules and the reward terms, each a plain function or small class;
- `combat`: the two 2v2 tasks (`LagEnv`);
- `heading`: `1-Heading`, one F-16 flown surface by surface (`HeadingEnv`), the task for
  training a learned low-level controller with our own algorithms;
- `view`: a PNG of one episode's trajectories (`python -m harness.view RUN_DIR` for a run,
  `python -m envs.lag.view --policy hold` without one).

Tasks (Red = our 2 learned agents, Blue = the built-in opponent):
- `2v2-NoWeapon-vsBaseline`: Blue pursues (matches its first enemy's altitude and speed and
  turns toward it). Obs 27 per agent, state 108.
- `2v2-ShootMissile-vsBaseline`: 2 missiles per aircraft; Blue flies a scripted evasive
  schedule once a missile is inbound and fires whenever the launch constraints allow.
  Obs 33 per agent, state 132.
- `1-Heading`: one F-16, Box(4) surfaces, rewarded for reaching random altitude/heading/speed
  targets; our PID's score on it is the bar a learned controller has to beat.

Deviations from the original, on purpose:
- Actions. The original is hierarchical MultiDiscrete [3, 5, 3] (Δaltitude, Δheading,
  Δspeed; ShootMissile adds fire [2]). Our algorithms take Discrete or Box per agent, so the
  product is flattened into one Discrete(45) (Discrete(90) with fire), in row-major order
  of (Δalt, Δheading, Δspeed[, fire]): the same joint choices, one categorical over them.
- Low-level control. The original feeds the targets to a pretrained GRU (GPL weights);
  we fly them with our own PID autopilot (sim.Autopilot), so the dynamics differ.
- Terms the spec leaves open (orientation/range functions, missile thrust, the evasive
  schedule, the missile-posture formula) are our choices, documented in sim.py.
- Dead aircraft stop being simulated; other aircraft see zeros in their feature block.
- Initial conditions are fixed (as in the original); the seed changes nothing physical.

Snapshots: JSBSim has no cheap exact copy of its whole state (FCS filters, engine), so
`get_state` stores the actions taken since the last reset and `set_state` replays them
after a reset; JSBSim is deterministic, so this is bit-identical (tests/test_lag.py checks).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import partial

from envs.base import FamilyConfig
from envs.errors import ConfigError, EnvUnavailable
from envs.lag.sim import SUBSTEPS  # plain Python: jsbsim itself is imported when an aircraft is built

COMBAT_TASKS = ("2v2-NoWeapon-vsBaseline", "2v2-ShootMissile-vsBaseline")
HEADING_TASK = "1-Heading"
TASKS = (*COMBAT_TASKS, HEADING_TASK)
RESULTS_NOTE = ("reimplementation of LAG on PyPI JSBSim with our PID autopilot, not the original code: "
                "returns are not comparable with the paper's")


@dataclass
class Config(FamilyConfig):
    episode_limit: int = 1000
    """Agent steps (0.2 s each) before truncation (spec: 1,000 = 200 s)."""
    autopilot_every: int = 12
    """FDM sub-steps between autopilot updates (12 = once per decision, like the original's
    low-level policy; smaller = a faster control loop, slower env)."""


def check_jsbsim() -> None:
    if importlib.util.find_spec("jsbsim") is None:
        raise EnvUnavailable("env=lag needs the JSBSim flight model: pip install 'hasac-bench[lag]' (jsbsim==1.3.3)")


def env_factory(task: str, config: Config):
    """Validate the task, the config and jsbsim now; build copies later."""
    if task not in TASKS:
        raise ConfigError(f"unknown lag task {task!r}; valid tasks: {', '.join(TASKS)}")
    if int(config.episode_limit) < 1:
        raise ConfigError(f"env.episode_limit must be >= 1, got {config.episode_limit}")
    if not 1 <= int(config.autopilot_every) <= SUBSTEPS:
        raise ConfigError(f"env.autopilot_every must be in 1..{SUBSTEPS}, got {config.autopilot_every}")
    check_jsbsim()
    if task == HEADING_TASK:
        from envs.lag.heading import HeadingEnv

        return partial(HeadingEnv, config)
    from envs.lag.combat import LagEnv

    return partial(LagEnv, task, config)


def draw_episode(task, config: Config, act, seed: int, out, title: str) -> dict:
    """The family's view hook (`python -m harness.view RUN_DIR`): one episode of `act`
    drawn to a PNG; envs/lag/view.py, loaded only when drawing."""
    check_jsbsim()
    from envs.lag.view import draw_episode as draw

    return draw(task, config, act, seed, out, title)
