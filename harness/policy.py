"""A finished or running run's learned policy, loaded from its results directory: the
algorithm its config.yaml names, built on the run's task with the run's hyperparameters,
with the weights of its checkpoint (harness/layout.py)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

import envs
from algos.base import Algorithm
from algos.common.registry import algorithm_class
from envs.base import EnvSpec
from envs.errors import ConfigError
from harness.checkpoint import load_checkpoint
from harness.layout import RunPath


def read_run_config(path: RunPath) -> DictConfig:
    """The run's resolved config.yaml; a directory without it or a checkpoint is a ConfigError."""
    if not path.config.exists() or not path.checkpoint.exists():
        raise ConfigError(f"{path} is not a run directory with a checkpoint (needs {path.config.name} and "
                          f"{path.checkpoint.relative_to(path.dir)})")
    return OmegaConf.load(path.config)


def run_env_fields(cfg: DictConfig) -> tuple[str, str, dict]:
    """(family, task, env fields) of a run's config."""
    fields = OmegaConf.to_container(cfg.env, resolve=True)
    return str(fields.pop("family")), str(cfg.task), fields


def load_policy(path: RunPath, spec: EnvSpec | None = None, device: str = "cpu") -> Algorithm:
    """The run's algorithm with its checkpointed weights (act with explore=False for the
    greedy policy). `spec`: the task's, when the caller has built the env already."""
    cfg = read_run_config(path)
    if spec is None:
        family, task, fields = run_env_fields(cfg)
        probe = envs.make(family, task, n_envs=1, seed=0, **fields)
        spec = probe.spec
        probe.close()
    cls = algorithm_class(str(cfg.choices.algo))
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls.Config), cfg.algo))
    algo = cls(spec, config, int(cfg.n_envs), torch.device(device), int(cfg.seed))
    algo.load_state_dict(load_checkpoint(path.checkpoint)["algo"])
    return algo
