"""The verdict of a sweep: which variant won, by how much, and is the difference real.

Pure pandas and scipy on numbers the tracking module fetched; nothing here talks to
MLflow. Variants are only compared on the same dataset: a sweep over several datasets
gets one ranking and one verdict per dataset. "Real" is judged on the backtest folds
the two best share: "real" when the winner beats the runner-up on every fold and a
paired t-test over the folds gives p < 0.05, "probably real" on most folds with
p < 0.2, otherwise "not distinguishable". With few folds the test is weak, and the
verdict says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from scipy.special import stdtr


@dataclass
class Comparison:
    """The winner against the runner-up on one dataset, on the optimised metric."""

    dataset: str
    best_run_id: str
    best_name: str
    best_value: float
    runner_up_name: str | None = None
    runner_up_value: float | None = None
    margin: float | None = None          # how much better the best is, in metric units
    margin_percent: float | None = None  # the margin relative to the runner-up's value
    folds_won: int | None = None
    folds: int | None = None
    p_value: float | None = None
    verdict: str = ""


def rank(children: pd.DataFrame, metric: str, greater_is_better: bool) -> pd.DataFrame:
    """Finished children ranked best first within each dataset; failed ones last, unranked.

    Datasets keep the order in which the sweep ran them.

    ``children`` needs the columns ``dataset``, ``status`` and ``metric``.
    """
    finished = children[children["status"].eq("FINISHED") & children[metric].notna()]
    ordered = finished.sort_values(metric, ascending=not greater_is_better, kind="stable")
    ranked = [group.assign(rank=range(1, len(group) + 1))
              for group in (ordered[ordered["dataset"] == name] for name in children["dataset"].unique())
              if len(group)]
    unranked = children.drop(finished.index).assign(rank=pd.NA)
    frame = pd.concat([*ranked, unranked]) if ranked else unranked
    return frame.reset_index(drop=True)[["rank", *children.columns]]


def compare_best(ranked: pd.DataFrame, metric: str, greater_is_better: bool,
                 folds_by_run: dict[str, list[float]], task: str = "forecasting") -> list[Comparison]:
    """For each dataset, rank 1 against rank 2, fold by fold (backtest folds, or
    cross-validation folds for classification)."""
    finished = ranked[ranked["rank"].notna()]
    return [_compare(group, metric, greater_is_better, folds_by_run, task)
            for _, group in finished.groupby("dataset", sort=False)]


# where more folds are asked for, by task
FOLDS_KEY = {"forecasting": "dataset.backtest.folds", "classification": "dataset.cv.folds"}


def _compare(group: pd.DataFrame, metric: str, greater_is_better: bool,
             folds_by_run: dict[str, list[float]], task: str) -> Comparison:
    best = group.iloc[0]
    comparison = Comparison(dataset=str(best["dataset"]), best_run_id=best["run_id"],
                            best_name=best["run_name"], best_value=float(best[metric]))
    if len(group) == 1:
        comparison.verdict = "Only one variant finished: nothing to compare against."
        return comparison
    second = group.iloc[1]
    sign = 1.0 if greater_is_better else -1.0
    comparison.runner_up_name = second["run_name"]
    comparison.runner_up_value = float(second[metric])
    comparison.margin = sign * (comparison.best_value - comparison.runner_up_value)
    if comparison.runner_up_value:
        comparison.margin_percent = 100 * comparison.margin / abs(comparison.runner_up_value)

    best_folds = folds_by_run.get(best["run_id"], [])
    second_folds = folds_by_run.get(second["run_id"], [])
    if len(best_folds) == len(second_folds) and len(best_folds) >= 2:
        gains = [sign * (b - s) for b, s in zip(best_folds, second_folds)]
        comparison.folds = len(gains)
        comparison.folds_won = sum(gain > 0 for gain in gains)
        if any(gain != gains[0] for gain in gains):
            comparison.p_value = _paired_t_test(gains)
    comparison.verdict = _verdict(comparison, FOLDS_KEY.get(task, FOLDS_KEY["forecasting"]))
    return comparison


def _paired_t_test(gains: list[float]) -> float:
    """Two-sided p-value of a paired t-test that the mean fold gain is zero.

    Written out rather than taken from ``scipy.stats``, whose import costs a sweep
    0.4 s here; ``tests/test_summary.py`` checks it against ``scipy.stats.ttest_rel``.
    """
    n = len(gains)
    mean = sum(gains) / n
    std = math.sqrt(sum((g - mean) ** 2 for g in gains) / (n - 1))
    t = mean / (std / math.sqrt(n))
    return float(2 * stdtr(n - 1, -abs(t)))


def _verdict(c: Comparison, folds_key: str) -> str:
    if c.folds is None:
        return "The two best runs do not share their folds, so the margin cannot be tested."
    if c.margin == 0:
        return "The two best variants tie."
    wins = f"won {c.folds_won} of {c.folds} folds"
    if c.p_value is None:
        return f"The best {wins} by a constant margin."
    p = f"paired t-test p={c.p_value:.3g}"
    if c.folds_won == c.folds and c.p_value < 0.05:
        return f"Real: the best {wins}, {p}."
    if c.folds_won > c.folds / 2 and c.p_value < 0.2:
        return f"Probably real: the best {wins}, {p}; more folds ({folds_key}) would settle it."
    return f"Not distinguishable: the best {wins}, {p}; treat the top two as equal."


def to_markdown(ranked: pd.DataFrame, comparisons: list[Comparison], metric: str,
                evaluation: str = "backtest") -> str:
    """The parent run's ``summary.md``: the verdict per dataset, then the ranked table.

    ``evaluation`` names what ``metric`` is a mean over: ``backtest`` folds
    (forecasting) or ``cross-validation`` folds (classification).
    """
    lines = [f"# Sweep summary, ranked by {evaluation} `{metric}`", "", *verdict_lines(comparisons, metric)]
    lines.append(_table(ranked))
    return "\n".join(lines) + "\n"


def verdict_lines(comparisons: list[Comparison], metric: str) -> list[str]:
    """The verdict in markdown, per dataset: the best, the margin, whether it is real."""
    if not comparisons:
        return ["No child run finished.", ""]
    lines = []
    for c in comparisons:
        if len(comparisons) > 1:
            lines += [f"## {c.dataset}", ""]
        lines.append(f"- **Best:** {c.best_name} with {metric} = {c.best_value:.4g}")
        if c.margin is not None:
            percent = f" ({c.margin_percent:.1f}%)" if c.margin_percent is not None else ""
            lines.append(f"- **Margin:** {c.margin:.4g}{percent} better than "
                         f"{c.runner_up_name} ({c.runner_up_value:.4g})")
        lines += [f"- **Is it real?** {c.verdict}", ""]
    return lines


def _table(frame: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
