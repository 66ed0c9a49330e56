"""The preprocess group: transforms wrap the model, forecasts come back on the original
scale, and transforms that cannot apply to a series are refused before training."""

from pathlib import Path

import numpy as np
import pytest
from sktime.forecasting.compose import TransformedTargetForecaster
from sktime.forecasting.naive import NaiveForecaster

from tssweep.dataset import load_series
from tssweep.errors import BadInput
from tssweep.preprocess import build_transformers, check_applicable, wrap_forecaster

from omegaconf import OmegaConf

OPTIONS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "preprocess").glob("*.yaml")
                 if "forecasting" in OmegaConf.load(p).tasks)


def test_the_issue_options_exist():
    assert {"none", "log", "boxcox", "detrend", "deseasonalize", "difference",
            "log_deseasonalize_detrend"} <= set(OPTIONS)


@pytest.mark.parametrize("option", OPTIONS)
def test_forecasts_are_back_on_the_original_scale(compose_cfg, option):
    cfg = compose_cfg(f"preprocess={option}")
    series = load_series(cfg.dataset)
    history, actual = series.iloc[:-12], series.iloc[-12:]
    pipeline = wrap_forecaster(cfg.preprocess, NaiveForecaster(strategy="last", sp=12))
    forecast = pipeline.fit(history, fh=np.arange(1, 13)).predict()
    # a log-scale or differenced forecast would be near 6 or near 0; airline is 300-600
    assert forecast.index.equals(actual.index)
    assert 0.5 * actual.min() < forecast.mean() < 1.5 * actual.max()


def test_none_leaves_the_forecaster_alone_and_chains_keep_order(compose_cfg):
    forecaster = NaiveForecaster()
    assert wrap_forecaster(compose_cfg("preprocess=none").preprocess, forecaster) is forecaster
    chain = compose_cfg("preprocess=log_deseasonalize_detrend").preprocess
    assert [name for name, _ in build_transformers(chain)] == ["log", "deseasonalize", "detrend"]
    wrapped = wrap_forecaster(chain, forecaster)
    assert isinstance(wrapped, TransformedTargetForecaster)
    assert [name for name, _ in wrapped.steps][-1] == "forecaster"


def test_seasonal_steps_follow_the_dataset_period(compose_cfg):
    (_, deseasonalizer), = build_transformers(
        compose_cfg("dataset=lynx", "preprocess=deseasonalize").preprocess)
    assert deseasonalizer.sp == 10


@pytest.mark.parametrize("option", ["log", "boxcox", "log_deseasonalize_detrend"])
def test_positive_only_transforms_refuse_a_series_with_zeros(compose_cfg, option):
    cfg = compose_cfg("dataset=pbs", f"preprocess={option}")
    with pytest.raises(BadInput) as raised:
        check_applicable(cfg.preprocess, load_series(cfg.dataset), option)
    message = str(raised.value)
    assert raised.value.key == "preprocess" and f"preprocess={option!r}" in message
    assert "minimum is 0" in message and "strictly positive" in message


def test_multiplicative_deseasonalising_refuses_zeros(compose_cfg):
    cfg = compose_cfg("dataset=pbs", "preprocess=deseasonalize",
                      "preprocess.steps.deseasonalize.model=multiplicative")
    with pytest.raises(BadInput, match="deseasonalize"):
        check_applicable(cfg.preprocess, load_series(cfg.dataset), "deseasonalize")


@pytest.mark.parametrize("option", ["none", "detrend", "deseasonalize", "difference"])
def test_sign_agnostic_transforms_accept_a_series_with_zeros(compose_cfg, option):
    cfg = compose_cfg("dataset=pbs", f"preprocess={option}")
    check_applicable(cfg.preprocess, load_series(cfg.dataset), option)
