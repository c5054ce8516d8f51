"""The committed reproduction: the `reproduce` suite's contract (every algorithm it lists runs
on its task, one budget per task, enough seeds, `random` everywhere), the suite keys it uses
(a run's own `algos:` and `seeds:`, a suite's default `seeds:`), the report a suite sweep
ends with, and the committed report regenerated from the committed results."""

import json
from pathlib import Path

import pytest

import envs
import harness.sweep
from algos.common.registry import ALGORITHMS, check_compatible
from envs.errors import ConfigError, EnvUnavailable
from harness.config import load_settings
from harness.report import write_report
from harness.run import main
from harness.suites import entry_overrides, load_suite
from harness.sweep import expand

REPRODUCE = load_suite("reproduce")


def _job_keys(jobs: list[list[str]]) -> list[tuple[str, str, str, str]]:
    """(task, variant, algo, seed) of each job's overrides (the last value of each key wins)."""
    out = []
    for job in jobs:
        values = dict(o.split("=", 1) for o in job if "=" in o and not o.startswith(("algo.", "env.")))
        out.append((values.get("task", ""), values.get("variant", ""), values.get("algo", ""), values.get("seed", "")))
    return out


def test_reproduce_suite_meets_its_contract():
    """Random on every task, every listed algorithm implemented, the same budget for every
    algorithm of a task (nothing per algorithm changes budget or eval_every), >= 3 seeds and
    >= 10 on the matrix games."""
    runs = REPRODUCE["runs"]
    assert {r["env"] for r in runs} == {"matrix", "mpe", "mamujoco", "smac", "football", "lag"}
    for run in runs:
        algos, seeds = run.get("algos", REPRODUCE.get("algos")), run.get("seeds", REPRODUCE.get("seeds"))
        assert algos and set(algos) <= set(ALGORITHMS), run
        assert seeds >= (10 if run["env"] == "matrix" else 3), run
        if run.get("variant", "").endswith("expected"):  # HASAC with the exact expected loss, beside the official one
            assert algos == ["hasac"] and "algo.discrete_actor_loss=expected" in run["algo_overrides"]["hasac"]
        else:
            assert "random" in algos, run
        per_algo = [o for lists in [REPRODUCE.get("algo_overrides", {}), run.get("algo_overrides", {})]
                    for values in lists.values() for o in values]
        assert not [o for o in per_algo if o.split("=", 1)[0] in ("budget", "eval_every", "seed")], run
    assert {r["task"] for r in runs if r["env"] == "matrix"} == {"climbing", "penalty", "custom"}


def test_reproduce_expands_each_run_with_its_own_algorithms_and_seeds():
    _, jobs = expand(["suite=reproduce"])
    keys = _job_keys(jobs)
    assert len(keys) == len(set(keys))
    expected = sum(len(r["algos"]) * r.get("seeds", REPRODUCE["seeds"]) for r in REPRODUCE["runs"])
    assert len(jobs) == expected
    climbing = [k for k in keys if k[0] == "climbing" and k[1] == ""]
    assert {k[3] for k in climbing} == {str(s) for s in range(10)}
    assert {k[2] for k in climbing} == {"random", "hasac", "mehaml_kl", "happo", "mappo", "qmix"}
    spread = {k[2] for k in keys if k[0] == "simple_spread" and k[1] == ""}
    assert spread == {"random", "hasac", "hatd3", "happo", "mappo"}
    assert {k[3] for k in keys if k[0] == "simple_spread"} == {"0", "1", "2"}


@pytest.mark.parametrize("run", REPRODUCE["runs"], ids=lambda r: f"{r['env']}-{r['task']}-{r.get('variant', '')}")
def test_every_algorithm_of_a_reproduce_run_can_run_there(run):
    """No job of the suite is an accidental n/a: each listed algorithm accepts the task's
    action space and its composed config validates against the task (the env is built)."""
    jobs = [entry_overrides(run) + [str(o) for o in run.get("algo_overrides", {}).get(algo, [])] + [f"algo={algo}", "seed=0"]
            for algo in run["algos"]]
    settings, _ = load_settings(jobs[0])
    try:
        env = envs.make(settings.family, settings.task, n_envs=1, seed=0, **settings.env_fields)
    except EnvUnavailable as exc:
        pytest.skip(f"simulator not installed here: {str(exc).splitlines()[0]}")
    spec = env.spec
    env.close()
    for algo, job in zip(run["algos"], jobs):
        check_compatible(algo, spec)
        if run.get("algo_overrides", {}).get(algo) or algo == run["algos"][0]:
            algo_settings = settings if algo == run["algos"][0] else load_settings(job)[0]
            algo_settings.validate()
            algo_settings.algo_config.validate(spec)


def _fake_suite(monkeypatch, suite):
    monkeypatch.setattr(harness.sweep, "load_suite", lambda name: {"algo_overrides": {}, **suite})


def test_a_runs_algos_and_seeds_apply_unless_the_command_line_names_them(monkeypatch):
    _fake_suite(monkeypatch, {"seeds": 2, "algos": ["hasac"], "runs": [
        {"env": "matrix", "task": "climbing", "algos": ["happo", "mappo"], "seeds": 3},
        {"env": "matrix", "task": "penalty"}]})
    keys = _job_keys(expand(["suite=smoke"])[1])
    assert sorted(keys) == sorted([("climbing", "", a, str(s)) for a in ("happo", "mappo") for s in range(3)]
                                  + [("penalty", "", "hasac", str(s)) for s in range(2)])
    # algo= on the command line replaces every run's algorithms; the seeds stay the runs'
    keys = _job_keys(expand(["suite=smoke", "algo=qmix"])[1])
    assert sorted(keys) == sorted([("climbing", "", "qmix", str(s)) for s in range(3)]
                                  + [("penalty", "", "qmix", str(s)) for s in range(2)])
    # seeds=N and seed=K replace every run's seeds
    keys = _job_keys(expand(["suite=smoke", "seeds=1"])[1])
    assert sorted(keys) == [("climbing", "", "happo", "0"), ("climbing", "", "mappo", "0"), ("penalty", "", "hasac", "0")]
    keys = _job_keys(expand(["suite=smoke", "seed=7", "algo=hasac,happo"])[1])
    assert sorted(keys) == [("climbing", "", "happo", "7"), ("climbing", "", "hasac", "7"),
                            ("penalty", "", "happo", "7"), ("penalty", "", "hasac", "7")]


def test_a_suite_without_seeds_runs_the_default_seed_and_bad_seeds_are_refused(monkeypatch):
    _fake_suite(monkeypatch, {"runs": [{"env": "matrix", "task": "climbing", "algos": ["hasac"]}]})
    assert _job_keys(expand(["suite=smoke"])[1]) == [("climbing", "", "hasac", "")]
    _fake_suite(monkeypatch, {"runs": [{"env": "matrix", "task": "climbing", "seeds": 0}]})
    with pytest.raises(ConfigError, match="seeds must be >= 1"):
        expand(["suite=smoke"])
    with pytest.raises(ConfigError, match="not both"):
        expand(["suite=smoke", "seeds=2", "seed=1"])


ROOT = Path(__file__).resolve().parents[1]
COMMITTED_RESULTS, COMMITTED_REPORT = ROOT / "results" / "reproduce", ROOT / "reports" / "reproduce"
TABLE_SUFFIXES = (".csv", ".md", ".tex")


def test_the_committed_report_regenerates_from_the_committed_results(tmp_path):
    """Every table of reports/reproduce/ (report.md aside: it lists the figures) comes out
    identical from results/reproduce/ with the arguments report.json records."""
    if not COMMITTED_RESULTS.is_dir():
        pytest.skip("results/reproduce/ is not committed yet: no data to regenerate the report from")
    manifest = json.loads((COMMITTED_REPORT / "report.json").read_text())
    write_report([COMMITTED_RESULTS], tmp_path, manifest["reps"], manifest["seed"], manifest["normalisation"], figures=False)

    def tables(root: Path) -> set[Path]:
        return {p.relative_to(root) for p in root.rglob("*") if p.suffix in TABLE_SUFFIXES and p.name != "report.md"}

    assert tables(COMMITTED_REPORT) == tables(tmp_path) and tables(tmp_path)
    for name in sorted(tables(tmp_path)):
        assert (tmp_path / name).read_text() == (COMMITTED_REPORT / name).read_text(), f"reports/reproduce/{name} drifted"


def test_a_suite_sweep_ends_with_its_report_unless_report_false(monkeypatch, tmp_path, capsys):
    _fake_suite(monkeypatch, {"runs": [{"env": "matrix", "task": "climbing", "algos": ["random"], "seeds": 2,
                                        "budget": 40, "eval_every": 20}]})
    fast = ["progress=false", "n_envs=4", "eval_n_envs=2", "eval_episodes=4"]
    assert main(["suite=smoke", *fast, f"results_dir={tmp_path / 'results'}"]) == 0
    report = tmp_path / "reports" / "smoke"
    assert f"report: {report / 'report.md'}" in capsys.readouterr().out
    assert "matrix/climbing | random |" in (report / "table.md").read_text()
    assert json.loads((report / "report.json").read_text())["roots"] == [str(tmp_path / "results" / "smoke")]
    assert main(["suite=smoke", *fast, f"results_dir={tmp_path / 'b' / 'results'}", "report=false"]) == 0
    assert "report:" not in capsys.readouterr().out and not (tmp_path / "b" / "reports").exists()


def _table_lines(text: str) -> list[str]:
    """The first Markdown table of `text` (its header, rule and rows)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| claim |"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_the_readme_shows_the_committed_claims_table():
    """The README's claims table is reports/reproduce/claims.md's, row for row."""
    readme = (ROOT / "README.md").read_text()
    assert _table_lines(readme) == _table_lines((COMMITTED_REPORT / "claims.md").read_text()), \
        "README.md's claims table differs from reports/reproduce/claims.md: copy it again"
