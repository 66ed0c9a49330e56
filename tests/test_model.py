"""The model group: CatBoost through sktime reduction, deterministic per seed, and the
seasonal naive baseline."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostError
from sktime.forecasting.naive import NaiveForecaster

from tssweep.dataset import load_series
from tssweep.errors import BadInput
from tssweep.forecast_evaluation import evaluate_forecaster, first_training_points
from tssweep.model import build_model, check_window, feature_importances, longest_window

FAST = ("model.iterations=40", "model.depth=3")


def fit_predict(forecaster, series):
    return forecaster.fit(series.iloc[:-12], fh=np.arange(1, 13)).predict()


def test_catboost_is_deterministic_for_a_seed(compose_cfg):
    cfg = compose_cfg(*FAST)
    series = load_series(cfg.dataset)
    first = fit_predict(build_model(cfg.model), series)
    second = fit_predict(build_model(cfg.model), series)
    reseeded = fit_predict(build_model(compose_cfg(*FAST, "seed=7").model), series)
    assert first.equals(second)
    assert not first.equals(reseeded)


def test_catboost_takes_the_configured_hyperparameters(compose_cfg):
    forecaster = build_model(compose_cfg("model.depth=3", "model.learning_rate=0.05",
                                              "model.window_length=6").model)
    params = forecaster.estimator.get_params()
    assert params["depth"] == 3 and params["learning_rate"] == 0.05
    assert params["allow_writing_files"] is False
    assert forecaster.window_length == 6


@pytest.mark.parametrize("strategy", ["recursive", "direct"])
def test_importances_cover_every_lag(compose_cfg, strategy):
    cfg = compose_cfg(*FAST, f"model.strategy={strategy}")
    forecaster = build_model(cfg.model)
    fit_predict(forecaster, load_series(cfg.dataset))
    importances = feature_importances(forecaster)
    assert sorted(importances) == sorted(f"lag_{lag}" for lag in range(1, 13))
    assert sum(importances.values()) == pytest.approx(100, rel=1e-6)
    if strategy == "recursive":
        # airline's strongest one-step predictor is the same month last year
        assert max(importances, key=importances.get) == "lag_12"


@pytest.mark.parametrize("strategy", ["recursive", "direct"])
def test_the_reduction_is_the_one_sktime_infers_for_catboost(compose_cfg, strategy):
    """The model names the scitype make_reduction would infer for CatBoost: the same
    forecaster, built without sktime's register of base classes."""
    from sktime.forecasting.compose import make_reduction

    forecaster = build_model(compose_cfg(*FAST, f"model.strategy={strategy}").model)
    inferred = make_reduction(forecaster.estimator.copy(), window_length=forecaster.window_length,
                              strategy=strategy)
    assert type(forecaster) is type(inferred)
    assert repr(forecaster.get_params(deep=False)) == repr(inferred.get_params(deep=False))


def test_building_the_model_does_not_import_sktimes_other_estimators():
    code = ("import sys\n"
            "from tssweep.model import catboost\n"
            "catboost(task='forecasting', window_length=12, strategy='recursive', iterations=5, depth=2,"
            " learning_rate=0.1, l2_leaf_reg=3, rsm=None, border_count=None, seed=0, thread_count=1)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('sktime.classification', 'sktime.clustering'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_strategy_is_refused(compose_cfg):
    with pytest.raises(BadInput) as raised:
        build_model(compose_cfg("model.strategy=multioutput").model)
    message = str(raised.value)
    assert "model.strategy='multioutput'" in message and "recursive, direct" in message


def test_naive_baseline_repeats_last_season(compose_cfg):
    cfg = compose_cfg("model=naive")
    forecaster = build_model(cfg.model)
    assert isinstance(forecaster, NaiveForecaster) and forecaster.sp == 12
    series = load_series(cfg.dataset)
    forecast = fit_predict(forecaster, series)
    assert np.array_equal(forecast.to_numpy(), series.iloc[-24:-12].to_numpy())
    assert feature_importances(forecaster) is None


def test_importances_are_found_behind_the_preprocessing(compose_cfg):
    from tssweep.preprocess import wrap_forecaster

    cfg = compose_cfg(*FAST, "preprocess=log_deseasonalize_detrend")
    pipeline = wrap_forecaster(cfg.preprocess, build_model(cfg.model))
    fit_predict(pipeline, load_series(cfg.dataset))
    assert sorted(feature_importances(pipeline)) == sorted(f"lag_{lag}" for lag in range(1, 13))


@pytest.mark.parametrize("strategy", ["recursive", "direct"])
def test_the_longest_window_fits_and_one_more_is_refused_before_fitting(compose_cfg, strategy):
    # shampoo_sales: 36 months, horizon 3, 3 folds 3 apart: the first fold trains on 24
    cfg = compose_cfg("dataset=shampoo_sales", f"model.strategy={strategy}", "model.iterations=10")
    series = load_series(cfg.dataset)
    points = first_training_points(len(series), cfg.dataset)
    longest = longest_window(strategy, points, 3)
    assert (points, longest) == (24, 22 if strategy == "recursive" else 20)
    cfg.model.window_length = longest
    check_window(cfg.model, points, 3)
    scores = evaluate_forecaster(build_model(cfg.model), series, cfg.dataset)  # sktime fits it
    assert len(scores.fold_scores) == 3
    cfg.model.window_length = longest + 1
    with pytest.raises(BadInput, match=f"model.window_length={longest + 1}: the first backtest fold "
                                       f"trains on 24 points.*Allowed: an integer from 1 to {longest}"):
        check_window(cfg.model, points, 3)
    with pytest.raises(CatBoostError, match="All features are either constant"):  # one row left
        evaluate_forecaster(build_model(cfg.model), series, cfg.dataset)


@pytest.mark.parametrize("strategy", ["recursive", "direct"])
def test_global_reduction_fits_one_regressor_on_every_series_windows(strategy):
    # series of unequal lengths ending together, a linear regressor (no series feature,
    # no seed): recursive forecasts equal sktime's global reduction's; direct ones equal
    # one regression per step on the stacked windows (sktime 1.2's global direct repeats
    # its first step's forecast at every step); one series alone equals sktime's own
    # reduction of it
    from sklearn.linear_model import LinearRegression
    from sktime.forecasting.compose import make_reduction

    from tssweep.model import GlobalReduction

    rng = np.random.default_rng(5)
    parts = {name: pd.Series(np.cumsum(rng.normal(size=length)) + 10 * k,
                             index=pd.period_range(end="2020-12", periods=length, freq="M"))
             for k, (name, length) in enumerate({"a": 60, "b": 48, "c": 40}.items())}
    panel = pd.concat(parts, names=["id", "month"]).to_frame("y")
    fh = np.arange(1, 7)
    ours = GlobalReduction(LinearRegression(), window_length=5, strategy=strategy).fit(panel, fh=fh).predict()
    assert len(ours) == 3 * 6 and ours.index.get_level_values(0).unique().tolist() == ["a", "b", "c"]
    if strategy == "recursive":
        theirs = make_reduction(LinearRegression(), window_length=5, pooling="global").fit(panel, fh=fh).predict()
        assert ours["y"].to_numpy() == pytest.approx(theirs.loc[ours.index, "y"].to_numpy(), rel=1e-9)
        # any subset of steps: what a served model is asked
        subset = GlobalReduction(LinearRegression(), 5, strategy).fit(panel, fh=fh).predict(fh=[2, 5])
        assert subset["y"].to_numpy() == pytest.approx(ours.loc[(slice(None), ours.index.levels[1][[1, 4]]), "y"])
    else:
        windows = np.vstack([np.lib.stride_tricks.sliding_window_view(one.to_numpy(), 11) for one in parts.values()])
        last = np.vstack([one.to_numpy()[-5:] for one in parts.values()])
        per_step = np.column_stack([LinearRegression().fit(windows[:, :5], windows[:, 5 + k]).predict(last)
                                    for k in range(6)])
        assert ours["y"].to_numpy() == pytest.approx(per_step.ravel(), rel=1e-9)
    one = GlobalReduction(LinearRegression(), 5, strategy).fit(parts["a"], fh=fh).predict()
    alone = make_reduction(LinearRegression(), window_length=5, strategy=strategy).fit(parts["a"], fh=fh).predict()
    assert isinstance(one, pd.Series) and one.to_numpy() == pytest.approx(alone.to_numpy(), rel=1e-9)
