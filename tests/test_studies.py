"""The studies (docs/studies.md): the soft-objective estimator against its closed
form, the entropies, the evaluation probes, the reward-scale wrapper, the suites' job tables,
and the report sections on a generated tree and on a real tiny run."""

from __future__ import annotations

import functools
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import envs
import harness.launch  # noqa: F401  before harness.report: submitit's import-time logging set-up closes the
# stream of any absl handler alive then (rliable imports absl), i.e. pytest's capture file
from algos.common.qre import soft_qre, total_variation
from algos.common.registry import algorithm_class
from envs.errors import ConfigError
from envs.matrix import CLIMBING
from envs.wrappers import RewardScale, scale_rewards
from harness.evaluate import ProbedEnv, Probes, analytic_qres, evaluate
from harness.report import write_report
from harness.run import main
from harness.sweep import dry_run_table, prepare_jobs

from algo_helpers import build, toy_env

torch.set_num_threads(1)
PAYOFF = np.array(CLIMBING, float)


def matrix_learner(name: str, seed: int = 0):
    """A fresh `name` learner on climbing whose policy is far from uniform."""
    env = envs.make("matrix", "climbing", n_envs=50, seed=seed)
    config = algorithm_class(name).Config(hidden_sizes=[16], **({"episode_length": 4} if name == "happo" else {}))
    algo = algorithm_class(name)(env.spec, config, 50, torch.device("cpu"), seed)
    with torch.no_grad():
        for p in algo.actors.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)) * 0.5)
    return algo, env


@pytest.mark.parametrize("name", ["hasac", "happo"])
def test_soft_objective_estimate_agrees_with_the_closed_form_on_a_matrix_game(name):
    alpha, scale, episodes = 15.0, 1.5, 6000  # the QRE of (c·R, α) = that of (R, 10): unique
    algo, env = matrix_learner(name)
    probes = Probes(soft=True, alpha=alpha, reward_scale=scale, payoff=(PAYOFF.shape, PAYOFF.tobytes()))
    row = evaluate(algo, ProbedEnv(env, probes), episodes, seed=3).row(None)
    p0, p1 = algo.policy_probs(env.reset(0))
    assert total_variation(p0, np.full(3, 1 / 3)) > 0.05  # a policy worth testing on
    expected_return = float(p0 @ PAYOFF @ p1)
    entropy = float(-(p0 * np.log(p0)).sum() - (p1 * np.log(p1)).sum())
    closed_form = scale * expected_return + alpha * entropy
    std_error = scale * math.sqrt(float(p0 @ PAYOFF**2 @ p1) - expected_return**2) / math.sqrt(episodes)
    assert abs(row["eval_soft_objective"] - closed_form) < 4 * std_error
    assert row["eval_soft_objective_exact"] == pytest.approx(closed_form, abs=1e-6)
    assert row["eval_entropy"] == pytest.approx(entropy, abs=1e-5)  # exact for categorical policies
    assert abs(row["eval_stochastic_return"] - expected_return) < 4 * std_error / scale
    qre = soft_qre(PAYOFF, alpha / scale)
    assert row["eval_qre_tv"] == pytest.approx(max(total_variation(p0, qre[0]), total_variation(p1, qre[1])), abs=1e-9)


def test_qre_distance_is_to_the_nearest_soft_qre():
    payoff = (PAYOFF.shape, PAYOFF.tobytes())
    assert len(analytic_qres(payoff, 10.0)) == 1  # unique at large α (tests/test_hasac.py)
    qres = analytic_qres(payoff, 0.01)  # near the two strict equilibria (0, 0) and (1, 1)
    assert sorted(tuple(int(np.argmax(p)) for p in q) for q in qres) == [(0, 0), (1, 1)]
    for qre in qres:  # fixed points of the iteration
        assert all(np.allclose(p, q, atol=1e-6) for p, q in zip(qre, soft_qre(PAYOFF, 0.01, init=qre)))


@pytest.mark.parametrize("box_action", ["official", "affine"])
def test_squashed_gaussian_entropy_matches_its_narrow_limit(box_action):
    # σ → 0: a = scale(tanh(u)) is nearly affine around μ, so H(a) ≈ Σ_j [½ log(2πe σ²) +
    # log(1 − tanh²μ_j) + log((high_j − low_j)/2)], without the last term for HARL's log π
    # (the density of tanh(u), box_action=official)
    algo, env = build("hasac", env=toy_env(n_envs=256), box_action=box_action)
    mu, sigma = 0.3, 0.01
    with torch.no_grad():
        for actor in algo.actors:
            for head, value in ((actor.mu, mu), (actor.log_std, math.log(sigma))):
                head.weight.zero_()
                head.bias.fill_(value)
    sample = algo.sample_policy(env.reset(0), torch.Generator().manual_seed(0))
    for i, space in enumerate(env.spec.action_spaces):
        expected = sum(0.5 * math.log(2 * math.pi * math.e * sigma**2) + math.log(1 - math.tanh(mu) ** 2)
                       + (math.log((hi - lo) / 2) if box_action == "affine" else 0.0) for lo, hi in zip(space.low, space.high))
        # each row is a 16-draw Monte-Carlo estimate (std ≈ 0.25 nats here); their mean is tight
        assert abs(sample.entropy[i].mean() - expected) < 0.06 and sample.entropy[i].std() < 0.5
        assert sample.actions[i].dtype == np.float32 and np.all(sample.actions[i] <= space.high)


def test_deterministic_policies_have_no_soft_objective():
    algo, env = build("hatd3")
    row = evaluate(algo, ProbedEnv(env, Probes(soft=True, alpha=1.0)), 4, seed=0).row(None)
    assert math.isnan(row["eval_soft_objective"]) and math.isnan(row["eval_entropy"])


def test_action_perturbation_and_observation_noise_columns():
    algo, env = matrix_learner("hasac")
    probes = Probes(obs_noise=(0.3,), action_noise=(0.0, 1.0))
    row = evaluate(algo, ProbedEnv(env, probes), 3000, seed=1).row(None)
    assert row["eval_return_actnoise_0"] == row["eval_return_mean"]  # p = 0 changes nothing
    assert row["eval_return_actnoise_1"] == pytest.approx(PAYOFF.mean(), abs=1.0)  # uniform joint actions
    assert row["eval_return_obsnoise_0.3"] == row["eval_return_mean"]  # a constant observation has std 0
    toy, toy_env_ = build("hasac")
    rows = evaluate(toy, ProbedEnv(toy_env_, Probes(obs_noise=(0.0, 2.0))), 40, seed=0).row(None)
    assert rows["eval_return_obsnoise_0"] == rows["eval_return_mean"]
    assert rows["eval_return_obsnoise_2"] != rows["eval_return_mean"]


def test_reward_scale_wrapper_scales_what_the_learner_sees_only():
    plain, scaled = toy_env(seed=0), RewardScale(toy_env(seed=0), 10.0)
    actions = [np.full((4, 2), 0.5, np.float32), np.zeros((4, 1), np.float32)]
    plain.reset(0), scaled.reset(0)
    for _ in range(4):
        a, b = plain.step(actions), scaled.step(actions)
        np.testing.assert_allclose(b.reward, 10.0 * a.reward, rtol=1e-6)
        assert [e["return"] for e in a.info["episodes"]] == [e["return"] for e in b.info["episodes"]]
    assert scaled.spec is scaled.env.spec and scaled.n_envs == 4
    snapshotted = RewardScale(envs.make("matrix", "climbing", n_envs=3), 2.0)  # snapshots pass through (resume)
    snapshotted.set_state(snapshotted.get_state())
    assert len(snapshotted.get_state()) == 3
    assert scale_rewards(plain, 1.0) is plain
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ConfigError, match="reward_scale"):
            scale_rewards(plain, bad)


@pytest.mark.parametrize("override,message", [("reward_scale=-2", "reward_scale"), ("eval_action_noise=[1.5]", "eval_action_noise"),
                                              ("eval_obs_noise=[-0.1]", "eval_obs_noise"), ("eval_alpha=0", "eval_alpha")])
def test_bad_study_keys_exit_2_with_one_line(tmp_path, capsys, override, message):
    assert main(["env=matrix", "task=climbing", "algo=hasac", override, f"results_dir={tmp_path}", "progress=false"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not any(tmp_path.rglob("meta.json"))


SUITES = {  # suite: (runs, algorithms, jobs that cannot run: HATD3 on Discrete tasks)
    "ablation_alpha": (32, 1, 0),
    "robustness": (6, 5, 0),
    "monotonic": (5, 4, 3),
    "monotonic_matrix": (2, 3, 0),
    "seed_checks": (4, 2, 1),
    "seed_ant_alpha": (4, 1, 0),
}


@functools.lru_cache(maxsize=None)
def suite_jobs(suite: str) -> tuple[Path, list]:
    """(results dir, jobs) of `suite=<suite> dry_run=true`, composed once per session."""
    results = Path(tempfile.mkdtemp(prefix="studies-suites-"))
    return results, prepare_jobs([f"suite={suite}", "dry_run=true", f"results_dir={results}"])[1]


@pytest.mark.parametrize("suite", list(SUITES))
def test_each_suite_composes_into_its_jobs_in_distinct_directories(suite):
    runs, algos, not_applicable = SUITES[suite]
    results, jobs = suite_jobs(suite)
    assert len(jobs) == runs * algos
    if not any(j.state == "no sim" for j in jobs):  # a missing simulator hides the n/a verdict
        assert sum(not j.compatible for j in jobs) == not_applicable
    assert all("hatd3" == j.algo for j in jobs if not j.compatible and j.state != "no sim")
    assert len({j.path for j in jobs}) == len(jobs)  # every variant lands in its own directory
    assert all(j.path.dir.parts[len(results.parts)] == suite for j in jobs)
    assert f"{runs * algos - not_applicable} jobs to run" in dry_run_table(jobs, results) or any(j.state == "no sim" for j in jobs)


def test_ablation_alpha_sets_each_temperature():
    results, jobs = suite_jobs("ablation_alpha")
    assert "mpe/simple_spread-discrete-auto-official hasac s0" in dry_run_table(jobs, results)
    for job in jobs:
        config = yaml.safe_load(job.config_yaml)
        algo, variant = config["algo"], job.path.task.split("-")
        assert config["soft_eval"]
        if variant[-1].startswith("alpha"):
            assert not algo["auto_alpha"] and algo["alpha"] == float(variant[-1].removeprefix("alpha"))
        else:
            assert algo["auto_alpha"]
            box = config["env"]["family"] == "mamujoco" or config["env"].get("continuous_actions") is True
            # Box tasks keep the default: the Discrete target does not apply to them
            assert algo["discrete_target_entropy"] == ("official" if variant[-1] == "official" or box else "intended")


# -- the report's study sections ----------------------------------------------------------------
def study_run(run_dir: Path, columns: dict[str, np.ndarray], config: dict) -> None:
    """One finished run as harness/records.py lays it out, with these eval.csv columns."""
    run_dir.mkdir(parents=True)
    pd.DataFrame(columns).to_csv(run_dir / "eval.csv", index=False)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "meta.json").write_text(json.dumps({"status": "done"}))
    (run_dir / "DONE").write_text("done\n")


def studies_tree(root: Path) -> Path:
    """A temperature sweep (final return 10·log10(α) + 30 + seed offset, auto at 25), a J/QRE
    comparison with a deterministic algorithm, and perturbation/reward-scale columns with
    known degradations (obs noise −2, action noise −5)."""
    suite, steps = root / "mix", np.array([0, 500, 1000])
    for seed, offset in enumerate([-1.0, 0.0, 1.0]):
        for alpha in (0.01, 0.1, 1.0):
            final = 10 * math.log10(alpha) + 30 + offset
            study_run(suite / "mpe" / f"simple_spread-alpha{alpha:g}" / "hasac" / f"seed_{seed}",
                      {"env_steps": steps, "eval_return_mean": [0, 5, final], "eval_entropy": [3.0, 2.0, 1.0 + alpha]},
                      {"task": "simple_spread", "variant": f"alpha{alpha:g}", "choices": {"algo": "hasac"},
                       "algo": {"auto_alpha": False, "alpha": alpha}})
        study_run(suite / "mpe" / "simple_spread-auto" / "hasac" / f"seed_{seed}",
                  {"env_steps": steps, "eval_return_mean": [0, 5, 25 + offset], "eval_entropy": [3.0, 2.5, 2.0]},
                  {"task": "simple_spread", "variant": "auto", "choices": {"algo": "hasac"},
                   "algo": {"auto_alpha": True, "alpha": 0.001}})
        for algo, j, tv in (("hasac", [1.0, 3.0, 4.0], [0.5, 0.2, 0.01]), ("mehaml_kl", [1.0, 2.0, 4.0], [0.5, 0.3, 0.02]),
                            ("happo", [1.0, 2.5, 2.0], [0.5, 0.4, 0.3])):
            study_run(suite / "matrix" / "climbing" / algo / f"seed_{seed}",
                      {"env_steps": steps, "eval_return_mean": [0, 5, 6], "eval_soft_objective": np.array(j) + offset,
                       "eval_qre_tv": tv}, {"task": "climbing", "variant": "", "choices": {"algo": algo},
                                            "algo": {} if algo == "happo" else {"auto_alpha": False, "alpha": 10.0}})
        for scale in (0.1, 10.0):
            for algo in ("hasac", "hatd3"):
                final = 20 + offset + (scale > 1) * (algo == "hasac") * 10
                study_run(suite / "mamujoco" / f"HalfCheetah-2x3-scale{scale:g}" / algo / f"seed_{seed}",
                          {"env_steps": steps, "eval_return_mean": [0, 5, final], "eval_return_obsnoise_0.1": [0, 3, final - 2],
                           "eval_return_actnoise_0.3": [0, 0, final - 5], "eval_soft_objective": [np.nan] * 3},
                          {"task": "HalfCheetah-2x3", "variant": f"scale{scale:g}", "reward_scale": scale,
                           "choices": {"algo": algo}, "algo": {}})
    return suite


def test_report_gains_temperature_soft_objective_and_robustness_sections(tmp_path):
    out = write_report([studies_tree(tmp_path)], tmp_path / "report", reps=200, seed=0, normalisation="paper")
    report = (out / "report.md").read_text()
    for title in ("## Temperature α", "## Soft objective J(π)", "## Robustness: evaluation perturbations",
                  "## Robustness: reward scale"):
        assert title in report
    temperature = pd.read_csv(out / "studies" / "temperature.csv").set_index("temperature")
    assert list(temperature.index) == ["0.01", "0.1", "1", "auto"]
    np.testing.assert_allclose(temperature.final_mean, [10.0, 20.0, 30.0, 25.0])
    np.testing.assert_allclose(temperature.final_entropy, [1.01, 1.1, 2.0, 2.0])
    assert (temperature.ci_low < temperature.final_mean).all() and (temperature.final_mean < temperature.ci_high).all()
    soft = pd.read_csv(out / "studies" / "soft_objective.csv")
    soft = soft[soft.task == "matrix/climbing"].set_index("algo")
    np.testing.assert_allclose(soft.loc[["hasac", "mehaml_kl", "happo"], "J"], [4.0, 4.0, 2.0])
    np.testing.assert_allclose(soft.loc[["hasac", "mehaml_kl", "happo"], "J_largest_drop"], [0.0, 0.0, 0.5])
    np.testing.assert_allclose(soft.loc[["hasac", "mehaml_kl", "happo"], "qre_tv"], [0.01, 0.02, 0.3])
    degradation = pd.read_csv(out / "studies" / "degradation.csv")
    assert len(degradation) == 2 * 2 * 2  # 2 scale variants × 2 algorithms × 2 perturbations
    np.testing.assert_allclose(degradation[degradation.perturbation == "obsnoise 0.1"].change, -2.0)
    np.testing.assert_allclose(degradation[degradation.perturbation == "actnoise 0.3"].change, -5.0)
    scales = pd.read_csv(out / "studies" / "reward_scale.csv").set_index(["algo", "reward_scale"])
    assert scales.loc[("hasac", 10.0), "final"] == pytest.approx(30.0) and scales.loc[("hatd3", 10.0), "final"] == pytest.approx(20.0)
    for name in ("temperature_final_score", "temperature_entropy", "soft_objective", "robustness_degradation", "reward_scale"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000 and f"figures/{name}.png" in report


def test_a_report_without_study_data_has_no_study_section(tmp_path):
    from harness.report.synthetic import synthetic_tree

    out = write_report([synthetic_tree(tmp_path, ["hasac", "happo"], ["mpe/simple_spread"], seeds=2)], tmp_path / "r",
                       reps=100, seed=0, normalisation="paper", figures=False)
    report = (out / "report.md").read_text()
    assert "## Temperature" not in report and "## Soft objective" not in report and "## Robustness" not in report


def test_real_tiny_runs_end_to_end_into_the_report(tmp_path):
    fast = ["algo.warmup_steps=32", "algo.train_every=8", "algo.updates_per_train=1", "algo.batch_size=32",
            "algo.hidden_sizes=[16]", "algo.n_step=1", "algo.auto_alpha=false", "algo.alpha=10.0"]
    for algo in ("hasac", "mehaml_kl"):
        assert main(["env=matrix", "task=climbing", f"algo={algo}", "budget=160", "eval_every=80", "n_envs=8",
                     "soft_eval=true", "eval_episodes=40", "eval_action_noise=[0.5]", *fast, f"results_dir={tmp_path}",
                     "progress=false"]) == 0
    evals = pd.read_csv(tmp_path / "adhoc" / "matrix" / "climbing" / "mehaml_kl" / "seed_0" / "eval.csv")
    for column in ("eval_soft_objective", "eval_entropy", "eval_qre_tv", "eval_return_actnoise_0.5"):
        assert column in evals and np.isfinite(evals[column]).all()
    out = write_report([tmp_path / "adhoc"], tmp_path / "report", reps=100, seed=0, normalisation="paper", figures=False)
    soft = pd.read_csv(out / "studies" / "soft_objective.csv")
    assert set(soft.algo) == {"hasac", "mehaml_kl"} and np.isfinite(soft.qre_tv).all()


def test_algorithm_configs_name_their_own_temperature():
    from algos.common.registry import config_class

    hasac = config_class("hasac")
    assert hasac(auto_alpha=False, alpha=0.05).fixed_alpha() == 0.05 and hasac(auto_alpha=False, alpha=0.05).temperature_label() == "0.05"
    assert hasac(auto_alpha=True).fixed_alpha() is None and hasac(auto_alpha=True).temperature_label() == "auto"
    assert hasac(auto_alpha=True, discrete_target_entropy="intended").temperature_label() == "auto (intended H̄)"
    assert config_class("mehaml_kl")(auto_alpha=False, alpha=0.2).fixed_alpha() == 0.2  # a HASAC instance
    for name in ("hatd3", "happo", "qmix", "random"):
        assert config_class(name)().fixed_alpha() is None and config_class(name)().temperature_label() is None
