"""What a logged forecaster does behind ``mlflow.pyfunc`` and ``mlflow models serve``.

A forecaster's model folder holds the fitted sktime pipeline once (``model.zip``, as
sktime's own MLflow flavor writes it, so ``sktime.utils.mlflow_sktime.load_model``
loads it) and names this module as its pyfunc loader. The pyfunc takes a DataFrame
with one column ``step`` (1, 2, ... after the end of the data the model was fitted on;
any subset, in any order) and returns, per row, the ``period`` forecast, the ``step``
and the forecast under the series' name. So a REST call

    {"dataframe_records": [{"step": 1}, {"step": 2}]}

gets the first two periods after the data, the same numbers ``src/predict.py`` writes.
A forecaster of a panel answers for each of its series (a ``series`` column first),
or for the series named in an optional ``series`` column of the input, row by row. A
forecaster fitted with exogenous regressors needs their values for the periods it
forecasts: one column each in the input, on every row (every step from 1 to the last
asked; for a panel, every series at each, with its ``series``).

The model's code folder holds this file alone, as ``tssweep_serving.py`` (what its
MLmodel names as the loader): it imports nothing from tssweep, so a model loads and
serves with its pinned requirements only, tssweep installed or not, and a model folder
is ten files, not the forty of a whole package (each copied twice a job).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

# sktime's own flavor reads the pipeline from here (sktime's `save` adds ".zip")
PICKLED_MODEL = "model"
# this module's name in a model's code folder, where it stands alone
LOADER_MODULE = "tssweep_serving"
STEP = "step"
PERIOD = "period"
SERIES = "series"


class ForecastModel:
    """A fitted sktime forecaster, asked for steps after the end of its data."""

    def __init__(self, forecaster):
        self.forecaster = forecaster

    @property
    def target(self) -> str:
        return str(self.history.name or "forecast")

    @property
    def history(self) -> pd.Series:
        """The series the forecaster was fitted on (what a plot of its forecast shows);
        a panel's indexed by series id and period."""
        fitted_on = self.forecaster._y  # a frame of one column behind target transforms
        return fitted_on.iloc[:, 0] if isinstance(fitted_on, pd.DataFrame) else fitted_on

    @property
    def exog(self) -> list[str]:
        """The exogenous regressors it was fitted with, whose future values it needs."""
        fitted_with = self.forecaster._X
        return [] if fitted_with is None else [str(column) for column in fitted_with.columns]

    @property
    def series(self) -> list[str] | None:
        """A panel's series ids, in the order fitted; None for one series."""
        index = self.forecaster._y.index
        if not isinstance(index, pd.MultiIndex):
            return None
        return [str(name) for name in index.get_level_values(0).unique()]

    @property
    def fitted_steps(self) -> int:
        """How many steps ahead it was fitted for: its default horizon."""
        return int(max(self.forecaster.fh.to_relative(self.forecaster.cutoff)))

    def periods(self, steps) -> pd.Index:
        """The periods (or time points) ``steps`` steps after the end of its data."""
        from sktime.forecasting.base import ForecastingHorizon

        return ForecastingHorizon(np.asarray(steps), is_relative=True).to_absolute_index(self.forecaster.cutoff)

    def get_raw_model(self):
        """The fitted sktime forecaster (``mlflow.pyfunc``'s ``get_raw_model``)."""
        return self.forecaster

    def predict(self, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        steps = _steps(model_input)
        future = self._future_exog(model_input, steps)
        try:
            forecast = self.forecaster.predict(fh=np.unique(steps), X=future)
        except Exception as err:
            if self.exog:  # the regressors of a step before the last one asked, missing
                raise _bad_request(f"the forecast needs {', '.join(self.exog)} at every period up to "
                                   f"step {int(steps.max())} ({type(err).__name__}: {err}).") from err
            if int(steps.max()) > self.fitted_steps:  # a direct reduction: one model per step
                raise _bad_request(
                    f"step {int(steps.max())} is beyond the {self.fitted_steps} steps this model "
                    f"was fitted for ({type(err).__name__}: {err}); ask for steps 1 to "
                    f"{self.fitted_steps}.") from err
            raise
        # sktime answers the distinct steps in order; the rows follow the input's
        distinct = np.unique(steps)
        periods = np.asarray(self.periods(distinct)).astype(str)
        if self.series is not None:
            return self._panel_rows(model_input, steps, distinct, periods, forecast)
        rows = np.searchsorted(distinct, steps)
        return pd.DataFrame({PERIOD: periods[rows], STEP: steps,
                             self.target: forecast.to_numpy(dtype=float).ravel()[rows]})

    def _future_exog(self, model_input: pd.DataFrame, steps: np.ndarray) -> pd.DataFrame | None:
        """The input's regressor columns indexed as the forecaster was fitted (period;
        a panel's series and period), or None for a model without them."""
        if not self.exog:
            return None
        absent = [name for name in self.exog if name not in model_input.columns]
        if absent:
            raise _bad_request(f"this model forecasts with {', '.join(self.exog)}: give their values "
                               f"for each step as columns; missing {', '.join(absent)}.")
        values = model_input[self.exog].astype(float).to_numpy()
        distinct = np.unique(steps)  # a panel's rows repeat each step
        periods = self.periods(distinct)[np.searchsorted(distinct, steps)]
        if self.series is None:
            return pd.DataFrame(values, index=periods, columns=self.exog)
        if SERIES not in model_input.columns:
            raise _bad_request("this model forecasts with regressors per series: give a 'series' "
                               "column with each row's series.")
        names = self.forecaster._y.index.names
        index = pd.MultiIndex.from_arrays([model_input[SERIES].astype(str).to_numpy(), periods], names=names)
        return pd.DataFrame(values, index=index, columns=self.exog).sort_index()

    def _panel_rows(self, model_input: pd.DataFrame, steps: np.ndarray, distinct: np.ndarray,
                    periods: np.ndarray, forecast: pd.DataFrame) -> pd.DataFrame:
        """A panel's answer: each input row's series and step, or, without a ``series``
        column, every series (in the order fitted) at each step asked."""
        if SERIES in model_input.columns:
            names = model_input[SERIES].astype(str).to_numpy()
            unknown = sorted(set(names) - set(self.series))
            if unknown:
                raise _bad_request(f"no series {unknown[0]!r} in this model; it forecasts "
                                   f"{', '.join(self.series)}.")
            wanted = list(zip(names, steps))
        else:
            wanted = [(name, step) for name in self.series for step in steps]
        values = forecast.iloc[:, 0]
        by_key = {(str(name), str(period)): float(value) for (name, period), value in values.items()}
        period_of = dict(zip(distinct.tolist(), periods))
        return pd.DataFrame({
            SERIES: [name for name, _ in wanted],
            PERIOD: [period_of[int(step)] for _, step in wanted],
            STEP: [int(step) for _, step in wanted],
            self.target: [by_key[(name, period_of[int(step)])] for name, step in wanted],
        })


def _steps(model_input) -> np.ndarray:
    """The ``step`` column as whole numbers >= 1, or one message saying what is wrong."""
    if not isinstance(model_input, pd.DataFrame) or STEP not in model_input.columns:
        raise _bad_request("the input needs a column 'step': the steps ahead to forecast, "
                           "1 for the first period after the data, e.g. "
                           '{"dataframe_records": [{"step": 1}, {"step": 2}]}.')
    values = pd.to_numeric(model_input[STEP], errors="coerce").to_numpy(dtype=float)
    if not len(values):
        raise _bad_request("the input has no rows: give at least one step (1, 2, ...).")
    if not (np.isfinite(values).all() and (values == np.round(values)).all() and (values >= 1).all()):
        raise _bad_request(f"step must be a whole number >= 1; got {model_input[STEP].tolist()}.")
    return values.astype(int)


def _bad_request(message: str) -> Exception:
    """An error the scoring server answers with 400 and ``message``."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _load_pyfunc(path: str) -> ForecastModel:
    """``mlflow.pyfunc``'s hook: the model folder in, the pyfunc face out."""
    from sktime.base import load

    return ForecastModel(load(os.path.join(path, PICKLED_MODEL)))
