"""Algorithms behind one CTDE interface; see algos/common/registry.py for the table."""

from algos.base import AlgoConfig, Algorithm
from algos.common.registry import ALGORITHMS, algorithm_class, check_compatible, config_class

__all__ = ["ALGORITHMS", "AlgoConfig", "Algorithm", "algorithm_class", "check_compatible", "config_class"]
