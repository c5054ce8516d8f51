"""`python -m harness.view RUN_DIR [--out FILE] [--seed K]`: fly one episode of a run's
greedy policy and draw it, for families that can draw one (a family module's
`draw_episode(task, config, act, seed, out, title)` hook, e.g. LAG's trajectories)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from envs import family_module, make_config
from envs.errors import UserError
from harness.layout import RunPath
from harness.policy import load_policy, read_run_config, run_env_fields


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.view", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run directory (config.yaml + checkpoints/latest.pt)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed")
    parser.add_argument("--out", type=Path, default=Path("episode.png"))
    args = parser.parse_args(argv)
    path = RunPath(args.run_dir)
    try:
        family, task, fields = run_env_fields(read_run_config(path))
        draw = getattr(family_module(family), "draw_episode", None)
        if draw is None:
            raise UserError(f"env={family} has no episode view (a family module's draw_episode hook)")
        algo = load_policy(path)
        info = draw(task, make_config(family, **fields), lambda step: algo.act(step, explore=False), args.seed,
                    args.out, f"{family}/{task} — {path}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {info}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
