"""StarCraft Multi-Agent Challenge (SMAC v1 maps; SMACv2 scenarios as family smacv2,
envs/smacv2.py, which shares this package), two backends behind one task table.

- `tasks.py`: the map table (`MAPS`), `Config` and the backend choice.
- `sc2.py`: `env.backend=sc2`, the real game through smacv2, one `SingleEnv` per copy.
- `smax.py`: `env.backend=smax`, JaxMARL's SMAX, every copy in one `jax.vmap`-ed call (a
  `BatchedEnv`); its tasks are labelled `<map>[smax]`.
- `actions.py`: SMAC's action layout on SMAX, so a policy sees the same action meanings on
  either backend.
- `harl_state.py`: HARL's per-agent "FP" state and "EP" global state from smacv2's game
  (sc2, `env.state_type`).

The default (or `auto`) backend is sc2 when StarCraft II is installed, smax otherwise. The
feature-pruned per-agent state (HARL's `state_type: FP`, one state per agent,
EnvSpec.agent_states) is sc2's default (`env.state_type=official`) and SMAX's
`env.fp_state=true` (smax.py `harl_agent_states`).
"""

from __future__ import annotations

from functools import partial

from envs.errors import ConfigError, EnvUnavailable
from envs.smac.tasks import FAMILY_TASKS, MAPS, Config, check

TASKS = FAMILY_TASKS["smac"]
__all__ = ["MAPS", "TASKS", "Config", "env_factory", "make_vec"]


def make_vec(task: str, config: Config, n_envs: int, seed: int | None, family: str = "smac"):
    """envs.make's hook: the vmapped SMAX batch, or None for the per-copy sc2 VecEnv."""
    info, backend, limit = check(family, task, config)
    if backend != "smax":
        return None
    from envs.smac.smax import SmaxVecEnv

    return SmaxVecEnv(family, task, info, limit, n_envs, seed, harl_obs=config.harl_obs,
                      harl_state=config.harl_state, fp_state=config.fp_state)


def env_factory(task: str, config: Config, family: str = "smac"):
    """Validate now; build sc2 copies later (SMAX copies are built by make_vec)."""
    from envs.smac import sc2
    from envs.smac.tasks import sc2_installed

    info, backend, limit = check(family, task, config)
    if backend == "smax":
        raise ConfigError(f"env={family} backend=smax is one vectorised env; build it with envs.make")
    sc2.import_smacv2()
    if not sc2_installed():  # fail before a run writes anything, not at the first reset
        raise EnvUnavailable(f"env={family} backend=sc2 found no StarCraft II: {sc2.SC2_INSTALL}")
    return partial(sc2.Sc2Env, task, info, config.episode_limit, str(config.difficulty), family=family,
                   obs_extras=config.obs_extras, state_type=config.state_type)
