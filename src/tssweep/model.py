"""The ``model`` config group: the estimator at the end of the pipeline.

Each ``conf/model/*.yaml`` is instantiated as it stands: sktime estimators directly
(``naive``, ``knn_dtw``), or :func:`catboost` for CatBoost, whose flat arguments keep
the MLflow params readable (``model.depth``, not ``model.estimator.depth``) and which
builds a regressor or a classifier for the dataset's task.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, CatBoostRegressor
from omegaconf import DictConfig, OmegaConf
from sklearn.base import clone
from sktime.forecasting.base import BaseForecaster, ForecastingHorizon
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
        series (sktime's reduction, broadcast over the series), ``global`` one
        CatBoost on the windows of every series, the series id a categorical feature
        (:class:`GlobalReduction`). The preprocessing before it is fitted per series
        either way. One series: the same windows either way.
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
    if pooling == "global":
        return GlobalReduction(CatBoostRegressor(**params), window_length=window_length, strategy=strategy)
    # the scitype sktime infers for CatBoost, named: inferring it builds sktime's register
    # of base classes, importing its classifiers and clusterers (0.13 s once a process)
    return make_reduction(CatBoostRegressor(**params), window_length=window_length, strategy=strategy,
                          scitype="tabular-regressor")


class GlobalReduction(BaseForecaster):
    """One regressor on the lag windows of every series of a panel, the series id a
    categorical feature: what global pooling fits.

    Each training row is a window of ``window_length`` consecutive values of one
    series (``lag_12`` .. ``lag_1``, the latest last) and its ``series``; the target is
    the next value (``recursive``: one regressor, its forecasts fed back in) or each of
    the next ``h`` values (``direct``: one regressor per step). Exogenous regressors
    (``X``) enter at the period predicted: they are known for the forecast horizon, so
    ``predict`` needs them for every period up to the last step. Forecasting takes
    every series' last window at once, a step at a time.

    sktime's own ``make_reduction(..., pooling="global")`` fits the same windows, but
    rebuilds them through pandas at every forecast step: 145 series took 5.5 s to
    forecast 12 steps there against 0.1 s here, and it has no series feature. The
    series of a panel must end in the same period (tssweep's datasets see to it), so
    they share the cutoff. One series is a panel of one, without the series feature.

    Parameters
    ----------
    estimator : regressor
        Cloned for each regressor fitted; a CatBoostRegressor gets the series id as a
        categorical feature.
    window_length : int
        Lags in a window.
    strategy : {"recursive", "direct"}
    """

    _tags = {
        "y_inner_mtype": ["pd-multiindex", "pd.DataFrame"],
        "X_inner_mtype": ["pd-multiindex", "pd.DataFrame"],
        "scitype:y": "univariate",
        "ignores-exogeneous-X": False,
        "requires-fh-in-fit": True,
        "capability:insample": False,
        "capability:missing_values": False,
    }

    def __init__(self, estimator, window_length: int = 12, strategy: str = "recursive"):
        self.estimator = estimator
        self.window_length = window_length
        self.strategy = strategy
        super().__init__()
        # a recursive model forecasts any steps; a direct one those it was fitted for
        self.set_tags(**{"requires-fh-in-fit": strategy == "direct"})

    def _fit(self, y: pd.DataFrame, X=None, fh=None):
        steps = int(max(fh.to_relative(self.cutoff))) if self.strategy == "direct" else 1
        width = self.window_length
        self.series_ = self._series(y)
        self.exog_names_ = [] if X is None else [str(column) for column in X.columns]
        self.feature_names_ = [f"lag_{lag}" for lag in range(width, 0, -1)] + self.exog_names_ + (
            ["series"] if self._has_ids(y) else [])
        exog = self._series_exog(X, y)
        windows, known, names = [], [], []
        for name, values in self.series_.items():
            rows = np.lib.stride_tricks.sliding_window_view(values, width + steps)
            windows.append(rows)
            # each row's regressors at the periods it predicts: step k's at window end + k
            known.append(np.stack([exog[name][width + step:width + step + len(rows)] for step in range(steps)], axis=1))
            names += [name] * len(rows)
        stacked, stacked_known = np.vstack(windows), np.vstack(known)
        self.estimators_ = [
            self._fitted(self._features(stacked[:, :width], stacked_known[:, step], names), stacked[:, width + step])
            for step in range(steps)]
        self.last_windows_ = np.vstack([values[-width:] for values in self.series_.values()])
        return self

    def _predict(self, fh, X=None):
        relative = np.asarray(fh.to_relative(self.cutoff), dtype=int)
        steps = int(relative.max())
        names = list(self.series_)
        future = self._future_exog(X, steps)
        window = self.last_windows_.copy()
        ahead = np.empty((len(names), steps))
        for step in range(steps):
            regressor = self.estimators_[step if self.strategy == "direct" else 0]
            features = self._features(window, future[:, step], names)
            ahead[:, step] = regressor.predict(self._input(features, regressor))
            if self.strategy == "recursive":
                window = np.hstack([window[:, 1:], ahead[:, step:step + 1]])
        periods = fh.to_absolute_index(self.cutoff)
        chosen = ahead[:, relative - 1]
        column = self._y.columns[0]
        if not self._has_ids(self._y):
            return pd.DataFrame({column: chosen[0]}, index=periods)
        index = pd.MultiIndex.from_product([names, periods], names=self._y.index.names)
        return pd.DataFrame({column: chosen.ravel()}, index=index)

    def _series_exog(self, X, y: pd.DataFrame) -> dict:
        """Each series' regressors in time order (an empty column block without X)."""
        if X is None:
            return {name: np.empty((len(values), 0)) for name, values in self.series_.items()}
        if not self._has_ids(y):
            return {None: X.reindex(y.index).to_numpy(dtype=float)}
        return {name: X.xs(name, level=0).reindex(part.index.get_level_values(1)).to_numpy(dtype=float)
                for name, part in y.groupby(level=0, sort=False)}

    def _future_exog(self, X, steps: int) -> np.ndarray:
        """The regressors of the ``steps`` periods after the cutoff, per series:
        (series, steps, regressors); every one of those periods must be in ``X``."""
        if not self.exog_names_:
            return np.empty((len(self.series_), steps, 0))
        periods = ForecastingHorizon(np.arange(1, steps + 1)).to_absolute_index(self.cutoff)
        if X is None:
            raise ValueError(f"this model forecasts with {', '.join(self.exog_names_)}: give their "
                             f"values for {periods[0]} to {periods[-1]} as X")
        blocks = []
        for name in self.series_:
            rows = X if name is None else X.xs(name, level=0)
            missing = periods.difference(rows.index)
            if len(missing):
                where = "" if name is None else f" of series {name!r}"
                raise ValueError(f"X{where} lacks {', '.join(self.exog_names_)} for {missing[0]}: "
                                 f"the model needs them for every period from {periods[0]} to {periods[-1]}")
            blocks.append(rows.loc[periods, self.exog_names_].to_numpy(dtype=float))
        return np.stack(blocks)

    @staticmethod
    def _has_ids(y: pd.DataFrame) -> bool:
        return isinstance(y.index, pd.MultiIndex)

    def _series(self, y: pd.DataFrame) -> dict:
        """Each series' values in time order, by id (the order of the panel)."""
        if not self._has_ids(y):
            return {None: y.iloc[:, 0].to_numpy(dtype=float)}
        return {name: part.iloc[:, 0].to_numpy(dtype=float)
                for name, part in y.groupby(level=0, sort=False)}

    def _features(self, windows: np.ndarray, known: np.ndarray, names: list) -> pd.DataFrame:
        """Rows of lags, then the regressors at the period predicted, then the series."""
        features = pd.DataFrame(np.hstack([windows, known]),
                                columns=self.feature_names_[:self.window_length + len(self.exog_names_)])
        if "series" in self.feature_names_:
            features["series"] = pd.Series(names, dtype=str).to_numpy()
        return features

    def _fitted(self, features: pd.DataFrame, target: np.ndarray):
        regressor = clone(self.estimator)
        if "series" in features and isinstance(regressor, CatBoostRegressor):
            return regressor.fit(features, target, cat_features=["series"])
        return regressor.fit(self._input(features, regressor), target)

    @staticmethod
    def _input(features: pd.DataFrame, regressor) -> pd.DataFrame:
        """The features a regressor takes: the series id only as CatBoost's category."""
        return features if isinstance(regressor, CatBoostRegressor) else features.drop(columns="series", errors="ignore")


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
    """CatBoost importances of the lags (``lag_1`` is the latest value), and of a
    global model's ``series``, or None.

    ``forecaster`` is fitted, bare or wrapped in the preprocessing.

    A ``direct`` reduction fits one regressor per horizon step; their importances are
    averaged. Forecasters without CatBoost inside give None.
    """
    regressors = _catboost_models(forecaster)
    if not regressors:
        return None
    width = len(regressors[0].get_feature_importance())
    totals = [0.0] * width
    for regressor in regressors:
        for position, value in enumerate(regressor.get_feature_importance()):
            totals[position] += float(value) / len(regressors)
    # sktime's window puts the oldest lag first, as GlobalReduction's does (then the series)
    reducer = getattr(forecaster, "forecaster_", forecaster)
    names = getattr(reducer, "feature_names_", None) or [f"lag_{width - position}" for position in range(width)]
    return dict(zip(names, totals))
