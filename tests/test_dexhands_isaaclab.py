"""The Isaac Lab backend of dexhands (envs/dexhands/isaaclab_backend.py). Isaac Lab needs
an NVIDIA GPU and is not installed here, so the conversion is tested against
`FakeDirectMARLEnv`, a TEST DOUBLE of the `DirectMARLEnv` API (tests/isaac_doubles.py) —
never a family, never the simulator. Also: backend choice, the one-line refusals, the
results label and the report's refusal to compare the port with the paper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from isaac_doubles import E, FakeDirectMARLEnv

import envs
from envs.dexhands import isaaclab_backend, tasks
from envs.errors import ConfigError, EnvUnavailable
from harness.report import write_report
from harness.report.synthetic import write_run
from harness.suites import load_suite

ROOT = Path(__file__).resolve().parents[1]
R, L = FakeDirectMARLEnv.RIGHT_ACT, FakeDirectMARLEnv.LEFT_ACT


def adapter(**fake_kwargs) -> tuple[isaaclab_backend.IsaacLabVecEnv, FakeDirectMARLEnv]:
    fake = FakeDirectMARLEnv(**fake_kwargs)
    return isaaclab_backend.IsaacLabVecEnv(fake, "Over", fake.max_episode_length - 1), fake


def zeros() -> list[np.ndarray]:
    return [np.zeros((E, R), np.float32), np.zeros((E, L), np.float32)]


def test_spec_splits_the_agents_in_possible_agents_order_and_labels_the_port():
    env, _ = adapter()
    spec = env.spec
    assert (spec.family, spec.task, spec.n_agents, env.n_envs) == ("dexhands", "Over[isaaclab]", 2, E)
    assert [s.shape for s in spec.obs_spaces] == [(6,), (5,)] and spec.state_space.shape == (11,)
    assert [s.shape for s in spec.action_spaces] == [(R,), (L,)]
    assert all(s.low.min() == -1.0 and s.high.max() == 1.0 for s in spec.action_spaces)
    assert spec.episode_limit == 5 and "not the paper's Isaac Gym task" in spec.results_note


def test_reset_converts_each_agents_observation_and_the_state_without_reseeding():
    env, fake = adapter()
    step = env.reset(seed=123)
    assert fake.reset_seeds == [None]  # DirectMARLEnv.seed would reseed torch/numpy process-wide
    assert step.obs[0].dtype == np.float32 and step.obs[0].shape == (E, 6) and step.obs[1].shape == (E, 5)
    np.testing.assert_array_equal(step.obs[0][:, :2], [[0, 1], [1, 1], [2, 1]])  # right hand: +1
    np.testing.assert_array_equal(step.obs[1][:, :2], [[0, -1], [1, -1], [2, -1]])  # left hand: -1
    np.testing.assert_array_equal(step.state, np.concatenate(step.obs, axis=1))
    assert step.avail_actions is None and step.alive.all() and not step.done.any()


def test_actions_go_to_their_agent_clipped_to_the_box_and_reward_is_the_team_reward():
    env, fake = adapter()
    env.reset()
    right, left = np.full((E, R), 0.5, np.float32), np.full((E, L), 3.0, np.float32)
    step = env.step([right, left])
    np.testing.assert_array_equal(fake.last_actions["right_hand"].numpy(), right)
    np.testing.assert_array_equal(fake.last_actions["left_hand"].numpy(), np.ones((E, L)))  # clipped to 1
    np.testing.assert_allclose(step.reward, [R * 0.5 + 10 * 1.0] * E)
    assert step.reward.dtype == np.float32 and step.reward.shape == (E,)


def test_drop_terminates_time_out_truncates_and_final_views_are_the_last_ones():
    env, fake = adapter(max_episode_length=6, drop_at={1: 2})
    env.reset()
    env.step(zeros())
    step = env.step(zeros())  # step 2: env 1 drops the ball
    assert step.terminated.tolist() == [False, True, False] and not step.truncated.any()
    assert fake.reset_calls[-1] == [1]
    # the returned row is the new episode's first view; final_obs is the dropped episode's last
    assert (step.obs[0][1, 2], step.obs[0][1, 3]) == (0, 1)
    assert (step.info["final_obs"][0][1, 2], step.info["final_obs"][0][1, 3]) == (2, 0)
    assert (step.info["final_obs"][1][1, 2], step.info["final_state"][1, 2]) == (2, 2)
    np.testing.assert_array_equal(step.info["final_obs"][0][[0, 2]], step.obs[0][[0, 2]])
    assert [(e["env_index"], e["length"]) for e in step.info["episodes"]] == [(1, 2)]
    for _ in range(2):
        step = env.step(zeros())
    step = env.step(zeros())  # step 5 = max_episode_length - 1: envs 0 and 2 time out
    assert step.truncated.tolist() == [True, False, True] and not step.terminated.any()
    assert sorted((e["env_index"], e["length"]) for e in step.info["episodes"]) == [(0, 5), (2, 5)]
    assert step.info["final_obs"][0][0, 2] == 5 and step.obs[0][0, 2] == 0


def test_one_agent_terminated_is_not_an_end_and_returns_sum_the_rewards():
    env, _ = adapter(max_episode_length=4, one_agent_at={0: 1})
    env.reset()
    step = env.step([np.full((E, R), 0.25, np.float32), np.zeros((E, L), np.float32)])
    assert not step.done.any()  # DirectMARLEnv resets only when every agent is done
    for _ in range(2):
        step = env.step([np.full((E, R), 0.25, np.float32), np.full((E, L), 0.1, np.float32)])
    assert step.truncated.all()
    assert [e["return"] for e in step.info["episodes"]] == pytest.approx([0.75 + 2 * (0.75 + 1.0)] * E)


def test_set_state_restarts_every_env_and_close_releases_the_env():
    env, fake = adapter()
    env.reset()
    env.step(zeros())
    assert len(env.get_state()) == E
    env.set_state(env.get_state())
    assert fake.reset_calls[-1] == [0, 1, 2] and fake.episode_length_buf.tolist() == [0] * E
    env.close()
    env.close()
    assert fake.closed


def test_backend_choice_prefers_isaac_lab_and_labels_the_results(monkeypatch):
    monkeypatch.setattr(tasks, "installed", lambda name: name in ("isaacsim", "isaaclab", "isaaclab_tasks"))
    assert tasks.Config().backend == "isaaclab" and tasks.resolve_backend(tasks.Config(backend="auto")) == "isaaclab"
    assert tasks.Config(backend="isaaclab").substitute() == "isaaclab"
    assert tasks.Config(backend="isaacgym").substitute() is None  # the paper's simulator
    monkeypatch.setattr(tasks, "installed", lambda name: False)
    assert tasks.Config().backend == "isaacgym"
    with pytest.raises(ConfigError, match="env.backend must be one of auto, isaacgym, isaaclab"):
        envs.make("dexhands", "Over", backend="isaacsim")


@pytest.mark.parametrize("task", [t for t in tasks.TASKS if t != "Over"])
def test_other_tasks_refuse_isaac_lab_naming_isaac_gym_and_its_python(task):
    with pytest.raises(ConfigError) as info:
        envs.make("dexhands", task, backend="isaaclab")
    message = str(info.value)
    assert "\n" not in message and f"dexhands task {task} has no Isaac Lab port" in message
    assert "env.backend=isaacgym" in message and "Python 3.6-3.8" in message


def test_missing_isaac_lab_is_one_line_with_the_install_command_and_the_gpu():
    with pytest.raises(EnvUnavailable) as info:
        envs.make("dexhands", "Over", backend="isaaclab")
    message = str(info.value)
    assert "\n" not in message
    assert "pip install 'isaaclab[isaacsim,all]==2.3.2.post1' --extra-index-url https://pypi.nvidia.com" in message
    assert "NVIDIA RTX GPU" in message and "Python 3.11" in message


def test_missing_isaac_gym_for_over_points_to_isaac_lab_in_the_same_line():
    with pytest.raises(EnvUnavailable) as info:
        envs.make("dexhands", "Over", backend="isaacgym")
    message = str(info.value)
    assert "\n" not in message and "Isaac Gym Preview 4" in message
    assert "Over also runs on Isaac Lab's port with env.backend=isaaclab" in message
    with pytest.raises(EnvUnavailable) as info:
        envs.make("dexhands", "Pen", backend="isaacgym")
    assert "isaaclab" not in str(info.value)


def test_run_without_isaac_lab_exits_2_with_one_line_and_writes_nothing(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "harness.run", "env=dexhands", "task=Over", "env.backend=isaaclab", "algo=random",
         "budget=1000", "eval_every=1000", f"results_dir={tmp_path / 'results'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "isaaclab[isaacsim,all]" in lines[0] and "GPU" in lines[0], out.stderr
    assert not (tmp_path / "results").exists()


def test_episode_length_is_the_papers_unless_set():
    assert tasks.episode_length("Over", tasks.Config(backend="isaaclab")) == 75
    assert tasks.episode_length("Over", tasks.Config(backend="isaaclab", episode_length=449)) == 449


def test_suite_runs_over_on_the_detected_backend_and_pins_isaac_gym_elsewhere():
    runs = load_suite("paper_dexhands")["runs"]
    pinned = {r["task"]: "env.backend=isaacgym" in r.get("overrides", []) for r in runs}
    assert pinned == {t: t != "Over" for t in tasks.TASKS}


def test_report_never_compares_the_port_with_the_papers_numbers(tmp_path):
    suite = tmp_path / "paper_dexhands"
    steps = np.array([0, 25_000_000, 50_000_000])
    for k in range(3):
        write_run(suite / "dexhands" / "Over@isaaclab" / "hasac" / f"seed_{k}", steps, np.array([0.0, 5.0, 9.0]))
    out = write_report([suite], tmp_path / "report", reps=100, seed=0, normalisation="paper", figures=False)
    row = pd.read_csv(out / "table.csv").iloc[0]
    assert row["task"] == "Over@isaaclab" and row["verdict"] == "not comparable: isaaclab backend"
    assert np.isnan(row["published"]) and "substitute for the published simulator" in row["source"]


class FakeAppLauncher:
    """TEST DOUBLE of isaaclab.app.AppLauncher: records how it was started."""

    started: list = []

    def __init__(self, **kwargs):
        FakeAppLauncher.started.append(kwargs)
        self.app = object()


def test_make_starts_the_app_once_and_configures_the_port(monkeypatch):
    """The start-up path of envs.make with the isaaclab backend, against test doubles of
    isaaclab.app, isaaclab_tasks.utils.parse_env_cfg and gymnasium.make."""
    import types

    import gymnasium

    FakeAppLauncher.started = []
    monkeypatch.setattr(tasks, "installed", lambda name: True)
    monkeypatch.setattr(isaaclab_backend, "_APP", [])
    cfgs, built = [], []

    def parse_env_cfg(task_id, device, num_envs):
        cfgs.append(types.SimpleNamespace(task_id=task_id, device=device, num_envs=num_envs, seed="unset",
                                          episode_length_s=7.5, decimation=2, sim=types.SimpleNamespace(dt=1 / 120)))
        return cfgs[-1]

    def make(task_id, cfg):
        if built:
            raise RuntimeError("Simulation context already exists. Cannot create a new one.")
        built.append((task_id, cfg))
        return types.SimpleNamespace(unwrapped=FakeDirectMARLEnv())

    for name, attrs in {"isaaclab": {}, "isaaclab.app": {"AppLauncher": FakeAppLauncher}, "isaaclab_tasks": {},
                        "isaaclab_tasks.utils": {"parse_env_cfg": parse_env_cfg}}.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(gymnasium, "make", make)
    env = envs.make("dexhands", "Over", n_envs=E, seed=7, backend="isaaclab")
    assert FakeAppLauncher.started == [{"headless": True}]
    cfg = cfgs[0]
    assert (cfg.task_id, cfg.device, cfg.num_envs, cfg.seed) == ("Isaac-Shadow-Hand-Over-Direct-v0", "cuda:0", E, 7)
    # Over times out at episode_length_buf >= ceil(episode_length_s / step_dt) - 1: 75 steps
    assert int(np.ceil(cfg.episode_length_s / (cfg.sim.dt * cfg.decimation))) - 1 == 75
    assert env.spec.task == "Over[isaaclab]" and env.spec.episode_limit == 75
    # a second simulation while this one is open (the evaluation env) goes to a worker process
    monkeypatch.setattr(isaaclab_backend, "ProcessBatchedEnv", lambda factory: ("worker", factory))
    kind, factory = envs.make("dexhands", "Over", n_envs=2, seed=8, backend="isaaclab")
    assert kind == "worker" and factory.func is isaaclab_backend.build and factory.args[2:] == (2, 8)
    with pytest.raises(ConfigError, match="one simulation per process") as info:  # Isaac Lab's own refusal
        isaaclab_backend.build("Over", tasks.Config(backend="isaaclab"), E, 9)
    assert "\n" not in str(info.value) and len(FakeAppLauncher.started) == 1
    env.close()
    assert not isaaclab_backend._OPEN


def test_a_worker_simulation_raises_the_same_one_line_error():
    """The second simulation's worker (a spawned interpreter without Isaac Lab here) hands
    its EnvUnavailable back unchanged, so the harness still prints one line."""
    from functools import partial

    from envs.base import ProcessBatchedEnv

    with pytest.raises(EnvUnavailable, match=r"pip install 'isaaclab\[isaacsim,all\]") as info:
        ProcessBatchedEnv(partial(isaaclab_backend.build, "Over", tasks.Config(backend="isaaclab"), E, 0))
    assert "\n" not in str(info.value)
