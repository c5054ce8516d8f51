"""The paper's claims, each beside what this tree shows and a plain verdict by CLAIMS_RULE:

- **Sample efficiency**: for each baseline, P(HASAC > baseline) of the final scores at the
  same env-step budget (rliable's probability of improvement: the mean over the tasks both
  ran of P(X > Y) for a random run of each, so each task's own scale cancels and no
  normalisation bounds are needed), with its stratified-bootstrap 95 % CI. Tasks with an
  analytic soft QRE (single-state games at a fixed evaluation temperature) are left to the
  next claim: their return is not what HASAC maximises there.
- **Convergence to the soft QRE**: on each single-state game, the TV distance of HASAC's
  final policy to the nearest analytic soft QRE (mean over seeds, bootstrap 95 % CI), and
  the greedy joint action it reached (the argmax of each agent's final policy, summary.json).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd

from harness.report.load import Run
from harness.report.normalise import FLOOR_ALGO, TARGET
from harness.report.stats import probability_of_improvement, task_improvement, task_intervals
from harness.report.study_data import StudyRun, load_study_runs
from harness.report.tables import MIN_SEEDS

QRE_TV_BAR = 0.1
"""A final policy this close to the soft QRE (largest TV over agents) has converged to it."""
SUPPORTED, NOT_SUPPORTED, NOT_COMPARABLE = "supported", "not supported", "not comparable at this budget"
CLAIMS_RULE = (
    f"Verdict rule. Sample efficiency: *{SUPPORTED}* when the 95 % CI of P(HASAC > baseline) lies above 0.5, "
    f"*{NOT_SUPPORTED}* when it lies below 0.5 (the baseline is ahead at this budget), *{NOT_COMPARABLE}* "
    f"when it contains 0.5. Soft QRE: *{SUPPORTED}* when the 95 % CI of the final TV distance lies below "
    f"{QRE_TV_BAR}, *{NOT_SUPPORTED}* when it lies above, *{NOT_COMPARABLE}* when it contains {QRE_TV_BAR}. "
    f"Either claim is *{NOT_COMPARABLE}* with fewer than {MIN_SEEDS} seeds. Every verdict speaks of the "
    f"budget in its row: where that is below the paper's, it says nothing of the paper's final numbers."
)
COLUMNS = ["claim", "measured on", "observed", "verdict", "value", "ci_low", "ci_high", "tasks", "seeds"]


def claims_table(runs: list[Run], table: pd.DataFrame, reps: int, seed: int) -> pd.DataFrame:
    """One row per claim the tree can speak to (none where HASAC has no finished run)."""
    studies = load_study_runs(runs)
    qre_tasks = {s.run.key for s in studies if np.isfinite(s.column("eval_qre_tv")).any()}
    rows = sample_efficiency_rows([r for r in runs if r.finished and r.key not in qre_tasks], table, reps, seed)
    rows += qre_rows([s for s in studies if s.run.key in qre_tasks and s.run.algo == TARGET], reps, seed)
    return pd.DataFrame(rows, columns=COLUMNS)


def sample_efficiency_rows(finished: list[Run], table: pd.DataFrame, reps: int, seed: int) -> list[dict]:
    mine = {r.key for r in finished if r.algo == TARGET}
    baselines = sorted({r.algo for r in finished if r.key in mine} - {TARGET, FLOOR_ALGO})
    rows = []
    for other in baselines:
        tasks = sorted(mine & {r.key for r in finished if r.algo == other})
        scores = {algo: _score_matrix([r for r in finished if r.algo == algo], tasks) for algo in (TARGET, other)}
        seeds = min(len(s) for s in scores.values())
        points, cis = probability_of_improvement(scores, TARGET, reps, seed)
        value, (low, high) = float(np.ravel(points[f"{TARGET},{other}"])[0]), np.ravel(cis[f"{TARGET},{other}"])[:2]
        verdict = (NOT_COMPARABLE if seeds < MIN_SEEDS else SUPPORTED if low > 0.5 else
                   NOT_SUPPORTED if high < 0.5 else NOT_COMPARABLE)
        ahead = int((task_improvement(scores[TARGET], scores[other]) > 0.5).sum())
        rows.append({"claim": f"HASAC is more sample-efficient than {other.upper()}",
                     "measured on": f"{len(tasks)} task{'s' * (len(tasks) != 1)}, {seeds} seeds each, {_budgets(table, tasks)}",
                     "observed": f"P(HASAC > {other.upper()}) = {value:.2f} [{low:.2f}, {high:.2f}]; "
                                 f"ahead on {ahead} of {len(tasks)} task{'s' * (len(tasks) != 1)}",
                     "verdict": verdict, "value": value, "ci_low": float(low), "ci_high": float(high),
                     "tasks": " ".join(tasks), "seeds": seeds})
    return rows


def _score_matrix(runs: list[Run], tasks: list[str]) -> np.ndarray:
    """[runs, tasks] final scores: the first n seeds of every task, n the fewest any has."""
    per_task = [sorted((r for r in runs if r.key == task), key=lambda r: r.seed) for task in tasks]
    n = min(len(group) for group in per_task)
    return np.array([[group[i].final for group in per_task] for i in range(n)])


def _budgets(table: pd.DataFrame, tasks: list[str]) -> str:
    """'150,000 env steps (paper: 10,000,000)', ranges where the tasks differ."""
    rows = table[(table["family"] + "/" + table["task"]).isin(tasks)]
    ours = _span(rows["env_steps"].astype(float))
    paper = _span(rows["published_steps"].astype(float).dropna())
    return f"{ours} env steps (paper: {paper or 'no such run'})"


def _span(values: pd.Series) -> str:
    if not len(values):
        return ""
    low, high = int(values.min()), int(values.max())
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def qre_rows(studies: list[StudyRun], reps: int, seed: int) -> list[dict]:
    by_task: dict[str, list[StudyRun]] = {}
    for study in studies:
        by_task.setdefault(study.run.key, []).append(study)
    rows = []
    for task, group in sorted(by_task.items()):
        tv = np.array([s.column("eval_qre_tv")[-1] for s in group])
        tv = tv[np.isfinite(tv)]
        ci = task_intervals(tv, reps, seed) if len(tv) else {"mean_ci_low": np.nan, "mean_ci_high": np.nan}
        low, high, value = ci["mean_ci_low"], ci["mean_ci_high"], float(tv.mean()) if len(tv) else np.nan
        verdict = (NOT_COMPARABLE if len(tv) < MIN_SEEDS else SUPPORTED if high < QRE_TV_BAR else
                   NOT_SUPPORTED if low > QRE_TV_BAR else NOT_COMPARABLE)
        alpha = group[0].config.get("eval_alpha")
        rows.append({"claim": "HASAC converges to the soft QRE" + (f" (α = {alpha:g})" if alpha is not None else ""),
                     "measured on": f"{task}, {len(tv)} seeds, {min(s.run.env_steps for s in group):,} env steps",
                     "observed": f"TV {value:.3f} [{low:.3f}, {high:.3f}]; {_joint_actions(group)}",
                     "verdict": verdict, "value": value, "ci_low": low, "ci_high": high, "tasks": task, "seeds": len(tv)})
    return rows


def _joint_actions(group: list[StudyRun]) -> str:
    """'greedy joint action (2, 2) in 9/10 seeds (return 5)': the most common argmax of the
    agents' final policies and the greedy return it earned."""
    reached = Counter()
    returns: dict[tuple[int, ...], float] = {}
    for study in group:
        try:
            probs = json.loads(study.run.path.summary.read_text()).get("policy_probs")
        except (OSError, ValueError):
            probs = None
        if probs:
            joint = tuple(int(np.argmax(p)) for p in probs)
            reached[joint] += 1
            returns[joint] = float(study.run.final)
    if not reached:
        return "joint action not recorded"
    joint, count = reached.most_common(1)[0]
    return f"greedy joint action {joint} in {count}/{len(group)} seeds (return {returns[joint]:.3g})"
