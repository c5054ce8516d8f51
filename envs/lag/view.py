"""Debug view for env=lag: fly one episode and draw what every aircraft and missile did.

    python -m harness.view RUN_DIR [--out traj.png]       # greedy policy of a saved run
    python -m envs.lag.view --policy hold --task 2v2-ShootMissile-vsBaseline

`draw_episode` is the family's view hook (harness/view.py loads a run's policy and calls
it). `--policy hold` needs no run: Red keeps altitude, heading and speed (and fires when it
can), which shows the opponent's behaviour. The PNG has a top-down track (east, north in
km; a dot at each start; dotted missile tracks end in a cross) and altitude against time.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import numpy as np

from envs.base import Step
from envs.errors import ConfigError
from envs.lag import Config
from envs.lag.combat import HOLD, WEAPONS, LagEnv, decode

COLOURS = {"A0100": "tab:red", "A0200": "salmon", "B0100": "tab:blue", "B0200": "lightblue"}


def as_step(view) -> Step:
    """One env's AgentView as the batch of one that algorithms act on."""
    zero = np.zeros(1, bool)
    return Step([o[None] for o in view.obs], view.state[None], np.zeros(1, np.float32), zero, zero,
                None, view.alive[None], {})


def fly(env: LagEnv, policy, seed: int) -> tuple[dict, dict, dict]:
    """Positions (NEU, m) per aircraft and missile per decision, and the episode info."""
    view = env.reset(seed)
    tracks = {ac.name: [ac.pos] for ac in env.aircraft}
    missiles: dict[int, list] = {}
    info: dict = {}
    while not info:
        acts = policy(as_step(view))
        view, _, terminated, truncated, info = env.step(acts)
        for ac in env.aircraft:
            if ac.alive or tracks[ac.name][-1] != ac.pos:
                tracks[ac.name].append(ac.pos)
        for m in env.missiles:
            missiles.setdefault(id(m), [m.pos]).append(m.pos)
        if terminated or truncated:
            break
    return tracks, missiles, info


def plot(tracks: dict, missiles: dict, info: dict, title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, side) = plt.subplots(1, 2, figsize=(12, 5.5))
    for name, pts in tracks.items():
        p = np.asarray(pts) / 1000.0
        top.plot(p[:, 1], p[:, 0], color=COLOURS[name], label=name)
        top.plot(p[0, 1], p[0, 0], "o", color=COLOURS[name])
        side.plot(np.arange(len(p)) * 0.2, p[:, 2], color=COLOURS[name], label=name)
    for pts in missiles.values():
        p = np.asarray(pts) / 1000.0
        top.plot(p[:, 1], p[:, 0], ":", color="k", lw=0.8)
        top.plot(p[-1, 1], p[-1, 0], "x", color="k")
    top.set(xlabel="east (km)", ylabel="north (km)", aspect="equal", title="top-down (dotted: missiles)")
    side.set(xlabel="time (s)", ylabel="altitude (km)", title="altitude")
    side.axhline(2.5, color="grey", ls="--", lw=0.8)
    top.legend(loc="best", fontsize=8)
    summary = ", ".join(f"{k}={v}" for k, v in info.items())
    fig.suptitle(f"{title}\n{summary}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def draw_episode(task: str, config: Config, act: Callable[[Step], list[np.ndarray]], seed: int, out: Path,
                 title: str) -> dict:
    """Fly one episode of a 2v2 task with `act` (a batch-of-one policy, e.g. a run's greedy
    algorithm) choosing Red's actions, draw it to `out`; returns the episode info."""
    if task not in WEAPONS:
        raise ConfigError(f"the view draws the 2v2 tasks only ({', '.join(WEAPONS)}), not {task}")
    env = LagEnv(task, config)
    tracks, missiles, info = fly(env, lambda step: [int(np.asarray(a).reshape(-1)[0]) for a in act(step)], seed)
    plot(tracks, missiles, info, title, out)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", choices=["hold"], default="hold", help="Red holds course (a run's policy: "
                        "python -m harness.view RUN_DIR)")
    parser.add_argument("--task", choices=list(WEAPONS), default=next(iter(WEAPONS)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("lag_trajectory.png"))
    args = parser.parse_args(argv)
    env = LagEnv(args.task, Config())
    fire = env.weapons
    hold = HOLD * 2 + 1 if fire else HOLD  # same move, fire bit set
    assert decode(hold, fire)[:3] == (1, 2, 1)
    tracks, missiles, info = fly(env, lambda step: [hold, hold], args.seed)
    plot(tracks, missiles, info, f"lag/{args.task} — hold policy", args.out)
    print(f"wrote {args.out}: {info}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
