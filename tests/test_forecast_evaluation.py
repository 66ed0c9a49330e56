"""Honest evaluation: folds never look ahead, the holdout stays out of the backtest,
metrics match a hand computation, and a too-short series is refused with the minimum."""

import numpy as np
import pandas as pd
import pytest
from sktime.forecasting.naive import NaiveForecaster

from tssweep.dataset import load_series
from tssweep.errors import BadInput
from tssweep.forecast_evaluation import METRICS, backtest_folds, evaluate_forecaster, make_splitter


def test_folds_train_on_the_past_only_and_stop_before_the_holdout(compose_cfg):
    cfg = compose_cfg()
    series = load_series(cfg.dataset)
    horizon, folds = cfg.dataset.horizon, cfg.dataset.backtest.folds
    history = series.iloc[:-horizon]
    splits = list(make_splitter(len(series), cfg.dataset).split(history))
    assert len(splits) == folds
    for train, test in splits:
        assert train.max() < test.min()  # no look-ahead
        assert len(test) == horizon and test.max() < len(history)  # holdout untouched
        assert train.min() == 0  # expanding window
    cutoffs = [train.max() for train, _ in splits]
    assert np.diff(cutoffs).tolist() == [cfg.dataset.backtest.step] * (folds - 1)
    assert splits[-1][1].max() == len(history) - 1  # the last fold ends right before the holdout


@pytest.mark.parametrize("settings", [[], ["dataset.horizon=6", "dataset.backtest.folds=3"],
                                      ["dataset.backtest.step=5", "dataset.backtest.folds=4"],
                                      ["dataset.horizon=1", "dataset.seasonal_period=4"]])
def test_the_folds_kept_for_every_job_are_the_splitters_on_the_series_itself(compose_cfg, settings):
    cfg = compose_cfg(*settings)
    horizon = cfg.dataset.horizon
    for length in (144, 97, 200):
        values = np.arange(float(length))
        for index in (pd.period_range("1990-01", periods=length, freq="M"),
                      pd.date_range("2001-03-04", periods=length, freq="D"), pd.RangeIndex(10, 10 + length),
                      pd.Index(np.arange(length) * 3 + 7)):
            history = pd.Series(values, index=index).iloc[:-horizon]
            expected = list(make_splitter(length, cfg.dataset).split(history))
            kept = backtest_folds(length, cfg.dataset)
            assert len(kept) == len(expected) == cfg.dataset.backtest.folds
            for (train, test), (want_train, want_test) in zip(kept, expected):
                assert train.tolist() == want_train.tolist() and test.tolist() == want_test.tolist()
    assert backtest_folds(144, cfg.dataset) is backtest_folds(144, cfg.dataset)  # kept, not made again
    with pytest.raises(ValueError):  # and shared by every job: nobody may change them
        backtest_folds(144, cfg.dataset)[0][0][0] = 5
    with pytest.raises(BadInput, match="has 20 points"):
        backtest_folds(20, cfg.dataset)


def test_scores_match_a_hand_computation(compose_cfg):
    cfg = compose_cfg("model=naive")
    series = load_series(cfg.dataset)
    result = evaluate_forecaster(NaiveForecaster(strategy="last", sp=12), series, cfg.dataset)

    assert list(result.fold_scores.index) == list(range(cfg.dataset.backtest.folds))
    assert set(result.backtest_scores) == set(METRICS)
    assert result.backtest_scores["mae"] == pytest.approx(result.fold_scores["mae"].mean())
    # seasonal naive on the holdout: the forecast is last year's values
    holdout, last_year = series.iloc[-12:].to_numpy(), series.iloc[-24:-12].to_numpy()
    assert result.holdout_forecast.to_numpy() == pytest.approx(last_year)
    mae = np.abs(holdout - last_year).mean()
    history = series.iloc[:-12].to_numpy()
    scale = np.abs(history[12:] - history[:-12]).mean()
    assert result.test_scores["test_mae"] == pytest.approx(mae)
    assert result.test_scores["test_mase"] == pytest.approx(mae / scale)
    assert result.test_scores["test_rmse"] == pytest.approx(np.sqrt(((holdout - last_year) ** 2).mean()))
    assert result.history.index[-1] < result.holdout.index[0]
    assert result.fitted.cutoff[0] == result.history.index[-1]
    # the per-point losses the verdict compares: every fold and step, averaging to the fold's score
    points = result.backtest_points
    assert len(points) == cfg.dataset.backtest.folds * 12 and points["step"].max() == 12
    by_fold = points.groupby("fold")
    for name in ("mae", "smape", "mase"):
        assert by_fold[name].mean().tolist() == pytest.approx(result.fold_scores[name].tolist())
    assert np.sqrt(by_fold["rmse"].mean()).tolist() == pytest.approx(result.fold_scores["rmse"].tolist())


def test_scores_equal_sktimes_metrics(compose_cfg):
    # every fold and the holdout, on three series: airline, a random walk with
    # negative values, and one whose training part is constant (MASE's epsilon bound)
    from sktime.performance_metrics.forecasting import (
        mean_absolute_error, mean_absolute_percentage_error, mean_absolute_scaled_error, mean_squared_error)

    cfg = compose_cfg("model=naive")
    rng = np.random.default_rng(0)
    index = pd.period_range("2000-01", periods=144, freq="M")
    walk = pd.Series(np.cumsum(rng.normal(0, 3, 144)), index=index, name="walk")
    flat = pd.Series(np.r_[np.full(132, 5.0), rng.normal(5, 1, 12)], index=index, name="flat")
    for series in (load_series(cfg.dataset), walk, flat):
        result = evaluate_forecaster(NaiveForecaster(strategy="mean", window_length=7), series, cfg.dataset)
        history = series.iloc[:-12]
        splits = list(make_splitter(len(series), cfg.dataset).split(history))
        parts = [(history.iloc[test], history.iloc[train], result.fold_scores.loc[fold])
                 for fold, (train, test) in enumerate(splits)]
        test_scores = {name: result.test_scores[f"test_{name}"] for name in METRICS}
        parts.append((series.iloc[-12:], history, test_scores))
        for fold, (y_true, y_train, scores) in enumerate(parts):
            y_pred = result.holdout_forecast if fold == len(splits) else NaiveForecaster(
                strategy="mean", window_length=7).fit(y_train).predict(y_true.index)
            expected = {
                "mae": mean_absolute_error(y_true, y_pred),
                "rmse": mean_squared_error(y_true, y_pred, square_root=True),
                "smape": mean_absolute_percentage_error(y_true, y_pred, symmetric=True),
                "mase": mean_absolute_scaled_error(y_true, y_pred, y_train=y_train, sp=12),
            }
            assert {name: scores[name] for name in METRICS} == pytest.approx(expected, rel=1e-9), (series.name, fold)


def test_an_undefined_point_loss_is_kept_in_the_points_and_left_out_of_the_score(compose_cfg):
    # intermittent demand: nothing sold in the first half of each year, so the seasonal
    # naive forecast is 0 where the truth is 0, and smape is 0 / 0 at those points
    cfg = compose_cfg("model=naive")
    rng = np.random.default_rng(1)
    index = pd.period_range("2000-01", periods=144, freq="M")
    sales = np.where(index.month <= 6, 0.0, rng.uniform(5, 15, 144))
    result = evaluate_forecaster(NaiveForecaster(strategy="last", sp=12), pd.Series(sales, index=index),
                                 cfg.dataset)
    points = result.backtest_points
    undefined = points["smape"].isna()
    assert undefined.sum() == 6 * cfg.dataset.backtest.folds  # kept, as what the data gave
    assert not points[["mae", "rmse", "mase"]].isna().any().any()
    for fold, rows in points.groupby("fold"):
        defined = rows["smape"].dropna()
        assert len(defined) == 6 and np.isfinite(result.fold_scores.loc[fold, "smape"])
        assert result.fold_scores.loc[fold, "smape"] == pytest.approx(defined.mean())
    assert np.isfinite(result.test_scores["test_smape"])


def test_too_short_a_series_names_the_minimum(compose_cfg):
    cfg = compose_cfg()
    short = pd.Series(np.arange(1.0, 61.0), index=pd.period_range("2000-01", periods=60, freq="M"))
    with pytest.raises(BadInput) as raised:
        evaluate_forecaster(NaiveForecaster(), short, cfg.dataset)
    assert raised.value.key == "dataset.backtest.folds"
    assert "has 60 points" in str(raised.value) and "at least 96" in str(raised.value)


@pytest.mark.parametrize("key", ["dataset.horizon", "dataset.backtest.folds", "dataset.backtest.step"])
def test_non_positive_settings_are_refused(compose_cfg, key):
    with pytest.raises(BadInput, match=key.replace(".", r"\.")):
        make_splitter(144, compose_cfg(f"{key}=0").dataset)


def test_after_fold_sees_each_fold_and_can_stop_the_backtest(compose_cfg):
    cfg = compose_cfg("model=naive")
    seen = []

    class Enough(Exception):
        pass

    def after_fold(fold, scores):
        seen.append((fold, scores["mase"]))
        if fold == 1:
            raise Enough

    with pytest.raises(Enough):
        evaluate_forecaster(NaiveForecaster(sp=12), load_series(cfg.dataset), cfg.dataset, after_fold=after_fold)
    assert [fold for fold, _ in seen] == [0, 1] and all(value > 0 for _, value in seen)


def encoded_panel(lengths: dict[str, int], end: str = "2020-12") -> pd.DataFrame:
    """Monthly series ending together, each value 1000 * the series' number plus the
    period's ordinal: a value says which point it is."""
    parts = {name: pd.Series(1000.0 * number + pd.period_range(end=end, periods=length, freq="M").asi8,
                             index=pd.period_range(end=end, periods=length, freq="M"))
             for number, (name, length) in enumerate(lengths.items())}
    return pd.concat(parts, names=["store", "month"]).to_frame("sales")


def test_a_panel_trains_every_series_up_to_the_shared_cutoff_only(compose_cfg):
    # the last value, forecast: if each series' training ends exactly at the fold's
    # cutoff, the error at step s is s for every series, fold and the holdout
    cfg = compose_cfg("model=naive", "dataset.horizon=6", "dataset.backtest.folds=3", "dataset.backtest.step=4")
    panel = encoded_panel({"long": 90, "mid": 60, "short": 48})
    result = evaluate_forecaster(NaiveForecaster(strategy="last"), panel, cfg.dataset)
    points = result.backtest_points
    assert len(points) == 3 * 3 * 6 and set(points["series"]) == {"long", "mid", "short"}
    assert (points["mae"] == points["step"]).all()
    # the cutoffs are the same calendar months for every series, 4 apart, the last fold
    # ending right before the holdout: where one series alone puts them
    assert result.fold_scores["cutoff"].tolist() == ["2019-04", "2019-08", "2019-12"]
    alone = evaluate_forecaster(NaiveForecaster(strategy="last"), panel.xs("short")["sales"], cfg.dataset)
    assert alone.fold_scores["cutoff"].tolist() == result.fold_scores["cutoff"].tolist()
    assert points.groupby(["fold", "step"])["time"].nunique().eq(1).all()
    assert str(result.history.index.get_level_values(1).max()) == "2020-06"
    assert set(result.holdout.index.get_level_values(1).astype(str)) == {f"2020-{m:02d}" for m in range(7, 13)}
    # per series: its backtest mean and holdout scores; the panel's are their means
    scores = result.series_scores
    assert scores.index.tolist() == ["long", "mid", "short"] and scores["points"].tolist() == [90, 60, 48]
    assert scores["mae"].tolist() == pytest.approx([3.5] * 3) and scores["test_mae"].tolist() == pytest.approx([3.5] * 3)
    assert result.backtest_scores["mase"] == pytest.approx(scores["mase"].mean())
    assert result.test_scores["test_mase"] == pytest.approx(scores["test_mase"].mean())


def test_a_series_too_short_for_the_backtest_is_named(compose_cfg):
    cfg = compose_cfg("model=naive")
    with pytest.raises(BadInput, match=r"the series has 30 points.*\(series 'short'\)"):
        evaluate_forecaster(NaiveForecaster(), encoded_panel({"long": 120, "short": 30}), cfg.dataset)


def test_local_pooling_fits_a_catboost_per_series_and_global_one_for_all(compose_cfg):
    from tssweep.model import build_model

    rng = np.random.default_rng(3)
    index = pd.period_range(end="2020-12", periods=72, freq="M")
    season = np.sin(2 * np.pi * np.arange(72) / 12)
    panel = pd.concat({f"s{k}": pd.Series(50 * (k + 1) + 10 * season * (k + 1) + rng.normal(0, 1, 72), index=index)
                       for k in range(4)}, names=["store", "month"]).to_frame("sales")
    fitted, results = {}, {}
    for pooling in ("local", "global"):
        cfg = compose_cfg(f"model.pooling={pooling}", "model.iterations=30", "dataset.horizon=6",
                          "dataset.backtest.folds=2", "dataset.backtest.step=6")
        results[pooling] = evaluate_forecaster(build_model(cfg.model), panel, cfg.dataset)
        fitted[pooling] = results[pooling].fitted
    # local: sktime broadcasts the reduction, one fitted CatBoost per series; global:
    # one CatBoost on every series' windows, the series id a categorical feature
    assert len(fitted["local"].forecasters_) == 4
    (regressor,) = fitted["global"].estimators_
    assert type(regressor).__name__ == "CatBoostRegressor"
    assert regressor.feature_names_ == [f"lag_{lag}" for lag in range(12, 0, -1)] + ["series"]
    assert regressor.get_cat_feature_indices() == [12]
    for result in results.values():
        assert result.series_scores.index.tolist() == ["s0", "s1", "s2", "s3"]
        assert result.holdout_forecast.index.get_level_values(0).unique().tolist() == ["s0", "s1", "s2", "s3"]
    assert results["local"].backtest_scores["mase"] != results["global"].backtest_scores["mase"]


@pytest.mark.parametrize("strategy", ["recursive", "direct"])
def test_exogenous_regressors_known_for_the_horizon_are_used(compose_cfg, strategy):
    # a target that is 5 times an unforecastable regressor: with the regressor's values
    # at the forecast periods the error collapses, on one series and on a panel
    from tssweep.model import build_model

    rng = np.random.default_rng(11)
    index = pd.period_range(end="2020-12", periods=96, freq="M")
    cfg = compose_cfg("model.pooling=global", f"model.strategy={strategy}", "model.iterations=100", "dataset.horizon=6",
                      "dataset.backtest.folds=2", "dataset.backtest.step=6")
    parts = {}
    for name in ("a", "b"):
        x = rng.normal(0, 1, 96)
        parts[name] = pd.DataFrame({"y": 100 + 5 * x + rng.normal(0, 0.1, 96), "x": x}, index=index)
    single = parts["a"]
    panel = pd.concat(parts, names=["id", "month"])
    for y, exog in ((single["y"], single[["x"]]), (panel[["y"]], panel[["x"]])):
        without = evaluate_forecaster(build_model(cfg.model), y, cfg.dataset)
        with_x = evaluate_forecaster(build_model(cfg.model), y, cfg.dataset, exog=exog)
        assert with_x.backtest_scores["mase"] < 0.5 * without.backtest_scores["mase"]
        assert with_x.test_scores["test_mase"] < 0.5 * without.test_scores["test_mase"]
