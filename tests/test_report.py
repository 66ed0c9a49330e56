"""The parent's report: rivals grouped by their data, a model confidence set per group,
ranks across datasets, and a verdict that says "Real" as rarely as it should."""

import numpy as np
import pandas as pd
import pytest

from tssweep import report

COLUMNS = ["run_id", "run_name", "dataset", "status", "mase", "data.fingerprint", "dataset.horizon",
           "variant"]


def children(*rows):
    return pd.DataFrame(rows, columns=COLUMNS)


SWEEP = children(
    ("a", "none", "airline", "FINISHED", 1.2, "f1", "12", "none"),
    ("b", "log", "airline", "FINISHED", 0.9, "f1", "12", "log"),
    ("c", "detrend", "airline", "FAILED", None, "f1", "12", "detrend"),
    ("d", "none", "lynx", "FINISHED", 1.5, "f2", "10", "none"),
    ("e", "log", "lynx", "FINISHED", 1.4, "f2", "10", "log"),
)


def ranked(frame=SWEEP, metric="mase", higher=False):
    return report.rank(report.group_children(frame), metric, higher)


def test_rank_orders_within_each_group_and_puts_failures_last():
    table = ranked()
    assert table["run_id"].tolist() == ["b", "a", "e", "d", "c"]
    assert table["rank"].tolist()[:4] == [1, 2, 1, 2] and pd.isna(table["rank"].iloc[4])
    assert report.rank(report.group_children(SWEEP.rename(columns={"mase": "acc"})), "acc", True)[
        "run_id"].tolist()[:2] == ["a", "b"]


def test_rivals_share_their_data_and_evaluation():
    # two targets of one dataset (two fingerprints) and two horizons: four groups, no rivals
    frame = children(
        ("a", "h6", "uschange", "FINISHED", 1.0, "income", "6", "x"),
        ("b", "h12", "uschange", "FINISHED", 0.5, "income", "12", "x"),
        ("c", "h6", "uschange", "FINISHED", 0.9, "savings", "6", "x"),
        ("d", "h6b", "uschange", "FINISHED", 0.8, "income", "6", "y"),
    )
    table = ranked(frame)
    groups = dict(zip(table["run_id"], table["group"]))
    assert groups["a"] == groups["d"] != groups["b"] != groups["c"] != groups["a"]
    assert len(set(groups.values())) == 3
    assert "horizon 12" in groups["b"] and "data savin" in groups["c"]
    assert table.loc[table["run_id"] == "d", "rank"].item() == 1  # d beats a, its only rival


def point_losses(rng, gains, folds=5, horizon=12, phi=0.6):
    """Per-point losses of variants scored on the same backtest points: a component all
    share (hard points are hard for everyone) and each one's own serially dependent
    noise within a fold's forecast, lowered by ``gains``."""
    points = folds * horizon
    own, noise = np.zeros((points, len(gains))), rng.standard_normal((points, len(gains)))
    for t in range(1, points):
        own[t] = (phi * own[t - 1] if t % horizon else 0) + noise[t]
    losses = 1 + 2 * np.abs(rng.standard_normal(points))[:, None] + 0.5 * own - np.asarray(gains)
    index = pd.MultiIndex.from_product([range(folds), range(1, horizon + 1)], names=["fold", "step"])
    return {f"r{i}": pd.Series(losses[:, i], index=index) for i in range(len(gains))}


def verdict_of(losses, size=0.1, reps=300, seed=0):
    frame = pd.DataFrame({"run_id": list(losses), "run_name": [f"v{i}" for i in range(len(losses))],
                          "dataset": "d", "status": "FINISHED",
                          "mase": [series.mean() for series in losses.values()], "dataset.horizon": "12"})
    (verdict,) = report.judge(ranked(frame), "mase", losses, size=size, reps=reps, seed=seed)
    return verdict


def test_null_sweeps_are_rarely_called_real_and_a_planted_gain_is_found():
    # calibration, the statistics alone: 200 synthetic sweeps of four variants each
    rng = np.random.default_rng(7)
    null = [verdict_of(point_losses(rng, [0, 0, 0, 0]), seed=i).text for i in range(200)]
    false_real = np.mean([text.startswith("Real") for text in null])
    planted = [verdict_of(point_losses(rng, [0.7, 0, 0, 0]), seed=i) for i in range(200)]
    found = np.mean([v.text.startswith("Real") and v.best_name == "v0" for v in planted])
    print(f"null sweeps called real: {false_real:.1%}; planted gain found: {found:.1%}")
    assert false_real <= 0.10  # the set's size
    assert found >= 0.8


def test_the_verdict_names_the_ties_and_says_real_only_when_the_best_is_alone():
    rng = np.random.default_rng(1)
    tie = verdict_of(point_losses(rng, [0, 0, 0]))
    assert tie.text.startswith("Not distinguishable") and len(tie.best_set) >= 2
    assert all(name in tie.text for name in tie.best_set)
    clear = verdict_of(point_losses(rng, [2.0, 0, 0]))
    assert clear.best_set == ["v0"] and clear.text.startswith("Real: v0 is alone in the 90% model")
    assert clear.margin > 0 and clear.p_values["r0"] == 1.0 and clear.p_values["r1"] < 0.1


def test_without_shared_points_there_is_no_test():
    rng = np.random.default_rng(2)
    losses = point_losses(rng, [0, 0])
    losses["r1"] = losses["r1"].iloc[:10]  # scored on other points
    assert "cannot be tested" in verdict_of(losses).text
    (only,) = report.judge(ranked(SWEEP.iloc[[3]]), "mase", {})
    assert only.text.startswith("Only one variant finished")


def test_a_classification_verdict_on_per_series_losses():
    rng = np.random.default_rng(3)
    wrong = {"a": pd.Series(rng.random(200) < 0.10).astype(float), "b": pd.Series(rng.random(200) < 0.40).astype(float)}
    frame = pd.DataFrame({"run_id": ["a", "b"], "run_name": ["minirocket", "summary"], "dataset": "gunpoint",
                          "status": "FINISHED", "cv_accuracy": [1 - wrong["a"].mean(), 1 - wrong["b"].mean()]})
    (verdict,) = report.judge(report.rank(report.group_children(frame), "cv_accuracy", True), "cv_accuracy", wrong)
    assert verdict.best_name == "minirocket" and verdict.text.startswith("Real")
    assert report.loss_column("cv_accuracy") == "accuracy" and report.loss_column("fit_seconds") is None


def test_across_datasets_ranks_the_variants_with_friedman_and_a_diagram(tmp_path):
    rows = [(f"{d}{v}", v, d, "FINISHED", score, d, "12", v)
            for d, offset in (("airline", 0.0), ("lynx", 0.5), ("pbs", 1.0), ("shampoo", 0.2))
            for v, score in (("detrend", 0.8 + offset), ("none", 1.2 + offset), ("log", 1.0 + offset))]
    across = report.across_datasets(ranked(children(*rows)), "mase")
    assert across["ranks"].to_dict() == {"detrend": 1.0, "log": 2.0, "none": 3.0}
    assert across["friedman_p"] == pytest.approx(0.0183, abs=1e-3)  # scipy's, 4 datasets x 3 variants
    report.critical_difference(across, tmp_path / "cd.png")
    assert (tmp_path / "cd.png").stat().st_size > 5000
    assert report.across_datasets(ranked(children(*rows[:6])), "mase") is None  # two datasets


def test_the_summary_keeps_its_contract(tmp_path):
    rng = np.random.default_rng(4)
    losses = point_losses(rng, [2.0, 0])
    frame = pd.DataFrame({"run_id": ["r0", "r1"], "run_name": ["detrend", "none"], "dataset": "airline",
                          "status": "FINISHED", "mase": [losses["r0"].mean(), losses["r1"].mean()],
                          "data.fingerprint": "f", "dataset.horizon": "12", "variant": ["detrend", "none"]})
    made = report.write_report(frame, losses, {"r0": [1.0, 1.1], "r1": [3.0, 3.2]}, "mase", "forecasting",
                               tmp_path, reps=300)
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("# Sweep summary, ranked by backtest `mase`")
    assert "- **Best:** detrend" in text and "- **Margin:**" in text
    assert "- **Is it real?** Real: detrend is alone" in text
    table = pd.read_csv(tmp_path / "children.csv")
    assert table["in_best_set"].tolist() == [True, False] and table["mcs_p_value"].iloc[0] == 1.0
    assert made.metrics["n_in_best_set"] == 1 and made.best_first == ["r0", "r1"]


def test_trials_that_drew_the_same_model_tie_instead_of_stalling_the_test():
    # identical per-series losses (a search's trials often land on one model) and losses
    # a constant apart: the MCS divides by their zero spread, so they are tested once
    rng = np.random.default_rng(5)
    base = pd.Series((rng.random(20) < 0.3).astype(float))
    perfect = pd.Series(np.zeros(20))
    losses = {"a": base, "b": base.copy(), "c": perfect, "d": perfect.copy(), "e": base.where(base > 0, 0.5)}
    frame = pd.DataFrame({"run_id": list(losses), "run_name": list(losses), "dataset": "unit_test",
                          "status": "FINISHED", "cv_accuracy": [1 - s.mean() for s in losses.values()]})
    (verdict,) = report.judge(report.rank(report.group_children(frame), "cv_accuracy", True), "cv_accuracy", losses)
    assert sorted(verdict.best_set) == ["c", "d"] and verdict.text.startswith("Not distinguishable")
    assert verdict.p_values["a"] == verdict.p_values["b"] < 0.1 and verdict.p_values["c"] == 1.0
