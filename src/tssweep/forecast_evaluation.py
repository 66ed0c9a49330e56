"""Honest scoring of one forecasting pipeline: backtest folds, then an untouched holdout.

The last ``horizon`` points are the holdout. Sweeps and searches only ever see the
backtest on the data before it: an expanding-window splitter with forecasting horizon
``1..horizon``, each fold fitted on the past alone. Only after that is the pipeline
refitted on everything before the holdout and scored on it (``test_*`` metrics), so
picking the best of many variants by backtest score does not leak into the test.

A panel of series (see :func:`tssweep.dataset.is_panel`) is evaluated the same way,
on cutoffs shared by every series: its series end in the same period, so the holdout
is the last ``horizon`` periods of each, and each fold trains every series on its
periods up to the fold's cutoff and scores the next ``horizon``. The pipeline is
fitted on all series at once (one model per series, or one for all: the model's
``pooling``). Each series is scored as one series is; the panel's scores are the
means over its series (the mean MASE over series), and ``series_scores`` holds each
series' own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from tssweep.dataset import is_panel, series_of
from tssweep.errors import BadInput

if TYPE_CHECKING:  # sktime is imported where it is used: a sweep's writer reads a
    # ForecastEvaluation (its pipeline packed apart, tssweep.records) without sktime
    from sktime.forecasting.base import BaseForecaster
    from sktime.split import ExpandingWindowSplitter

# the scores, all errors: lower is better (tssweep.objectives holds every objective's
# direction). Each is the mean of its point losses (:func:`point_losses`), the root of
# it for rmse: sktime's mean_absolute_error, mean_squared_error(square_root=True),
# mean_absolute_percentage_error(symmetric=True) and mean_absolute_scaled_error, which
# tests/test_forecast_evaluation.py holds them equal to. Computed from the losses the
# verdict compares, at a sixth of the cost of calling sktime's four per fold.
METRICS = ("mae", "rmse", "smape", "mase")


@dataclass
class ForecastEvaluation:
    """Everything one job measured, ready to be logged.

    ``fold_scores`` has one row per backtest fold (metrics, cutoff, fit and predict
    seconds); ``backtest_scores`` their means, the numbers sweeps compare;
    ``test_scores`` the holdout's (``test_mase``, ...). ``fitted`` is the pipeline
    refitted on ``history`` (everything before the holdout) that produced
    ``holdout_forecast``. ``backtest_points`` has a row per backtest fold and horizon
    step with each metric's loss at that point (see :func:`point_losses`), whose mean
    over a fold is the fold's score (the root of it for ``rmse``): what a verdict
    compares variants on. On a panel, points and scores are per series too (a
    ``series`` column), and ``series_scores`` has a row per series: its backtest
    means and its holdout scores.
    """

    fold_scores: pd.DataFrame
    backtest_points: pd.DataFrame
    backtest_scores: dict[str, float]
    test_scores: dict[str, float]
    history: pd.Series
    holdout: pd.Series
    holdout_forecast: pd.Series
    fitted: BaseForecaster
    fit_seconds: float
    predict_seconds: float
    series_scores: pd.DataFrame | None = None

    def objective(self, name: str) -> float:
        """A backtest mean by metric name, or the total fit or predict seconds."""
        return self.backtest_scores[name] if name in self.backtest_scores else float(getattr(self, name))


def first_training_points(series_length: int, dataset_cfg: DictConfig) -> int:
    """How many points the first (shortest) backtest fold trains on."""
    horizon, folds = int(dataset_cfg.horizon), int(dataset_cfg.backtest.folds)
    return series_length - 2 * horizon - (folds - 1) * int(dataset_cfg.backtest.step)


def make_splitter(series_length: int, dataset_cfg: DictConfig) -> ExpandingWindowSplitter:
    """Expanding-window backtest over the data before the holdout, checked for length.

    The first fold trains on at least two seasonal periods, so seasonal transforms and
    the seasonal MASE denominator both have enough data.
    """
    horizon = int(dataset_cfg.horizon)
    folds = int(dataset_cfg.backtest.folds)
    step = int(dataset_cfg.backtest.step)
    seasonal_period = int(dataset_cfg.seasonal_period)
    for key, value, low in (("dataset.horizon", horizon, 1), ("dataset.backtest.folds", folds, 1),
                            ("dataset.backtest.step", step, 1),
                            ("dataset.seasonal_period", seasonal_period, 1)):
        if value < low:
            raise BadInput(key, value, f"must be at least {low}.", f"an integer >= {low}")
    min_train = max(2 * seasonal_period, horizon, 3)
    needed = min_train + horizon + (folds - 1) * step + horizon
    if series_length < needed:
        raise BadInput(
            "dataset.backtest.folds", folds,
            f"the series has {series_length} points, too few for a holdout of {horizon}, "
            f"{folds} folds {step} apart with horizon {horizon} and a first training window of "
            f"{min_train}; it needs at least {needed}.",
            "fewer folds, a smaller dataset.horizon or dataset.backtest.step, or a longer series",
        )
    initial_window = first_training_points(series_length, dataset_cfg)
    from sktime.split import ExpandingWindowSplitter

    return ExpandingWindowSplitter(fh=np.arange(1, horizon + 1), initial_window=initial_window,
                                   step_length=step)


def backtest_folds(series_length: int, dataset_cfg: DictConfig) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The positions each backtest fold trains on and forecasts, in a series of
    ``series_length`` points minus its holdout: :func:`make_splitter`'s splits (checked
    for length as it checks), computed once per length and settings in a process, not
    at every job of a sweep (6 ms a job here). The splitter counts positions, so any
    series of that length has them."""
    return _backtest_folds(series_length, int(dataset_cfg.horizon), int(dataset_cfg.backtest.folds),
                           int(dataset_cfg.backtest.step), int(dataset_cfg.seasonal_period))


@lru_cache(maxsize=64)
def _backtest_folds(series_length: int, horizon: int, folds: int, step: int,
                    seasonal_period: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    settings = OmegaConf.create({"horizon": horizon, "seasonal_period": seasonal_period,
                                 "backtest": {"folds": folds, "step": step}})
    splits = tuple(make_splitter(series_length, settings).split(pd.RangeIndex(series_length - horizon)))
    for positions in splits:
        for array in positions:
            array.setflags(write=False)  # shared by every job that asks
    return splits


def evaluate_forecaster(forecaster: BaseForecaster, series: pd.Series | pd.DataFrame,
                        dataset_cfg: DictConfig,
                        after_fold: Callable[[int, dict], None] | None = None,
                        exog: pd.DataFrame | None = None) -> ForecastEvaluation:
    """Backtest ``forecaster`` on ``series`` minus the holdout, then score the holdout.

    ``series`` may be a panel (see the module docstring). ``after_fold(fold, scores)``
    is called with each fold's scores as soon as they are known; it may raise to stop
    early (Optuna pruning does). ``exog`` (on the series' index) holds regressors known
    for the forecast horizon: each fit gets their past, each forecast their values at
    the periods it forecasts.
    """
    if is_panel(series):
        return _evaluate_panel(forecaster, series, dataset_cfg, after_fold, exog)
    horizon = int(dataset_cfg.horizon)
    seasonal_period = int(dataset_cfg.seasonal_period)
    history, holdout = series.iloc[:-horizon], series.iloc[-horizon:]
    fold_rows, points = [], []
    for fold, (train_index, test_index) in enumerate(backtest_folds(len(series), dataset_cfg)):
        y_train, y_test = history.iloc[train_index], history.iloc[test_index]
        _, forecast, fit_seconds, predict_seconds = _fit_predict(
            forecaster, y_train, y_test.index, *_known(exog, y_train.index, y_test.index))
        losses = point_losses(y_test, forecast, y_train, seasonal_period)
        fold_rows.append({"fold": fold, "cutoff": str(y_train.index[-1]), **_score(losses),
                          "fit_seconds": fit_seconds, "predict_seconds": predict_seconds})
        points.append(_labelled(losses, fold=fold))
        if after_fold is not None:
            after_fold(fold, fold_rows[-1])
    fold_scores = pd.DataFrame(fold_rows).set_index("fold")

    fitted, holdout_forecast, fit_seconds, predict_seconds = _fit_predict(
        forecaster, history, holdout.index, *_known(exog, history.index, holdout.index))
    test_scores = {f"test_{name}": value for name, value in
                   _score(point_losses(holdout, holdout_forecast, history, seasonal_period)).items()}
    return _evaluation(fold_scores, points, {name: float(fold_scores[name].mean()) for name in METRICS},
                       test_scores, history, holdout, holdout_forecast, fitted, fit_seconds, predict_seconds)


def _evaluation(fold_scores: pd.DataFrame, points: list[dict], backtest_scores: dict, test_scores: dict,
                history, holdout, holdout_forecast, fitted, fit_seconds: float, predict_seconds: float,
                series_scores: pd.DataFrame | None = None) -> ForecastEvaluation:
    """A job's evaluation from its parts: the folds' points stacked (a panel's with
    their series), the seconds of the folds and the holdout's fit added up."""
    keys = ["fold", "series", "step", "time"] if series_scores is not None else ["fold", "step", "time"]
    return ForecastEvaluation(
        fold_scores=fold_scores,
        backtest_points=pd.DataFrame({key: np.concatenate([one[key] for one in points])
                                      for key in [*keys, *METRICS]}),
        backtest_scores=backtest_scores,
        test_scores=test_scores,
        history=history,
        holdout=holdout,
        holdout_forecast=holdout_forecast,
        fitted=fitted,
        fit_seconds=float(fold_scores["fit_seconds"].sum() + fit_seconds),
        predict_seconds=float(fold_scores["predict_seconds"].sum() + predict_seconds),
        series_scores=series_scores,
    )


def check_panel(panel: pd.DataFrame, dataset_cfg: DictConfig) -> None:
    """Every series of ``panel`` is long enough for the holdout and the backtest; a
    series that is not is named."""
    for name, one in series_of(panel).items():
        try:
            make_splitter(len(one), dataset_cfg)
        except BadInput as err:
            raise err.within(f"series {name!r}") from None


def panel_cutoffs(panel: pd.DataFrame, dataset_cfg: DictConfig) -> tuple[list[pd.Period], pd.Period]:
    """The backtest folds' cutoffs (the last period each fold trains on) and the
    holdout's (the last period before it), shared by every series of ``panel``: as
    one series of the panel's length places them, counted back from its last period."""
    horizon, folds, step = (int(dataset_cfg.horizon), int(dataset_cfg.backtest.folds),
                            int(dataset_cfg.backtest.step))
    end = panel.index.get_level_values(1).max()
    holdout_cutoff = end - horizon
    return [holdout_cutoff - horizon - (folds - 1 - fold) * step for fold in range(folds)], holdout_cutoff


def _evaluate_panel(forecaster: BaseForecaster, panel: pd.DataFrame, dataset_cfg: DictConfig,
                    after_fold: Callable[[int, dict], None] | None,
                    exog: pd.DataFrame | None) -> ForecastEvaluation:
    horizon, seasonal_period = int(dataset_cfg.horizon), int(dataset_cfg.seasonal_period)
    check_panel(panel, dataset_cfg)
    cutoffs, holdout_cutoff = panel_cutoffs(panel, dataset_cfg)
    periods = panel.index.get_level_values(1)
    history, holdout = panel[periods <= holdout_cutoff], panel[periods > holdout_cutoff]

    def fit_and_score(cutoff: pd.Period, train: pd.DataFrame):
        ahead = pd.period_range(cutoff + 1, periods=horizon, freq=cutoff.freq)
        future = panel[periods.isin(ahead)]
        model, forecast, fit_seconds, predict_seconds = _fit_predict(
            forecaster, train, ahead, *_known(exog, train.index, future.index))
        truth = series_of(future)
        predicted = series_of(forecast)
        losses = {name: point_losses(truth[name], predicted[name], past, seasonal_period)
                  for name, past in series_of(train).items()}
        return model, forecast, losses, fit_seconds, predict_seconds

    fold_rows, points, per_series = [], [], []
    for fold, cutoff in enumerate(cutoffs):
        _, _, losses, fit_seconds, predict_seconds = fit_and_score(cutoff, panel[periods <= cutoff])
        scores = {name: _score(frame) for name, frame in losses.items()}
        per_series += [{"series": name, "fold": fold, **values} for name, values in scores.items()]
        fold_rows.append({"fold": fold, "cutoff": str(cutoff),
                          **pd.DataFrame(scores.values()).mean().to_dict(),
                          "fit_seconds": fit_seconds, "predict_seconds": predict_seconds})
        points += [_labelled(frame, fold=fold, series=name) for name, frame in losses.items()]
        if after_fold is not None:
            after_fold(fold, fold_rows[-1])
    fold_scores = pd.DataFrame(fold_rows).set_index("fold")

    fitted, holdout_forecast, losses, fit_seconds, predict_seconds = fit_and_score(holdout_cutoff, history)
    backtest = pd.DataFrame(per_series).groupby("series", sort=False)[list(METRICS)].mean()
    tested = pd.DataFrame({name: _score(frame) for name, frame in losses.items()}).T.add_prefix("test_")
    series_scores = backtest.join(tested).rename_axis("series")
    series_scores.insert(0, "points", pd.Series({name: len(one) for name, one in series_of(panel).items()}))
    return _evaluation(fold_scores, points, {name: float(series_scores[name].mean()) for name in METRICS},
                       {f"test_{name}": float(series_scores[f"test_{name}"].mean()) for name in METRICS},
                       history, holdout, holdout_forecast, fitted, fit_seconds, predict_seconds, series_scores)


def fit_forecaster(forecaster: BaseForecaster, series: pd.Series, horizon: int,
                   exog: pd.DataFrame | None = None) -> BaseForecaster:
    """A fresh clone fitted on the whole ``series`` (and its regressors), holdout
    included, for ``horizon`` steps after its end: what a sweep's winner becomes once
    it has been scored."""
    return forecaster.clone().fit(series, X=exog, fh=np.arange(1, horizon + 1))


def _known(exog: pd.DataFrame | None, past: pd.Index, ahead: pd.Index) -> tuple:
    """The regressors of a fit's past and of the periods it forecasts, or (None, None)."""
    return (None, None) if exog is None else (exog.loc[past], exog.loc[ahead])


def _fit_predict(forecaster: BaseForecaster, y_train: pd.Series, target_index: pd.Index,
                 X_train: pd.DataFrame | None = None, X_ahead: pd.DataFrame | None = None):
    """Fit a fresh clone on ``y_train`` (and ``X_train``) and forecast ``target_index``
    (with ``X_ahead``, the regressors there); time both."""
    from sktime.forecasting.base import ForecastingHorizon

    fh = ForecastingHorizon(target_index, is_relative=False)
    model = forecaster.clone()
    start = time.perf_counter()
    model.fit(y_train, X=X_train, fh=fh)
    fitted_at = time.perf_counter()
    forecast = model.predict(fh, X=X_ahead)
    done = time.perf_counter()
    return model, forecast, fitted_at - start, done - fitted_at


def point_losses(y_true: pd.Series, y_pred: pd.Series, y_train: pd.Series, sp: int) -> dict[str, np.ndarray]:
    """Each metric's loss at each forecast point (``step`` 1..h, at ``time``): absolute
    error for ``mae``, squared error for ``rmse``, the symmetric percentage error for
    ``smape``, the absolute error over the in-sample seasonal naive error for ``mase``
    (at least the float epsilon, as sktime bounds it). Arrays, not a frame: a job scores
    six forecasts, and the frame of all its points is made once (:func:`_evaluation`)."""
    truth, predicted = y_true.to_numpy(float), y_pred.to_numpy(float)
    error = np.abs(truth - predicted)
    train = y_train.to_numpy(float)
    naive = max(np.mean(np.abs(train[sp:] - train[:-sp])), np.finfo(float).eps) if len(train) > sp else np.nan
    return {
        "step": np.arange(1, len(error) + 1), "time": np.asarray(y_true.index.astype(str), dtype=object),
        "mae": error, "rmse": error ** 2,
        "smape": 2 * error / (np.abs(truth) + np.abs(predicted)),
        "mase": error / naive,
    }


def _labelled(losses: dict[str, np.ndarray], **labels) -> dict[str, np.ndarray]:
    """``losses`` with a column of each label's value (its fold, its series)."""
    size = len(losses["step"])
    return {**losses, **{key: np.full(size, value) for key, value in labels.items()}}


def _score(losses: dict[str, np.ndarray]) -> dict[str, float]:
    """A forecast's scores from its point losses (see ``METRICS``); a point whose loss
    is undefined (NaN: a smape of 0 / 0, a mase without a seasonal naive) is left out."""
    scores = {}
    for name in METRICS:
        defined = losses[name][~np.isnan(losses[name])]
        mean = float(defined.mean()) if defined.size else float("nan")
        scores[name] = float(np.sqrt(mean)) if name == "rmse" else mean
    return scores
