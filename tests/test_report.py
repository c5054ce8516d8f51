"""`python -m harness.report`: statistics by hand, tables with the published numbers, what
did not count, figures, and one-line errors."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import harness.report.figures as figures
from harness.report import main, write_report
from harness.report.stats import aggregate_estimates, probability_of_improvement, task_intervals
from harness.report.synthetic import synthetic_tree, write_run

STEPS = np.array([0, 5_000_000, 10_000_000])


def test_aggregates_match_hand_computed_values():
    # one task, four runs 0, 1, 2, 3: IQM = mean of the middle two = 1.5; mean 1.5; median
    # 1.5; optimality gap = mean(max(1 - x, 0)) = (1 + 0 + 0 + 0) / 4 = 0.25
    points, cis = aggregate_estimates({"a": np.array([[0.0], [1.0], [2.0], [3.0]])}, reps=500, seed=0)
    np.testing.assert_allclose(points["a"], [1.5, 1.5, 1.5, 0.25])
    # identical runs: every bootstrap sample is the same, the CI collapses on the value
    _, flat = aggregate_estimates({"a": np.full((5, 2), 0.4)}, reps=200, seed=0)
    np.testing.assert_allclose(flat["a"], [[0.4, 0.4, 0.4, 0.6]] * 2)
    # two runs 0 and 1: a resampled mean is 0, .5 or 1 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5 and 97.5 percentiles are 0 and 1
    _, two = aggregate_estimates({"a": np.array([[0.0], [1.0]])}, reps=2000, seed=0)
    np.testing.assert_allclose(two["a"][:, 1], [0.0, 1.0])
    one_task = task_intervals(np.array([0.0, 1.0]), reps=2000, seed=0)
    assert (one_task["mean_ci_low"], one_task["mean_ci_high"]) == (0.0, 1.0)
    assert task_intervals(np.array([0.0, 1.0, 2.0, 3.0]), reps=500, seed=0)["iqm"] == 1.5
    assert task_intervals(np.full(4, 2.0), reps=100, seed=0)["iqm_ci_low"] == 2.0


def test_bootstrap_is_reproducible_to_the_digit_and_seed_dependent():
    scores = {"a": np.random.default_rng(0).normal(size=(10, 3))}
    first = aggregate_estimates(scores, reps=300, seed=7)[1]["a"]
    again = aggregate_estimates(scores, reps=300, seed=7)[1]["a"]
    other = aggregate_estimates(scores, reps=300, seed=8)[1]["a"]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_probability_of_improvement_by_hand():
    # every x above every y on both tasks: P = 1; identical scores: 0.5
    x, y = np.array([[2.0, 3.0], [4.0, 5.0]]), np.array([[0.0, 1.0], [1.0, 0.0]])
    points, _ = probability_of_improvement({"hasac": x, "mappo": y, "same": x}, "hasac", reps=100, seed=0)
    assert points["hasac,mappo"] == pytest.approx(1.0) and points["hasac,same"] == pytest.approx(0.5)


def smac_tree(root: Path) -> Path:
    """smac/8m_vs_9m (published: HAPPO 83.8 ± 4.1, MAPPO 87.5 ± 4.0, at 10M steps) with
    HAPPO at ~84 % (3 seeds, one more failed), MAPPO at ~50 % (2 seeds: seed 2 missing)."""
    suite = root / "paper_smac"
    for k, rate in enumerate([0.82, 0.84, 0.86]):
        write_run(suite / "smac" / "8m_vs_9m" / "happo" / f"seed_{k}", STEPS, np.array([0.0, 0.5, rate]), success="win_rate")
    write_run(suite / "smac" / "8m_vs_9m" / "happo" / "seed_3", STEPS[:2], np.array([0.0, 0.1]),
              status="failed", success="win_rate")
    for k, rate in enumerate([0.48, 0.52]):
        write_run(suite / "smac" / "8m_vs_9m" / "mappo" / f"seed_{k}", STEPS, np.array([0.0, 0.3, rate]), success="win_rate")
    return suite


def test_source_column_says_official_behaviour_or_names_the_switches(tmp_path):
    suite = tmp_path / "fidelity"
    for k in range(3):
        write_run(suite / "mpe" / "simple_spread" / "hasac" / f"seed_{k}", STEPS, np.array([-120.0, -80.0, -70.0 - k]),
                  summary={"fidelity": {}})
        write_run(suite / "mpe" / "simple_spread-reward.mpe2" / "hasac" / f"seed_{k}", STEPS, np.array([-80.0, -40.0, -30.0 - k]),
                  summary={"fidelity": {"env.reward": "mpe2", "algo.box_action": "affine"}})
        write_run(suite / "mpe" / "simple_reference" / "hasac" / f"seed_{k}", STEPS, np.array([-60.0, -30.0, -20.0]))
    out = write_report([suite], tmp_path / "report", reps=100, seed=0, normalisation="observed", figures=False)
    source = pd.read_csv(out / "table.csv").set_index("task")["source"]
    assert source["simple_spread"].endswith("; official behaviour")
    assert source["simple_spread-reward.mpe2"].endswith("; differs: algo.box_action=affine, env.reward=mpe2")
    assert source["simple_reference"].endswith("; fidelity not recorded")  # a run from before the record


def test_fidelity_section_pairs_runs_by_their_recorded_switches(tmp_path):
    """IQM = the 25 % trimmed mean: official finals 0, 1, 2, 10 -> mean(1, 2) = 1.5; with
    affine 2, 3, 4, 20 -> 3.5; difference +2. With every seed equal on each side (physics=mpe2
    on simple_reference 4, 4, 4 vs official 1, 1, 1) the CI collapses on the difference, 3."""
    from harness.report.fidelity import base_task, fidelity_table
    from harness.report.load import load_runs

    suite = tmp_path / "fidelity"
    cases = [("simple_spread", {}, [0.0, 1.0, 2.0, 10.0]),
             ("simple_spread-fid.box_action.affine", {"algo.box_action": "affine"}, [2.0, 3.0, 4.0, 20.0]),
             ("simple_reference", {}, [1.0, 1.0, 1.0]),
             ("simple_reference-fid.physics.mpe2", {"env.physics": "mpe2"}, [4.0, 4.0, 4.0]),
             ("simple_speaker_listener-fid.pad_spaces.none", {"env.pad_spaces": "none"}, [5.0, 6.0, 7.0]),  # no baseline
             # a setting that is no switch (HARL's thread count) is named by its variant token,
             # with its config section where config.yaml has it in one (HARL's ValueNorm)
             ("simple_reference-fid.n_envs.8", {}, [0.0, 0.0, 0.0]),
             ("simple_reference-fid.use_valuenorm.true", {}, [2.0, 2.0, 2.0]),
             # one seed on a side: a difference but no interval
             ("simple_reference-fid.obs_norm.raw", {"env.obs_norm": "raw"}, [7.0])]
    for task, fidelity, finals in cases:
        for k, final in enumerate(finals):
            run = suite / "mpe" / task / "hasac" / f"seed_{k}"
            write_run(run, STEPS, np.array([0.0, final / 2, final]), summary={"fidelity": fidelity})
            (run / "config.yaml").write_text("n_envs: 20\nalgo:\n  use_valuenorm: false\nenv:\n  physics: official\n")
    runs = load_runs([suite])
    assert {base_task(r) for r in runs} == {"mpe/simple_spread", "mpe/simple_reference", "mpe/simple_speaker_listener"}
    table = fidelity_table(runs, reps=500, seed=0).set_index("task")
    assert len(table) == 5  # one row per task and switch; no official speaker-listener runs: no row
    single = table.loc["mpe/simple_reference"].set_index("switches").loc["env.obs_norm=raw"]
    assert single["difference"] == pytest.approx(6.0) and np.isnan(single["ci_low"]) and np.isnan(single["ci_high"])
    spread = table.loc["mpe/simple_spread"]
    reference = table.loc["mpe/simple_reference"].set_index("switches").loc["env.physics=mpe2"]
    threads = table.loc["mpe/simple_reference"].set_index("switches").loc["n_envs=8"]
    assert (threads["official_iqm"], threads["difference"]) == pytest.approx((1.0, -1.0))
    valuenorm = table.loc["mpe/simple_reference"].set_index("switches").loc["algo.use_valuenorm=true"]
    assert valuenorm["difference"] == pytest.approx(1.0)
    assert spread["switches"] == "algo.box_action=affine" and spread["official_iqm"] == pytest.approx(1.5)
    assert spread["alternative_iqm"] == pytest.approx(3.5) and spread["difference"] == pytest.approx(2.0)
    assert spread["ci_low"] < 2.0 < spread["ci_high"]
    assert (reference["difference"], reference["ci_low"], reference["ci_high"]) == pytest.approx((3.0, 3.0, 3.0))
    out = write_report([suite], tmp_path / "report", reps=200, seed=0, normalisation="observed", figures=False)
    report = (out / "report.md").read_text()
    assert "## Fidelity switches: official behaviour vs alternative" in report and "env.physics=mpe2" in report
    assert "+6 (no CI: one seed)" in report
    assert (out / "fidelity.csv").is_file()


def test_table_rows_carry_published_numbers_and_verdicts(tmp_path):
    out = write_report([smac_tree(tmp_path)], tmp_path / "report", reps=500, seed=0, normalisation="paper", figures=False)
    table = pd.read_csv(out / "table.csv").set_index("algo")
    happo, mappo = table.loc["happo"], table.loc["mappo"]
    assert happo["metric"] == "win_rate_pct" and happo["seeds"] == 3 and happo["env_steps"] == 10_000_000
    assert happo["mean"] == pytest.approx(84.0) and happo["published"] == 83.8 and happo["published_std"] == 4.1
    assert "HARL JMLR 2024" in happo["source"] and happo["verdict"] == "reproduced"
    assert mappo["published"] == 87.5 and mappo["verdict"] == "not comparable: 2 seeds"
    markdown = (out / "table.md").read_text()
    assert "| smac/8m_vs_9m | happo | win_rate_pct | 84 ± 1.63 |" in markdown and "Verdict:" in markdown
    assert r"\toprule" in (out / "table.tex").read_text() and r"$\pm$" in (out / "table.tex").read_text()
    aggregates = pd.read_csv(out / "aggregates.csv")
    iqm = aggregates[(aggregates["algo"] == "happo") & (aggregates["aggregate"] == "IQM")]["value"].item()
    paper = pd.read_csv(Path(figures.__file__).parents[1] / "paper" / "paper_numbers.csv")
    best = paper[(paper["family"] == "smac") & (paper["task"] == "8m_vs_9m")]["value"].max()
    assert best > 87.5 and iqm == pytest.approx(84.0 / best)  # floor 0, ceiling = best published (any algo)


def test_report_names_the_missing_seed_and_the_failed_run(tmp_path):
    out = write_report([smac_tree(tmp_path)], tmp_path / "report", reps=200, seed=0, normalisation="paper", figures=False)
    report = (out / "report.md").read_text()
    assert "failed: " in report and "happo/seed_3" in report
    assert "missing: smac/8m_vs_9m mappo seeds 2, 3" in report
    assert "mappo: aggregated over the first 2 seeds" not in report  # one task: nothing truncated
    assert "below" not in pd.read_csv(out / "table.csv")["verdict"].tolist()


def test_every_figure_exists_with_the_expected_axes_and_lines(tmp_path, monkeypatch):
    root = synthetic_tree(tmp_path, ["hasac", "mappo", "random"], ["mpe/simple_spread", "mamujoco/Ant-2x4"], seeds=3, points=6)
    drawn = {}
    real_save = figures.save

    def recording_save(fig, directory, name):
        drawn[name] = (len([a for a in fig.axes if a.axison]), [len(a.lines) for a in fig.axes if a.axison])
        return real_save(fig, directory, name)

    monkeypatch.setattr(figures, "save", recording_save)
    out = write_report([root], tmp_path / "report", reps=100, seed=0, normalisation="observed")
    for name in ("learning_curves", "aggregates", "performance_profiles", "probability_of_improvement", "sample_efficiency"):
        for ext in ("png", "pdf"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000, name
    assert drawn["learning_curves"] == (2, [3, 3])  # two tasks, one mean line per algorithm
    assert drawn["aggregates"][0] == 4  # IQM, mean, median, optimality gap
    assert drawn["performance_profiles"] == (1, [2]) and drawn["sample_efficiency"] == (1, [2])
    assert drawn["probability_of_improvement"][0] == 1


def test_a_second_report_removes_the_figures_it_did_not_draw_again(tmp_path):
    root = synthetic_tree(tmp_path, ["hasac", "random"], ["mpe/simple_spread"], seeds=2, points=4)
    out = tmp_path / "out"
    stale = out / "figures" / "gone+group"
    stale.mkdir(parents=True)
    (stale / "aggregates.png").write_bytes(b"old")
    (out / "figures" / "learning_curves.png").write_bytes(b"old")
    for path in (stale / "aggregates.png", out / "figures" / "learning_curves.png"):
        os.utime(path, (0, 0))
    write_report([root], out, reps=100, seed=0, normalisation="observed")
    assert not stale.exists()
    assert (out / "figures" / "learning_curves.png").stat().st_size > 1000  # drawn again, kept


def test_no_runs_and_mixed_suites_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no runs under" in capsys.readouterr().err
    synthetic_tree(tmp_path / "a", ["hasac"], ["mpe/simple_spread"], seeds=1, points=3)
    smac_tree(tmp_path / "a")
    assert main([str(tmp_path / "a"), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert "several suites (paper_smac, synthetic)" in err and err.count("\n") == 1


def test_only_failed_runs_is_exit_2(tmp_path, capsys):
    write_run(tmp_path / "s" / "mpe" / "simple_spread" / "hasac" / "seed_0", STEPS[:1], np.zeros(1), status="failed")
    assert main([str(tmp_path / "s")]) == 2
    assert "no finished run" in capsys.readouterr().err


def test_corrupt_eval_csv_is_a_warning_and_the_rest_is_reported(tmp_path, capsys):
    root = synthetic_tree(tmp_path, ["hasac"], ["mpe/simple_spread"], seeds=2, points=4)
    bad = root / "mpe" / "simple_spread" / "hasac" / "seed_1" / "eval.csv"
    bad.write_text("env_steps,eval_return_mean\n0,1\nnot,a,number,row\n")
    assert main([str(root), "--out", str(tmp_path / "out"), "--no-figures", "--reps", "100"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len([line for line in lines if "seed_1" in line]) == 1 and all(line.startswith("warning: ") for line in lines)
    assert pd.read_csv(tmp_path / "out" / "table.csv")["seeds"].tolist() == [1]
    assert "unreadable:" in (tmp_path / "out" / "report.md").read_text()


def test_task_without_bounds_is_named_and_left_out_of_aggregates(tmp_path, capsys):
    root = synthetic_tree(tmp_path, ["hasac", "random"], ["mpe/simple_spread"], seeds=2, points=4)
    out = write_report([root], tmp_path / "out", reps=100, seed=0, normalisation="paper", figures=False)
    assert capsys.readouterr().err.startswith("warning: mpe/simple_spread: no normalisation bounds")
    report = (out / "report.md").read_text()
    assert "mpe/simple_spread: no normalisation bounds" in report and "no aggregates" in report


def test_task_where_nobody_rises_above_the_floor_says_so(tmp_path):
    # a win-rate task that nobody wins: floor (random) and ceiling (best mean) are both 0
    for algo in ("hasac", "happo", "random"):
        for k in range(2):
            write_run(tmp_path / "s" / "lag" / "2v2" / algo / f"seed_{k}", STEPS, np.zeros(len(STEPS)),
                      success="win_rate")
    out = write_report([tmp_path / "s"], tmp_path / "out", reps=100, seed=0, normalisation="observed",
                       figures=False)
    report = (out / "report.md").read_text()
    assert "lag/2v2: left out of the aggregates, its floor and ceiling are both 0" in report
    assert "no finished random run" not in report


def test_substitute_backend_is_never_compared_with_published_numbers(tmp_path):
    suite = tmp_path / "paper_smac"
    for k in range(3):
        write_run(suite / "smac" / "8m_vs_9m@smax" / "happo" / f"seed_{k}", STEPS, np.array([0.0, 0.5, 0.84]),
                  success="win_rate")
    out = write_report([suite], tmp_path / "report", reps=100, seed=0, normalisation="paper", figures=False)
    row = pd.read_csv(out / "table.csv").iloc[0]
    assert row["verdict"] == "not comparable: smax backend" and np.isnan(row["published"])


def test_mixed_action_spaces_aggregate_every_task_in_its_own_group(tmp_path):
    # QMIX ran only on the Discrete task and HATD3 only on the Box one: neither task may drop
    # out of the aggregates; each is compared among the algorithms that ran it
    synthetic_tree(tmp_path, ["hasac", "qmix", "random"], ["mpe/simple_spread_discrete"], seeds=3, points=4)
    root = synthetic_tree(tmp_path, ["hasac", "hatd3", "random"], ["mpe/simple_spread"], seeds=3, points=4, seed=1)
    out = write_report([root], tmp_path / "out", reps=100, seed=0, normalisation="observed")
    aggregates = pd.read_csv(out / "aggregates.csv")
    assert sorted(aggregates["group"].unique()) == ["hasac+hatd3", "hasac+qmix"]
    by_group = aggregates.groupby("group")["algo"].unique()
    assert sorted(by_group["hasac+qmix"]) == ["hasac", "qmix"] and sorted(by_group["hasac+hatd3"]) == ["hasac", "hatd3"]
    assert (aggregates["tasks"] == 1).all()
    improvement = pd.read_csv(out / "probability_of_improvement.csv")
    assert sorted(improvement["pair"]) == ["hasac > hatd3", "hasac > qmix"]
    report = (out / "report.md").read_text()
    assert "### Group hasac+hatd3" in report and "### Group hasac+qmix" in report and "left out" not in report
    second = [name for name in ("hasac+hatd3", "hasac+qmix") if (out / "figures" / name).is_dir()]
    assert len(second) == 1 and (out / "figures" / second[0] / "aggregates.png").stat().st_size > 1000
    assert (out / "figures" / "aggregates.png").stat().st_size > 1000


def test_vectorised_bootstrap_agrees_with_rliable():
    """The aggregates and the probability of improvement are rliable's statistics: the same
    points to the digit, and percentile CIs within bootstrap noise of rliable's own."""
    from rliable import library as rly
    from rliable import metrics

    from harness.report.stats import seeded

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(10, 4)), rng.normal(0.4, 1.0, size=(8, 4))
    points, cis = aggregate_estimates({"a": x}, reps=4000, seed=0)
    fns = [metrics.aggregate_iqm, metrics.aggregate_mean, metrics.aggregate_median, metrics.aggregate_optimality_gap]
    theirs, their_cis = seeded(0, rly.get_interval_estimates, {"a": x}, lambda s: np.array([f(s) for f in fns]), reps=4000)
    np.testing.assert_allclose(points["a"], theirs["a"], rtol=1e-12)
    np.testing.assert_allclose(cis["a"], their_cis["a"], atol=0.06)
    p, p_ci = probability_of_improvement({"a": x, "b": y}, "a", reps=4000, seed=0)
    their_p, their_p_ci = seeded(0, rly.get_interval_estimates, {"p": (x, y)}, metrics.probability_of_improvement, reps=4000)
    assert p["a,b"] == pytest.approx(float(their_p["p"]), abs=1e-12)
    np.testing.assert_allclose(p_ci["a,b"], np.ravel(their_p_ci["p"]), atol=0.03)


def test_reduced_budget_is_never_reproduced_and_sources_are_numbered_notes(tmp_path):
    # football/academy_3_vs_1_with_keeper: HAPPO's published 94.74 carries no env_steps of its
    # own; budgets.csv gives the paper's 25M, so a run of 2M matching the number is not "reproduced"
    suite = tmp_path / "s"
    steps = np.array([0, 1_000_000, 2_000_000])
    for algo in ("happo", "mappo"):
        for k, rate in enumerate([0.94, 0.95, 0.945]):
            write_run(suite / "football" / "academy_3_vs_1_with_keeper" / algo / f"seed_{k}", steps,
                      np.array([0.0, 0.5, rate]), success="score")
    out = write_report([suite], tmp_path / "out", reps=200, seed=0, normalisation="paper", figures=False)
    table = pd.read_csv(out / "table.csv").set_index("algo")
    assert table.loc["happo", "published"] == 94.74 and table.loc["happo", "published_steps"] == 25_000_000
    assert table["verdict"].tolist() == ["not comparable: 2,000,000 of 25,000,000 steps"] * 2
    markdown = (out / "table.md").read_text()
    assert "| 2,000,000 | 25,000,000 |" in markdown and "reproduced*" in markdown  # the rule still names the verdict
    source = "HARL JMLR 2024 (arXiv 2304.09870) Table GRF"
    assert markdown.count(source) == 1 and f"[1] {source}" in markdown and markdown.count("| [1] |") == 2
    assert r"\par [1] HARL JMLR 2024" in (out / "table.tex").read_text()


def _qre_run(run_dir: Path, tv: list[float], probs: list[list[float]], final: float) -> None:
    write_run(run_dir, np.arange(len(tv)) * 100, np.linspace(0, final, len(tv)))
    evals = pd.read_csv(run_dir / "eval.csv").assign(eval_qre_tv=tv)
    evals.to_csv(run_dir / "eval.csv", index=False)
    (run_dir / "summary.json").write_text(json.dumps({"policy_probs": probs}))
    (run_dir / "config.yaml").write_text("eval_alpha: 10.0\ntask: climbing\n")


def test_claims_table_verdicts_follow_the_printed_rule(tmp_path):
    from harness.report.claims import CLAIMS_RULE, QRE_TV_BAR

    suite = tmp_path / "s"
    steps = np.array([0, 50_000, 100_000])
    for task in ("simple_spread", "simple_reference"):
        for k in range(3):  # hasac above happo on every seed of both tasks; mappo above hasac
            for algo, level in (("hasac", -50.0), ("happo", -80.0), ("mappo", -20.0)):
                write_run(suite / "mpe" / task / algo / f"seed_{k}", steps, np.array([-100.0, -90.0, level + k]))
    for k in range(4):  # converged to the QRE: final TV 0.02 on every seed, greedy joint action (2, 2)
        _qre_run(suite / "matrix" / "climbing" / "hasac" / f"seed_{k}", [0.3, 0.1, 0.02], [[0.2, 0.3, 0.5], [0.1, 0.2, 0.7]], 5.0)
    for k in range(2):  # far from it, but two seeds only
        _qre_run(suite / "matrix" / "penalty" / "hasac" / f"seed_{k}", [0.3, 0.3, 0.4], [[0.9, 0.05, 0.05], [0.9, 0.05, 0.05]], 10.0)
    out = write_report([suite], tmp_path / "out", reps=300, seed=0, normalisation="observed", figures=False)
    claims = pd.read_csv(out / "claims.csv").set_index("claim")
    happo, mappo = claims.loc["HASAC is more sample-efficient than HAPPO"], claims.loc["HASAC is more sample-efficient than MAPPO"]
    assert (happo["value"], happo["ci_low"], happo["verdict"]) == (1.0, 1.0, "supported")
    assert (mappo["value"], mappo["ci_high"], mappo["verdict"]) == (0.0, 0.0, "not supported")
    assert "100,000 env steps (paper: 10,000,000)" in happo["measured on"] and "ahead on 2 of 2 tasks" in happo["observed"]
    qre = claims.loc["HASAC converges to the soft QRE (α = 10)"].set_index("tasks")
    assert qre.loc["matrix/climbing", "value"] == pytest.approx(0.02) and QRE_TV_BAR > 0.02
    assert qre.loc["matrix/climbing", "verdict"] == "supported"
    assert "greedy joint action (2, 2) in 4/4 seeds (return 5)" in qre.loc["matrix/climbing", "observed"]
    assert qre.loc["matrix/penalty", "verdict"] == "not comparable at this budget"  # 2 seeds
    report = (out / "report.md").read_text()
    assert report.index("## The paper's claims at this budget") < report.index("## Final scores per task")
    assert CLAIMS_RULE in report and CLAIMS_RULE in (out / "claims.md").read_text()
    assert json.loads((out / "report.json").read_text()) == {"roots": [str(suite)], "reps": 300, "seed": 0,
                                                            "normalisation": "observed"}


def test_planned_runs_name_what_is_missing_and_qre_games_stay_out_of_the_aggregates(tmp_path):
    """With the sweep's jobs.json, the report lists every planned run without a finished
    result (a task never started included) and counts them in its head; a game evaluated
    against its soft QRE is not aggregated by its greedy return."""
    suite = tmp_path / "s"
    steps = np.array([0, 50_000, 100_000])
    for k in range(2):
        for algo, level in (("hasac", -50.0), ("random", -100.0)):
            write_run(suite / "mpe" / "simple_spread" / algo / f"seed_{k}", steps, np.array([-100.0, -90.0, level + k]))
        for algo in ("hasac", "random"):
            _qre_run(suite / "matrix" / "climbing" / algo / f"seed_{k}", [0.3, 0.1, 0.02], [[0.2, 0.3, 0.5], [0.1, 0.2, 0.7]], 5.0)
    planned = [f"{task}/{algo}/seed_{k}" for task in ("mpe/simple_spread", "matrix/climbing", "lag/2v2-NoWeapon-vsBaseline")
               for algo in ("hasac", "random") for k in range(3)]
    (suite / "jobs.json").write_text(json.dumps({p: 100_000 for p in planned}))
    out = write_report([suite], tmp_path / "out", reps=200, seed=0, normalisation="observed", figures=False)
    report = (out / "report.md").read_text()
    assert "10 of the 18 runs its sweeps planned have not finished" in report
    assert "missing: lag/2v2-NoWeapon-vsBaseline hasac (no finished run)" in report
    assert "missing: mpe/simple_spread hasac seeds 2" in report and "missing: matrix/climbing random seeds 2" in report
    assert "matrix/climbing: left out of the aggregates, compared by the distance to the soft QRE" in report
    assert set(pd.read_csv(out / "aggregates.csv")["algo"]) == {"hasac"}
    aggregated = report.split("## Aggregates of normalised scores")[1].split("## What did not count")[0]
    assert "Over 1 tasks: mpe/simple_spread." in aggregated
