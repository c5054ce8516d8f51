"""The cost estimate (harness/estimate.py) and the rates behind it (harness/bench/rates.py,
the shipped harness/rates.json)."""

import json

import pytest

from algos.common.registry import ALGORITHMS
from envs import FAMILIES, family_module
from harness.bench import rates as bench_rates
from harness.estimate import (SHIPPED, CostQuery, Rate, RateBook, estimate, estimate_lines, evaluations,
                              file_rates, finished_run_rates, job_hours)
from harness.run import main


def test_evaluations_count_step_zero_every_interval_and_an_unaligned_end():
    assert evaluations(100, 20) == 6  # 0, 20, 40, 60, 80, 100
    assert evaluations(110, 20) == 7  # ... 100 and the end at 110


def test_job_hours_add_training_and_evaluation_time():
    rate = Rate(steps_per_s=100.0, eval_s_per_episode=2.0, source="x")
    query = CostQuery(("f", "t", "a", "cpu"), budget=360_000, eval_every=36_000, eval_episodes=10)
    # 3600 s of training, 11 evaluations × 10 episodes × 2 s
    assert job_hours(query, rate) == pytest.approx((3600 + 11 * 10 * 2.0) / 3600)
    # a run resuming half-way pays half of both
    half = CostQuery(query.key, query.budget, query.eval_every, query.eval_episodes, steps_done=180_000)
    assert job_hours(half, rate) == pytest.approx(job_hours(query, rate) / 2)
    # rates of finished runs already include their evaluations
    assert job_hours(query, Rate(100.0, None, "runs")) == pytest.approx(1.0)


def test_the_most_specific_rate_wins_and_a_missing_task_takes_its_familys_median():
    shipped = {("mpe", "a", "hasac", "cpu"): Rate(100.0, 1.0, "shipped"), ("mpe", "b", "hasac", "cpu"): Rate(300.0, 3.0, "shipped"),
               ("mpe", "c", "hasac", "cpu"): Rate(200.0, 2.0, "shipped")}
    local = {("mpe", "a", "hasac", "cpu"): Rate(50.0, 1.0, "local")}
    runs = {("mpe", "b", "hasac", "cpu"): Rate(10.0, None, "runs")}
    book = RateBook([runs, local, shipped])
    assert book.find(("mpe", "a", "hasac", "cpu")) == (local[("mpe", "a", "hasac", "cpu")], False)
    assert book.find(("mpe", "b", "hasac", "cpu")) == (runs[("mpe", "b", "hasac", "cpu")], False)
    # the first tier holding the family: the finished runs (one task, 10 steps/s)
    assert book.find(("mpe", "d", "hasac", "cpu"))[0].steps_per_s == 10.0
    shipped_only = RateBook([{}, {}, shipped])
    median, is_median = shipped_only.find(("mpe", "d", "hasac", "cpu"))
    assert is_median and median.steps_per_s == 200.0 and median.eval_s_per_episode == 2.0
    assert book.find(("mpe", "a", "hasac", "gpu")) is None  # a CPU figure never stands for a GPU job
    assert book.find(("mamujoco", "a", "hasac", "cpu")) is None


def test_estimate_splits_cpu_and_gpu_hours_and_counts_jobs_per_source():
    book = RateBook([{("f", "t", "a", "cpu"): Rate(1.0, None, "runs"), ("f", "t", "a", "gpu"): Rate(2.0, None, "shipped")}])
    queries = [CostQuery(("f", "t", "a", "cpu"), 3600, 3600, 1, threads=2), CostQuery(("f", "t", "a", "gpu"), 7200, 3600, 1),
               CostQuery(("g", "t", "a", "cpu"), 3600, 3600, 1)]
    est = estimate([[q] for q in queries], book)
    assert est.cpu_hours == pytest.approx(2.0) and est.gpu_hours == pytest.approx(1.0)
    assert est.by_source == {"runs": 1, "shipped": 1} and est.unknown == [("g", "t", "a", "cpu")]
    lines = estimate_lines(est, "python -m harness.bench.rates suite=x")
    assert lines[0].startswith("estimate for the 3 jobs left to run: 2.0 CPU-hours") and "1.0 GPU-hours" in lines[0]
    assert any("1 job without any rate (g/t a): measure them with `python -m harness.bench.rates suite=x`" in line
               for line in lines)


def test_finished_runs_give_their_own_rate(tmp_path, capsys):
    args = ["env=matrix", "task=climbing", "algo=random", "budget=40", "eval_every=20", "progress=false", "n_envs=4",
            "eval_n_envs=2", "eval_episodes=2", f"results_dir={tmp_path}"]
    assert main(args) == 0
    run = tmp_path / "adhoc" / "matrix" / "climbing" / "random" / "seed_0"
    summary = json.loads((run / "summary.json").read_text())
    rates, packed = finished_run_rates(tmp_path)
    assert list(rates) == [("matrix", "climbing", "random", "cpu")] and packed == {}
    assert rates[("matrix", "climbing", "random", "cpu")].steps_per_s == pytest.approx(summary["env_steps"] / summary["wall_seconds"])


def test_bench_rates_measures_each_kind_once_and_merges_into_the_json(tmp_path):
    out = tmp_path / "rates.json"
    small = ["algo.warmup_steps=64", "algo.train_every=32", "algo.updates_per_train=1", "algo.batch_size=16",
             "algo.hidden_sizes=[16]"]
    argv = ["env=matrix", "task=climbing,penalty", "algo=hasac", *small, "seeds=3", "--seconds", "0.05", "--out", str(out)]
    assert bench_rates.main(argv) == 0
    table = json.loads(out.read_text())
    assert [(r["family"], r["task"], r["algo"], r["device"]) for r in table["rates"]] == [
        ("matrix", "climbing", "hasac", "cpu"), ("matrix", "penalty", "hasac", "cpu")]
    for row in table["rates"]:
        assert row["steps_per_s"] > 0 and row["eval_s_per_episode"] > 0 and row["timed_updates"] >= 1
    (machine,) = table["machines"].values()
    assert {"host", "cpu_model", "cpu_count", "torch", "torch_threads", "loadavg_start", "loadavg_end"} <= set(machine)
    # a second measurement of one kind replaces its row and keeps the other
    assert bench_rates.main([*argv[:1], "task=penalty", *argv[2:]]) == 0
    again = json.loads(out.read_text())
    assert len(again["rates"]) == 2 and len({r["machine"] for r in again["rates"]}) == 2
    assert set(file_rates(out)) == {("matrix", "climbing", "hasac", "cpu"), ("matrix", "penalty", "hasac", "cpu")}


def test_the_shipped_rates_name_real_kinds_and_the_machine_they_came_from():
    table = json.loads(SHIPPED.read_text())
    assert table["rates"], "harness/rates.json holds no rate"
    for row in table["rates"]:
        machine = table["machines"][row["machine"]]
        assert {"host", "cpu_model", "cpu_count", "torch", "loadavg_start"} <= set(machine)
        assert row["family"] in FAMILIES and row["algo"] in ALGORITHMS and row["device"] in ("cpu", "gpu")
        task = row["task"].split("@")[0]
        assert any(task == t or task.startswith(f"{t}-") for t in family_module(row["family"]).TASKS), row
        assert row["steps_per_s"] > 0 and row["eval_s_per_episode"] > 0
    assert len(file_rates(SHIPPED)) == len(table["rates"])


def test_a_pack_takes_finished_packs_of_its_size_else_its_seeds_lone_hours_in_a_row():
    key = ("f", "t", "a", "cpu")
    seeds = [CostQuery(key, 3600, 3600, 1), CostQuery(key, 7200, 3600, 1)]
    lone = RateBook([{key: Rate(1.0, None, "runs")}])
    est = estimate([seeds], lone)
    assert est.cpu_hours == pytest.approx(3.0) and est.packs_as_lone == 1  # 1 h + 2 h, one after the other
    packed = RateBook([{key: Rate(1.0, None, "runs")}], {(key, 2): Rate(0.5, None, "packs")})
    est = estimate([seeds], packed)
    assert est.cpu_hours == pytest.approx(4.0) and est.packs_as_lone == 0  # the slowest seed at the pack's pace
    assert est.by_source == {"packs": 2}
