"""Honest scoring of a time-series classifier: cross-validation, then the test split.

Searches and sweeps only ever see the train split: stratified k-fold cross-validation
on it gives ``cv_accuracy``, ``cv_balanced_accuracy``, ``cv_f1_macro`` and
``cv_log_loss`` (fold means; the folds are also the pruning steps of a search). Each
fold fits the preprocessing on its own training part, so no fold's features are shaped
by the series it is scored on. Only then is the pipeline fitted on the whole train
split and scored once on the official test split (``test_*``).

A transformer that learns nothing and turns each series into features on its own
(sktime's tags ``fit_is_empty`` and ``scitype:instancewise``: ``summary``, ``catch22``)
gives a series the same features whichever part it is in, so each series is
transformed once per job rather than once per fold: the same scores, for a fraction
of the time (catch22's features are most of a job's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss
from sklearn.model_selection import StratifiedKFold
from sktime.classification.base import BaseClassifier

from tssweep.errors import BadInput
from tssweep.model import fit_to_width

METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss")


@dataclass
class ClassificationEvaluation:
    """Everything one classification job measured.

    ``fold_scores`` has a row per CV fold (metrics and seconds); ``cv_scores`` their
    means (``cv_accuracy``, ...); ``test_scores`` the test split's (``test_accuracy``,
    ...). ``test_predictions`` are the final model's labels for the test series, and
    ``fitted`` that model, fitted on the whole train split. ``cv_points`` has a row per
    train series, scored once, by the fold that held it out: its loss for each metric
    (0/1 for the accuracy-like ones, the log loss of its true class for ``log_loss``),
    what a verdict compares variants on.
    """

    fold_scores: pd.DataFrame
    cv_points: pd.DataFrame
    cv_scores: dict[str, float]
    test_scores: dict[str, float]
    labels: list
    y_test: np.ndarray
    test_predictions: np.ndarray
    n_features: int
    transform_seconds: float
    fit_seconds: float
    predict_seconds: float
    fitted: "FittedClassifier"

    def objective(self, name: str) -> float:
        return self.cv_scores[name] if name in self.cv_scores else float(getattr(self, name))


def evaluate_classifier(transformer, model, X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame,
             y_test: np.ndarray, folds: int, seed: int,
             after_fold: Callable[[int, dict], None] | None = None) -> ClassificationEvaluation:
    """Cross-validate ``transformer`` + ``model`` on the train split, then score the test split.

    ``transformer`` is an sktime panel transformer, or None to give the model the
    series themselves (as columns of values for CatBoost, as series for sktime's
    classifiers). ``after_fold(fold, scores)`` sees each fold's scores as they come and
    may raise to stop early (Optuna pruning does).
    """
    check_folds(y, folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    once = _features_once(transformer, model, X, X_test)
    rows, points = [], []
    for fold, (train, valid) in enumerate(splitter.split(np.zeros(len(y)), y)):
        scores, predictions, probabilities, _, fitted = _fit_score(
            transformer, model, X.iloc[train], y[train], X.iloc[valid], y[valid],
            None if once is None else (once.transformer, once.train[train], once.train[valid]))
        rows.append({"fold": fold, **scores})
        points.append(_series_losses(list(fitted.model.classes_), y[valid], predictions, probabilities)
                      .assign(fold=fold, series=valid))
        if after_fold is not None:
            after_fold(fold, {f"cv_{name}": rows[-1][name] for name in METRICS})
    fold_scores = pd.DataFrame(rows).set_index("fold")
    test, predictions, _, n_features, fitted = _fit_score(
        transformer, model, X, y, X_test, y_test, None if once is None else (once.transformer, once.train, once.test))
    if once is not None:
        test["transform_seconds"] += once.seconds
    return ClassificationEvaluation(
        fold_scores=fold_scores,
        cv_points=pd.concat(points).sort_values("series")[["series", "fold", *METRICS]].reset_index(drop=True),
        cv_scores={f"cv_{name}": float(fold_scores[name].mean()) for name in METRICS},
        test_scores={f"test_{name}": test[name] for name in METRICS},
        labels=sorted(set(y) | set(y_test)), y_test=y_test, test_predictions=predictions,
        n_features=n_features, fitted=fitted,
        **{key: float(fold_scores[key].sum() + test[key])
           for key in ("transform_seconds", "fit_seconds", "predict_seconds")})


def check_folds(y: np.ndarray, folds: int) -> None:
    """Each stratified fold must get a series of every class of the train split."""
    smallest = int(pd.Series(y).value_counts().min())
    if folds > smallest:
        raise BadInput("dataset.cv.folds", folds, f"the smallest class of the train split has "
                       f"only {smallest} series, too few for {folds} stratified folds.",
                       f"an integer from 2 to {smallest}")


@dataclass
class FittedClassifier:
    """The fitted preprocessing and model: series in, labels or probabilities out."""

    transformer: object | None
    model: object

    def features(self, X: pd.DataFrame):
        return _features_of(self.transformer, self.model, X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict(self.features(X))).ravel()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(self.features(X)))


def fit_classifier(transformer, model, X: pd.DataFrame, y: np.ndarray) -> FittedClassifier:
    """The preprocessing and the model fitted on all of ``X``: what a sweep's winner
    becomes once it has been scored (on the train and test splits together)."""
    transformer = transformer.clone().fit(X) if transformer is not None else None
    features = _features_of(transformer, model, X)
    n_features = features.shape[1] if features.ndim == 2 else X.shape[1]
    return FittedClassifier(transformer, fit_to_width(clone(model), n_features).fit(features, y))


@dataclass
class _SeriesFeatures:
    """The features of every train and test series, made once (see the module's doc)."""

    transformer: object
    train: np.ndarray
    test: np.ndarray
    seconds: float


def _features_once(transformer, model, X: pd.DataFrame, X_test: pd.DataFrame) -> _SeriesFeatures | None:
    """Each series' features, if ``transformer`` learns nothing and transforms each
    series alone (else None: each fold fits its own)."""
    if transformer is None or not (transformer.get_tag("fit_is_empty", False)
                                   and transformer.get_tag("scitype:instancewise", False)):
        return None
    start = time.perf_counter()
    fitted = transformer.clone().fit(X)
    train, test = _features(fitted, model, X, X_test)
    return _SeriesFeatures(fitted, train, test, time.perf_counter() - start)


def _fit_score(transformer, model, X_fit, y_fit, X_score, y_score, given=None):
    """Fit on one part, score the other; returns (scores with seconds, labels, class
    probabilities, n features, the fitted classifier). ``given``: the transformer
    already fitted, with the features of both parts (see :func:`_features_once`)."""
    start = time.perf_counter()
    if given is None:
        transformer = transformer.clone().fit(X_fit) if transformer is not None else None
        features_fit, features_score = _features(transformer, model, X_fit, X_score)
    else:
        transformer, features_fit, features_score = given
    transformed = time.perf_counter()
    n_features = features_fit.shape[1] if features_fit.ndim == 2 else X_fit.shape[1]
    fitted = fit_to_width(clone(model), n_features).fit(features_fit, y_fit)
    done_fit = time.perf_counter()
    probabilities = np.asarray(fitted.predict_proba(features_score))
    classes = np.asarray(fitted.classes_)
    predictions = classes[probabilities.argmax(axis=1)]
    done = time.perf_counter()
    scores = {
        "accuracy": accuracy_score(y_score, predictions),
        "balanced_accuracy": balanced_accuracy_score(y_score, predictions),
        "f1_macro": f1_score(y_score, predictions, average="macro"),
        "log_loss": log_loss(y_score, np.clip(probabilities, 1e-15, 1), labels=classes),
        "transform_seconds": transformed - start, "fit_seconds": done_fit - transformed,
        "predict_seconds": done - done_fit,
    }
    return ({k: float(v) for k, v in scores.items()}, predictions, probabilities, n_features,
            FittedClassifier(transformer, fitted))


def _series_losses(classes: list, y: np.ndarray, predictions: np.ndarray,
                   probabilities: np.ndarray) -> pd.DataFrame:
    """Each held-out series' loss per metric: 0 or 1 for a wrong label, and minus the log
    of the probability given to its true class."""
    wrong = (np.asarray(predictions) != y).astype(float)
    true_class = np.array([probabilities[i, classes.index(label)] if label in classes else 0.0
                           for i, label in enumerate(y)])
    return pd.DataFrame({"accuracy": wrong, "balanced_accuracy": wrong, "f1_macro": wrong,
                         "log_loss": -np.log(np.clip(true_class, 1e-15, 1))})


def _features(transformer, model, X_fit: pd.DataFrame, X_score: pd.DataFrame):
    return _features_of(transformer, model, X_fit), _features_of(transformer, model, X_score)


def _features_of(transformer, model, X: pd.DataFrame):
    """What the model reads: the (fitted) transformer's features, or the series themselves."""
    if transformer is not None:
        return _matrix(transformer.transform(X))
    if isinstance(model, BaseClassifier):  # sktime classifiers read series
        return X
    return _flatten(X)


def _matrix(features) -> np.ndarray:
    return np.asarray(features, dtype=float)


def _flatten(panel: pd.DataFrame) -> np.ndarray:
    """Each series' values, channel after channel, as one row of features."""
    rows = [np.concatenate([np.asarray(cell, dtype=float) for cell in row]) for row in panel.to_numpy()]
    if len({len(row) for row in rows}) > 1:
        raise BadInput("preprocess", "raw", "the series have unequal lengths, so their values "
                       "cannot be columns of one table.", "summary, catch22, minirocket")
    return np.vstack(rows)
