"""A finished or running run's learned policy, loaded from its results directory: the
algorithm its config.yaml names, built on the run's task with the run's hyperparameters,
with the weights of its checkpoint (harness/layout.py)."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

import envs
from algos.base import Algorithm
from algos.common.registry import algorithm_class
from envs.base import EnvSpec
from envs.errors import ConfigError
from harness.checkpoint import load_checkpoint
from harness.layout import RunPath


def run_env_fields(path: RunPath) -> tuple[str, str, dict]:
    """(family, task, env fields) of the run, from its config.yaml."""
    if not path.config.exists() or not path.checkpoint.exists():
        raise ConfigError(f"{path} is not a run directory with a checkpoint (needs {path.config.name} and "
                          f"{path.checkpoint.relative_to(path.dir)})")
    cfg = OmegaConf.load(path.config)
    fields = OmegaConf.to_container(cfg.env, resolve=True)
    return str(fields.pop("family")), str(cfg.task), fields


def load_policy(path: RunPath, spec: EnvSpec | None = None, device: str = "cpu") -> Algorithm:
    """The run's algorithm with its checkpointed weights (act with explore=False for the
    greedy policy). `spec`: the task's, when the caller has built the env already."""
    family, task, fields = run_env_fields(path)
    if spec is None:
        probe = envs.make(family, task, n_envs=1, seed=0, **fields)
        spec = probe.spec
        probe.close()
    cfg = OmegaConf.load(path.config)
    cls = algorithm_class(str(cfg.choices.algo))
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls.Config), cfg.algo))
    algo = cls(spec, config, int(cfg.n_envs), torch.device(device), int(cfg.seed))
    algo.load_state_dict(load_checkpoint(path.checkpoint)["algo"])
    return algo
