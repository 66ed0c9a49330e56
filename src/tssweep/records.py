"""What a job's run keeps after its training, logged where the run is written.

A job hands its run over with :meth:`tssweep.tracking.TrackedRun.complete`: one of
the two record functions here, with what it needs. In a sweep, a writer process beside
the jobs does it (:mod:`tssweep.tracking.writer`) while the next job trains; alone,
or in a parallel launcher's worker, the job does it itself.

- :func:`record_forecast` (forecasting) is handed a :class:`ForecastRecord`: the job's
  :class:`tssweep.forecast_evaluation.ForecastEvaluation` (tables, series, numbers)
  without its fitted pipeline, which comes already pickled
  (:class:`tssweep.tracking.packing.PackedForecaster`). So where it is written needs
  neither sktime nor CatBoost, and this module imports neither.
- :func:`record_classification` (classification) is handed the job's
  :class:`tssweep.classification_evaluation.ClassificationEvaluation`, whose fitted
  classifier the pyfunc model pickles there.

A sweep's winner, refitted on all its labelled data, is handed over the same way to be
registered at the sweep's end: a :class:`FinalModel`; what became of it comes back as a
:class:`Registration`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from tssweep import dataset, tracking
from tssweep.bookkeeping import to_yaml
from tssweep.forecast_evaluation import METRICS, ForecastEvaluation
from tssweep.objectives import test_twin


@dataclass
class ForecastRecord:
    """What a forecasting job measured (``scores``, its pipeline left out: ``fitted``
    is None), with that pipeline packed (``model``; None when models are not logged),
    its CatBoost ``importances`` (None without CatBoost) and the model ``settings`` it
    really used."""

    scores: ForecastEvaluation
    importances: dict[str, float] | None
    model: tracking.PackedForecaster | None
    settings: dict[str, object]


def record_forecast(run: tracking.TrackedRun, resolved: dict, dataset_name: str, target: str,
                    record: ForecastRecord, artifacts: Path, metric: str) -> None:
    """Log what a forecasting run keeps: its config (``resolved``, as ``config.yaml``),
    the per-fold and per-point tables (a panel's per-series scores too), the forecast
    plot, the feature importances, the datasets (of the series ``target``), the model,
    the scores with the model settings it used, and the job's ``artifacts`` folder."""
    from tssweep import plots  # matplotlib: where the run is written (a sweep's writer)

    scores = record.scores
    (artifacts / "config.yaml").write_text(to_yaml(resolved))
    test_metric = test_twin(metric)
    title = " ".join([dataset_name, run.name] + (
        [f"({test_metric} = {scores.test_scores[test_metric]:.3f})"]
        if test_metric in scores.test_scores else []))
    scores.fold_scores.to_csv(artifacts / "backtest_folds.csv")
    scores.backtest_points.to_csv(artifacts / "backtest_points.csv", index=False)  # for the verdict
    if scores.series_scores is not None:  # a panel: each series' scores, and a few of them drawn
        # the optimised metric and its holdout twin first: what a reader of the table wants
        table = scores.series_scores
        first = [column for column in ("points", metric, test_metric) if column in table.columns]
        table[first + [column for column in table.columns if column not in first]].to_csv(
            artifacts / "series_scores.csv")
        plots.panel_forecast_plot(scores.history, scores.holdout, scores.holdout_forecast,
                                  scores.series_scores[test_metric], title, artifacts / "forecast.png")
    else:
        plots.forecast_plot(scores.history, scores.holdout, scores.holdout_forecast, title,
                            artifacts / "forecast.png")
    if record.importances is not None:
        pd.Series(record.importances, name="importance").rename_axis("feature").to_csv(
            artifacts / "feature_importance.csv")
    run.log_datasets([(dataset.long_table(part), dataset.fingerprint(part), context)
                      for part, context in ((scores.history, "training"), (scores.holdout, "holdout"))],
                     dataset_name, targets=target)
    if record.model is not None:
        _log_model(run, artifacts, lambda path: tracking.save_forecaster(record.model, path))
    run.log(params=record.settings, metrics={**scores.backtest_scores, **scores.test_scores,
                                             "fit_seconds": scores.fit_seconds,
                                             "predict_seconds": scores.predict_seconds},
            step_metrics={f"fold_{name}": scores.fold_scores[name].tolist() for name in METRICS})
    run.log_artifacts(artifacts)


def record_classification(run: tracking.TrackedRun, resolved: dict, dataset_name: str, split: tuple,
                          scores, artifacts: Path, with_model: bool, settings: dict[str, object]) -> None:
    """Log what a classification run keeps: its config (``resolved``, as
    ``config.yaml``), the per-fold and per-series tables, the confusion matrix, the
    datasets, the model (``with_model``), the scores (a
    :class:`tssweep.classification_evaluation.ClassificationEvaluation`) with the model
    ``settings`` it used, and the job's ``artifacts`` folder."""
    from tssweep import plots  # matplotlib: where the run is written (a sweep's writer)
    from tssweep.classification_evaluation import METRICS

    (artifacts / "config.yaml").write_text(to_yaml(resolved))
    X_train, y_train, X_test, y_test = split
    scores.fold_scores.to_csv(artifacts / "cv_folds.csv")
    scores.cv_points.to_csv(artifacts / "cv_points.csv", index=False)  # for the verdict
    title = (f"{dataset_name} {run.name}: test accuracy "
             f"{scores.test_scores['test_accuracy']:.3f}")
    plots.confusion_matrix(scores.y_test, scores.test_predictions, scores.labels, title,
                           artifacts / "confusion_matrix.png")
    run.log_datasets([(pd.DataFrame({"series": range(len(y)), "label": y.astype(str)}), dataset.fingerprint(X, y),
                       context) for (X, y), context in (((X_train, y_train), "train"), ((X_test, y_test), "test"))],
                     dataset_name, targets="label")
    if with_model:
        _log_model(run, artifacts,
                   lambda path: tracking.save_classifier(scores.fitted, path, scores.test_predictions))
    run.log(params=settings, metrics={**scores.cv_scores, **scores.test_scores, "n_features": scores.n_features,
                     "transform_seconds": scores.transform_seconds,
                     "fit_seconds": scores.fit_seconds, "predict_seconds": scores.predict_seconds},
            step_metrics={f"fold_cv_{name}": scores.fold_scores[name].tolist() for name in METRICS})
    run.log_artifacts(artifacts)


def _log_model(run: tracking.TrackedRun, artifacts: Path, save) -> None:
    """Save the fitted pipeline with ``save(path)`` and log it as the run's LoggedModel."""
    path = artifacts.parent / "model"
    save(path)
    tracking.log_model(run.store, run.run_id, path)


@dataclass
class FinalModel:
    """A winner's pipeline fitted once more, on all the labelled data: the whole series
    (holdout included), or the train and test splits together."""

    task: str
    fitted: object  # a forecaster's may be packed (tssweep.tracking.packing)
    points: int  # points of the series, or labelled series, it was fitted on
    labels: np.ndarray | None = None  # classification: the labels it can predict

    def packed(self) -> FinalModel:
        """This model as it is handed to another process: a forecaster packed."""
        if self.task != "forecasting" or isinstance(self.fitted, tracking.PackedForecaster):
            return self
        return replace(self, fitted=tracking.pack_forecaster(self.fitted))


@dataclass
class Registration:
    """What became of a winner in the registry (:mod:`tssweep.tracking.registry`): plain
    data, handed back to a sweep's process that never imports mlflow."""

    name: str
    version: int
    alias: str  # champion or challenger
    reason: str  # why, in a sentence
    ui_path: str  # the version's page, after the UI's address

    def line(self) -> str:
        return f"{self.name} version {self.version} is the {self.alias}: {self.reason}"
