"""The sweep verdict: ranking per dataset, margins, and when a difference counts as real."""

import pandas as pd
import pytest
from scipy import stats

from tssweep.summary import compare_best, rank, to_markdown


def children(*rows):
    return pd.DataFrame(rows, columns=["run_id", "run_name", "dataset", "status", "mase"])


SWEEP = children(
    ("a", "preprocess=none", "airline", "FINISHED", 1.2),
    ("b", "preprocess=log", "airline", "FINISHED", 0.9),
    ("c", "preprocess=detrend", "airline", "FAILED", None),
    ("d", "preprocess=none", "lynx", "FINISHED", 1.5),
    ("e", "preprocess=log", "lynx", "FINISHED", 1.4),
)


def test_rank_orders_within_each_dataset_and_puts_failures_last():
    ranked = rank(SWEEP, "mase", greater_is_better=False)
    assert ranked["run_id"].tolist() == ["b", "a", "e", "d", "c"]
    assert ranked["rank"].tolist()[:4] == [1, 2, 1, 2] and pd.isna(ranked["rank"].iloc[4])


def test_rank_follows_the_metric_direction():
    ranked = rank(SWEEP.rename(columns={"mase": "acc"}), "acc", greater_is_better=True)
    assert ranked["run_id"].tolist()[:2] == ["a", "b"]


def test_a_margin_won_on_every_fold_is_real():
    folds = {"b": [0.8, 0.9, 1.0, 0.85, 0.95], "a": [1.1, 1.25, 1.2, 1.15, 1.3]}
    (airline, lynx) = compare_best(rank(SWEEP, "mase", False), "mase", False,
                                   {**folds, "d": [1.5] * 5, "e": [1.4] * 5})
    assert airline.best_run_id == "b" and airline.runner_up_name == "preprocess=none"
    assert airline.margin == pytest.approx(0.3)
    assert airline.margin_percent == pytest.approx(25.0)
    assert airline.folds_won == 5 and airline.p_value < 0.05
    assert airline.p_value == pytest.approx(stats.ttest_rel(folds["b"], folds["a"]).pvalue)
    assert airline.verdict.startswith("Real")
    assert lynx.verdict.startswith("The best won 5 of 5 folds by a constant margin")


def test_a_margin_from_one_lucky_fold_is_not_distinguishable():
    folds = {"b": [0.5, 1.25, 1.2, 0.85, 0.95], "a": [1.1, 1.2, 1.15, 0.8, 0.75]}
    (airline, _) = compare_best(rank(SWEEP, "mase", False), "mase", False, folds)
    assert airline.folds_won == 1
    assert airline.p_value == pytest.approx(stats.ttest_rel(folds["b"], folds["a"]).pvalue)
    assert airline.verdict.startswith("Not distinguishable")


def test_markdown_leads_with_the_verdict_and_lists_every_child():
    ranked = rank(SWEEP, "mase", False)
    comparisons = compare_best(ranked, "mase", False, {})
    text = to_markdown(ranked, comparisons, "mase")
    assert "## airline" in text and "## lynx" in text
    assert "**Best:** preprocess=log with mase = 0.9" in text
    assert "do not share their folds" in text
    assert text.count("\n| ") == 1 + len(SWEEP)  # header + one row per child


def test_nothing_finished():
    failed = children(("a", "x", "airline", "FAILED", None))
    ranked = rank(failed, "mase", False)
    assert compare_best(ranked, "mase", False, {}) == []
    assert "No child run finished." in to_markdown(ranked, [], "mase")
