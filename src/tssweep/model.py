"""The ``model`` config group: the forecaster at the end of the pipeline.

Each ``conf/model/*.yaml`` is instantiated as it stands: sktime estimators directly
(``naive``), or :func:`catboost_forecaster` for the reduction to CatBoost, whose flat
arguments keep the MLflow params readable (``model.depth``, not
``model.estimator.depth``).
"""

from __future__ import annotations

from catboost import CatBoostRegressor
from omegaconf import DictConfig
from sktime.forecasting.base import BaseForecaster
from sktime.forecasting.compose import make_reduction

from tssweep.errors import BadInput, instantiate

STRATEGIES = ("recursive", "direct")


def build_forecaster(model_cfg: DictConfig) -> BaseForecaster:
    """Instantiate the model group's config into an unfitted sktime forecaster."""
    return instantiate(model_cfg, _convert_="all")


def catboost_forecaster(
    window_length: int,
    strategy: str,
    iterations: int,
    depth: int,
    learning_rate: float,
    l2_leaf_reg: float,
    seed: int,
    thread_count: int,
) -> BaseForecaster:
    """CatBoostRegressor on the last ``window_length`` values, via sktime reduction.

    Parameters
    ----------
    window_length : int
        Lags the regressor sees; defaults to the dataset's seasonal period.
    strategy : {"recursive", "direct"}
        ``recursive`` fits one model and feeds its forecasts back in; ``direct``
        fits one model per horizon step.
    iterations, depth, learning_rate, l2_leaf_reg : CatBoost hyperparameters.
    seed : int
        CatBoost's ``random_seed``: equal seeds give equal forecasts.
    thread_count : int
        CatBoost threads; ``-1`` uses every core.
    """
    if strategy not in STRATEGIES:
        raise BadInput("model.strategy", strategy, "unknown reduction strategy.",
                       ", ".join(STRATEGIES))
    regressor = CatBoostRegressor(
        iterations=iterations,
        depth=depth,
        learning_rate=learning_rate,
        l2_leaf_reg=l2_leaf_reg,
        random_seed=seed,
        thread_count=thread_count,
        allow_writing_files=False,  # no catboost_info/ in the working directory
        verbose=False,
    )
    return make_reduction(regressor, window_length=window_length, strategy=strategy)


def feature_importances(forecaster: BaseForecaster) -> dict[str, float] | None:
    """CatBoost importances of the lags (``lag_1`` is the latest value), or None.

    ``forecaster`` is fitted, bare or wrapped in the preprocessing.

    A ``direct`` reduction fits one regressor per horizon step; their importances are
    averaged. Forecasters without CatBoost inside give None.
    """
    # behind target transforms (TransformedTargetForecaster) the model is the last step
    fitted = getattr(forecaster, "forecaster_", forecaster).get_fitted_params()
    regressors = fitted.get("estimators") or [fitted.get("estimator")]
    regressors = [r for r in regressors if hasattr(r, "get_feature_importance")]
    if not regressors:
        return None
    window_length = len(regressors[0].get_feature_importance())
    totals = [0.0] * window_length
    for regressor in regressors:
        for position, value in enumerate(regressor.get_feature_importance()):
            totals[position] += float(value) / len(regressors)
    # sktime's window puts the oldest lag first
    return {f"lag_{window_length - position}": totals[position] for position in range(window_length)}
