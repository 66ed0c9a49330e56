"""``src/predict.py``: a model from the store, asked about what comes after its data.

A forecaster forecasts ``horizon`` steps (by default the horizon it was fitted for)
after the end of the series it was fitted on; a sweep's registered winner was fitted on
the whole series, so that is the future. It goes through the model's pyfunc, as a
served model answers, and is written to ``forecast.csv`` (the period first, the
forecast last; a panel's series before them, every series) and drawn in
``forecast.png`` after the history (a panel's first series), both in the run dir.
A forecaster fitted with exogenous regressors forecasts the steps of the file named by
``data``, which holds their future values (``step``, a panel's ``series``, then one
column per regressor). A classifier labels the series of the file named by ``data``
into ``labels.csv``.
Nothing is written to the store.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from tssweep import dataset, plots, tracking
from tssweep.errors import BadInput
from tssweep.tracking import registry, serving

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> list[Path]:
    """Load ``cfg.model``, forecast or label, write the files; returns their paths."""
    _check_horizon(cfg.horizon)
    store = tracking.connect(cfg.tracking)
    uri, location = registry.resolve(store, cfg.model)
    out = Path(HydraConfig.get().runtime.output_dir)
    with tempfile.TemporaryDirectory() as folder:
        model, face = registry.load(store, location, Path(folder))
        if isinstance(face, serving.ForecastModel):
            written = _forecast(cfg, uri, model, face, out)
        else:
            written = _label(cfg, model, out)
    for path in written:
        print(path)
    return written


def _check_horizon(horizon) -> None:
    """``horizon`` as given: null (the model's own) or a whole number of steps, checked
    before the store is opened or a model loaded."""
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1):
        raise BadInput("horizon", horizon, "must be a whole number of steps >= 1.",
                       "1, 2, ..., or null for the model's own horizon")


def _forecast(cfg: DictConfig, uri: str, model, face: serving.ForecastModel, out: Path) -> list[Path]:
    if face.exog:
        future = _future_regressors(cfg, uri, face)
        horizon = int(future[serving.STEP].max())
    else:
        if cfg.get("data") is not None:
            raise BadInput("data", cfg.data, f"{uri} is a forecaster without regressors: it forecasts "
                           "after the series it was fitted on and reads no file.", "data=null (for this model)")
        horizon = face.fitted_steps if cfg.horizon is None else cfg.horizon
        future = pd.DataFrame({serving.STEP: range(1, horizon + 1)})
    try:
        forecast = model.predict(future)
    except Exception as err:  # the pyfunc's 400s: what the file of regressors lacks
        reason = registry.refusal(err) if face.exog else None
        if reason is None:
            raise
        raise BadInput("data", cfg.data, reason.rstrip(".") + ".") from None
    table, figure = out / "forecast.csv", out / "forecast.png"
    forecast.to_csv(table, index=False)
    history = face.history
    last = history.index[-1][1] if face.series is not None else history.index[-1]
    if face.series is not None:  # a panel: every series in the table, the first few drawn
        plots.panel_future_plot(history, forecast.set_index([serving.SERIES, serving.PERIOD])[face.target],
                                f"{uri}: {horizon} steps after {last}", figure)
    else:
        series = pd.Series(forecast[face.target].to_numpy(), index=face.periods(forecast[serving.STEP]))
        plots.forecast_plot(history, None, series, f"{uri}: {horizon} steps after {last}", figure)
    log.info("%s: %d steps after %s, %s to %s%s", uri, horizon, last,
             forecast[serving.PERIOD].iloc[0], forecast[serving.PERIOD].iloc[-1],
             f", for {len(face.series)} series" if face.series is not None else "")
    return [table, figure]


def _future_regressors(cfg: DictConfig, uri: str, face: serving.ForecastModel) -> pd.DataFrame:
    """The file of future regressor values a model fitted with them forecasts from:
    one row per step (and series), the steps the forecast's."""
    columns = [serving.STEP, *([serving.SERIES] if face.series is not None else []), *face.exog]
    allowed = f"a CSV with the columns {', '.join(columns)}, one row per step{' and series' if face.series else ''}"
    if cfg.get("data") is None:
        raise BadInput("data", None, f"{uri} forecasts with {', '.join(face.exog)}, known for the "
                       "forecast horizon: name a file of their future values.", allowed)
    if cfg.horizon is not None:
        raise BadInput("horizon", cfg.horizon, "the steps are the file's for a model with regressors.",
                       "horizon=null")
    file = Path(str(cfg.data)).expanduser()
    if not file.is_file():
        raise BadInput("data", cfg.data, f"no such file (looked at {file.resolve()}).", allowed)
    try:
        future = pd.read_csv(file)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise BadInput("data", cfg.data, f"cannot be read as CSV ({err}).", allowed) from err
    absent = [column for column in columns if column not in future.columns]
    if absent:
        raise BadInput("data", cfg.data, f"lacks the column{'s' if len(absent) > 1 else ''} "
                       f"{', '.join(absent)}.", allowed)
    return future[columns]


def _label(cfg: DictConfig, model, out: Path) -> list[Path]:
    if cfg.get("data") is None:
        raise BadInput("data", None, f"{cfg.model} is a classifier: name the file of series to label.",
                       "data=<file>.ts, or a .csv with one series per row")
    if cfg.horizon is not None:
        raise BadInput("horizon", cfg.horizon, "a classifier labels series; it has no horizon.",
                       "horizon=null (for classifiers)")
    panel = dataset.read_panel_file(str(cfg.data))
    labels = pd.DataFrame({"series": range(len(panel)), "label": model.predict(panel)})
    table = out / "labels.csv"
    labels.to_csv(table, index=False)
    log.info("%s: %d series labelled, %s", cfg.model, len(labels),
             ", ".join(f"{label} x{count}" for label, count in labels["label"].value_counts().items()))
    return [table]
