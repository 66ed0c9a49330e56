"""The ``model`` config group: the estimator at the end of the pipeline.

Each ``conf/model/*.yaml`` is instantiated as it stands: sktime estimators directly
(``naive``, ``knn_dtw``), or :func:`catboost` for CatBoost, whose flat arguments keep
the MLflow params readable (``model.depth``, not ``model.estimator.depth``) and which
builds a regressor or a classifier for the dataset's task.
"""

from __future__ import annotations

from catboost import CatBoostClassifier, CatBoostRegressor
from omegaconf import DictConfig, OmegaConf
from sktime.forecasting.base import BaseForecaster
from sktime.forecasting.compose import make_reduction

from tssweep.errors import BadInput, instantiate

STRATEGIES = ("recursive", "direct")


def build_model(model_cfg: DictConfig):
    """Instantiate the model group's config: an unfitted sktime forecaster, or a
    classifier (CatBoost's or sktime's) for classification datasets.

    ``tasks`` and ``input`` (what the option supports) are read by the checks, not
    passed on.
    """
    node = OmegaConf.to_container(model_cfg, resolve=True)
    for declaration in ("tasks", "input"):
        node.pop(declaration, None)
    return instantiate(node, _convert_="all")


def longest_window(strategy: str, training_points: int, horizon: int) -> int:
    """The longest ``window_length`` a reduced CatBoost can fit on ``training_points``:
    each training row takes the window and the steps it predicts (one for
    ``recursive``, the horizon for ``direct``), and CatBoost needs two rows (one row
    makes every feature constant)."""
    return training_points - 1 - (horizon if strategy == "direct" else 1)


def check_window(model_cfg: DictConfig, training_points: int, horizon: int) -> None:
    """Refuse a reduction window the shortest backtest training window cannot hold,
    before any fitting (sktime's own error comes deep inside it)."""
    window = model_cfg.get("window_length")
    if window is None or model_cfg.get("task") != "forecasting":
        return
    longest = longest_window(str(model_cfg.strategy), training_points, horizon)
    if window > longest:
        raise BadInput("model.window_length", window,
                       f"the first backtest fold trains on {training_points} points, too few for "
                       f"a window of {window} with the {model_cfg.strategy} strategy and horizon "
                       f"{horizon}.", f"an integer from 1 to {longest}, or fewer backtest folds")


def catboost(
    task: str,
    window_length: int,
    strategy: str,
    iterations: int,
    depth: int,
    learning_rate: float,
    l2_leaf_reg: float,
    rsm: float | None,
    border_count: int | None,
    seed: int,
    thread_count: int,
    pooling: str = "local",
):
    """CatBoost for the dataset's task, from one set of hyperparameters.

    Parameters
    ----------
    task : {"forecasting", "classification"}
        Forecasting gets a CatBoostRegressor on the last ``window_length`` values via
        sktime reduction; classification a CatBoostClassifier on the features the
        preprocessing produced.
    window_length : int
        Lags the regressor sees (forecasting); defaults to the seasonal period.
    strategy : {"recursive", "direct"}
        ``recursive`` fits one model and feeds its forecasts back in; ``direct``
        fits one model per horizon step (forecasting).
    iterations, depth, learning_rate, l2_leaf_reg : CatBoost hyperparameters.
    rsm, border_count : float or None, int or None
        Features sampled per split and histogram bins; None leaves them to
        :func:`fit_to_width`, which picks them from the number of features.
    seed : int
        CatBoost's ``random_seed``: equal seeds give equal models.
    thread_count : int
        CatBoost threads; ``-1`` uses every core.
    pooling : {"local", "global"}
        On a panel of series (forecasting): ``local`` fits one reduced CatBoost per
        series (sktime broadcasts the forecaster over the series), ``global`` one
        CatBoost on the windows of every series (sktime's ``pooling="global"``). The
        preprocessing before it is fitted per series either way. One series: no
        difference.
    """
    params = dict(iterations=iterations, depth=depth, learning_rate=learning_rate,
                  l2_leaf_reg=l2_leaf_reg, random_seed=seed, thread_count=thread_count,
                  allow_writing_files=False,  # no catboost_info/ in the working directory
                  verbose=False)
    params.update({key: value for key, value in (("rsm", rsm), ("border_count", border_count))
                   if value is not None})
    if task == "classification":
        return CatBoostClassifier(**params)
    if strategy not in STRATEGIES:
        raise BadInput("model.strategy", strategy, "unknown reduction strategy.",
                       ", ".join(STRATEGIES))
    return make_reduction(CatBoostRegressor(**params), window_length=window_length, strategy=strategy,
                          pooling=pooling)


# past this many features CatBoost's defaults spend minutes quantising and scanning
_WIDE = 1000


def fit_to_width(classifier, n_features: int):
    """The classifier with rsm and border_count chosen for ``n_features``, unless set.

    On MiniRocket's ~10,000 features, CatBoost's defaults took 105 s per fit on
    ArrowHead here; sampling 1% of the features per split with 32 bins took 4 s with
    300 iterations at depth 6, and scored 0.834 on its test split (GunPoint 0.967,
    ItalyPowerDemand 0.962). Narrow data keeps CatBoost's defaults.
    """
    if n_features <= _WIDE or not isinstance(classifier, CatBoostClassifier):
        return classifier
    wide = {"rsm": 0.01, "border_count": 32}
    chosen = classifier.get_params()
    return classifier.copy().set_params(**{k: v for k, v in wide.items() if chosen.get(k) is None})


def effective_params(fitted) -> dict[str, object]:
    """What CatBoost used for the settings left to it (``rsm``, ``border_count``: null
    in the config means by data width, or CatBoost's own default), read off the fitted
    model; empty for models without CatBoost inside.

    ``fitted`` is a fitted forecaster (bare or wrapped in the preprocessing) or a fitted
    classifier (its ``model`` is the estimator).
    """
    models = _catboost_models(fitted)
    if not models:
        return {}
    used = models[0].get_all_params()
    # CatBoost keeps rsm as a float32: 0.01 comes back as 0.009999999776
    return {key: float(f"{used[key]:.6g}") if isinstance(used[key], float) else used[key]
            for key in ("rsm", "border_count") if key in used}


def _catboost_models(fitted) -> list:
    """The fitted CatBoost estimators inside a fitted forecaster or classifier."""
    if hasattr(fitted, "model"):  # the classification pipeline
        candidates = [fitted.model]
    else:
        # behind target transforms (TransformedTargetForecaster) the model is the last step
        params = getattr(fitted, "forecaster_", fitted).get_fitted_params()
        candidates = params.get("estimators") or [params.get("estimator")]
    return [m for m in candidates if isinstance(m, (CatBoostRegressor, CatBoostClassifier))]


def feature_importances(forecaster: BaseForecaster) -> dict[str, float] | None:
    """CatBoost importances of the lags (``lag_1`` is the latest value), or None.

    ``forecaster`` is fitted, bare or wrapped in the preprocessing.

    A ``direct`` reduction fits one regressor per horizon step; their importances are
    averaged. Forecasters without CatBoost inside give None.
    """
    regressors = _catboost_models(forecaster)
    if not regressors:
        return None
    window_length = len(regressors[0].get_feature_importance())
    totals = [0.0] * window_length
    for regressor in regressors:
        for position, value in enumerate(regressor.get_feature_importance()):
            totals[position] += float(value) / len(regressors)
    # sktime's window puts the oldest lag first
    return {f"lag_{window_length - position}": totals[position] for position in range(window_length)}
