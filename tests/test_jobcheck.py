"""Classifying a sweep's jobs (harness/jobcheck.py) and keeping simulators' output off the
terminal (harness/quiet.py)."""

import ctypes
import os
import sys
import warnings

import pytest

import envs
from algos.common.registry import config_class
from envs.errors import ConfigError
from harness.jobcheck import (NO_SIMULATOR, NOT_APPLICABLE, PROCESS_RESERVE, RUNNABLE, TOO_LARGE, MemoryShare,
                              Prober, classify, count_line, jobs_text, reason_lines, seed_text)
from harness.quiet import captured


def verdict(algo: str, family: str, task: str, prober=None, **fields):
    return classify(algo, config_class(algo)(), family, task, fields, prober or Prober())


def test_an_algorithm_that_fits_the_space_is_runnable_and_one_that_does_not_is_na():
    ok = verdict("hasac", "matrix", "climbing")
    assert ok.kind == RUNNABLE and ok.reason == "" and ok.spec.action_kind == "discrete"
    na = verdict("hatd3", "matrix", "climbing")
    assert na.kind == NOT_APPLICABLE
    # one reason for every discrete task: no task name in it, so the dry run groups them
    assert na.reason == "hatd3 cannot act in discrete action spaces (it supports: box)"
    assert verdict("hatd3", "matrix", "penalty").reason == na.reason


def test_a_missing_simulator_is_classified_with_the_familys_install_line():
    """Isaac Gym is not installable here: the real dexhands adapter reports it."""
    pytest.importorskip("torch")
    found = verdict("hasac", "dexhands", "ShadowHandOver")
    assert found.kind == NO_SIMULATOR and found.spec is None
    assert found.reason.startswith("env=dexhands needs NVIDIA Isaac Gym") and "\n" not in found.reason


def test_a_replay_larger_than_the_memory_is_too_large_here_and_a_single_run_stops_in_one_line():
    """The bytes an off-policy config declares are those its replay table allocates; a job
    that needs more than the memory given is not runnable, with one reason per cause."""
    import torch

    from algos.common.replay import ReplayBuffer

    config = config_class("hasac")(buffer_size=1000)
    spec = verdict("hasac", "mpe", "simple_spread").spec
    table = ReplayBuffer(spec, config.buffer_size, 3, config.gamma, config.n_step, torch.device("cpu")).table
    need = config.memory_bytes(spec, 3)
    assert need == table.numel() * table.element_size()
    exact = MemoryShare(total=need + PROCESS_RESERVE)
    assert exact.per_seed == need
    fits = classify("hasac", config, "mpe", "simple_spread", {}, Prober(), n_envs=3, memory=exact)
    assert fits.kind == RUNNABLE
    short = MemoryShare(total=need + PROCESS_RESERVE - 1)
    large = classify("hasac", config, "mpe", "simple_spread", {}, Prober(), n_envs=3, memory=short)
    assert large.kind == TOO_LARGE and "lower algo.buffer_size" in large.reason and "\n" not in large.reason
    assert classify("hatd3", config_class("hatd3")(buffer_size=1000), "mpe", "simple_spread", {}, Prober(),
                    n_envs=3, memory=short).reason == large.reason  # grouped once in the dry run
    assert classify("happo", config_class("happo")(), "mpe", "simple_spread", {}, Prober(),
                    memory=MemoryShare(total=PROCESS_RESERVE)).kind == RUNNABLE  # declares nothing
    with pytest.raises(ConfigError, match="preallocates"):
        classify("hasac", config, "mpe", "simple_spread", {}, Prober(), strict=True, n_envs=3, memory=short)
    # two jobs at once, or a pack of two seeds, halve what one seed may take
    both = 2 * (need + PROCESS_RESERVE)
    assert MemoryShare(total=both, jobs=2).per_seed == need
    assert MemoryShare(total=both, jobs=1, pack=2).per_seed == need + PROCESS_RESERVE // 2
    assert "over launcher.n_jobs=2" in classify("hasac", config, "mpe", "simple_spread", {}, Prober(), n_envs=3,
                                                memory=MemoryShare(total=both - 2, jobs=2)).reason


def test_a_config_mistake_is_not_a_class_it_stops_the_sweep():
    with pytest.raises(ConfigError, match="unknown matrix task"):
        verdict("hasac", "matrix", "nope")


def test_the_prober_builds_each_env_config_once_and_keeps_its_output_off_the_terminal(monkeypatch, capfd):
    built = []
    real_make = envs.make

    def talkative_make(family, task, **kwargs):
        built.append((family, task))
        print("simulator says hello")
        os.write(2, b"simulator warning on fd 2\n")
        return real_make(family, task, **kwargs)

    monkeypatch.setattr(envs, "make", talkative_make)
    prober = Prober()
    for algo in ("hasac", "happo", "hatd3"):
        verdict(algo, "matrix", "climbing", prober)
    verdict("hasac", "matrix", "penalty", prober)
    assert built == [("matrix", "climbing"), ("matrix", "penalty")]
    out, err = capfd.readouterr()
    assert "simulator" not in out + err
    assert len(prober.output) == 2 and "simulator warning on fd 2" in prober.output[0]


def test_captured_takes_prints_fd_writes_c_stdio_and_warnings_and_restores_the_terminal(tmp_path, capfd):
    log = tmp_path / "sim.log"
    log.write_text("earlier\n")
    with captured(log) as out:
        print("python print")
        sys.stderr.write("python stderr\n")
        os.write(1, b"raw fd 1\n")
        ctypes.CDLL(None).printf(b"c printf\n")
        warnings.warn("a simulator warning", UserWarning)
    print("ours")
    for text in ("python print", "python stderr", "raw fd 1", "c printf", "a simulator warning"):
        assert text in out.text
    assert "earlier" not in out.text and log.read_text().startswith("earlier\n") and "c printf" in log.read_text()
    seen_out, seen_err = capfd.readouterr()
    assert seen_out == "ours\n" and seen_err == ""


def test_captured_output_of_a_crash_is_shown_and_of_a_user_error_is_not(capfd):
    with pytest.raises(RuntimeError):
        with captured():
            print("engine log before the crash")
            raise RuntimeError("boom")
    assert "engine log before the crash" in capfd.readouterr().err
    with pytest.raises(ConfigError):
        with captured():
            print("harmless notice")
            raise ConfigError("bad input")
    assert "harmless notice" not in "".join(capfd.readouterr())


def test_seed_text_compresses_ranges():
    assert seed_text([3, 0, 1, 2, 5, 7, 8]) == "s0-3,5,7-8"
    assert seed_text([4]) == "s4"
    assert seed_text(range(10)) == "s0-9"


def test_jobs_text_lists_tasks_that_share_algorithms_and_seeds_together():
    jobs = [(task, algo, seed) for task in ("smac/MMM2@smax", "smac/corridor@smax") for algo in ("hasac", "qmix")
            for seed in range(3)]
    jobs += [("smac/3m@smax", "hasac", 0)]
    assert jobs_text(jobs) == "smac/MMM2@smax, smac/corridor@smax × hasac, qmix s0-2; smac/3m@smax × hasac s0"


def test_reason_lines_give_each_reason_once_with_its_jobs_most_first():
    jobs = [(NOT_APPLICABLE, "hatd3 cannot act in discrete action spaces", (t, "hatd3", s)) for t in ("a", "b") for s in (0, 1)]
    jobs += [(NO_SIMULATOR, "env=x needs X: pip install x", ("x/t", "hasac", 0))]
    lines = reason_lines(jobs)
    assert len(lines) == 2
    assert lines[0] == "  n/a: hatd3 cannot act in discrete action spaces\n      4 jobs: a, b × hatd3 s0-1"
    assert lines[1] == "  no simulator: env=x needs X: pip install x\n      1 job: x/t × hasac s0"


def test_count_line_counts_each_class_and_always_the_runnable_ones():
    assert count_line([RUNNABLE, RUNNABLE, NOT_APPLICABLE]) == (
        "3 jobs: 2 runnable here, 1 n/a (the algorithm cannot act in the task's action space)")
    assert count_line([NO_SIMULATOR]) == "1 job: 0 runnable here, 1 need a simulator not installed here"
