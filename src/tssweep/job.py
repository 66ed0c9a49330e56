"""One Hydra job: dataset -> preprocess -> model -> evaluate, logged as one MLflow run.

``run_job`` is what ``src/train.py`` calls. It checks the config, opens the run, and
hands over to the forecasting or the classification line by the dataset's task. It
returns the backtest (forecasting) or cross-validation (classification) mean of
``optimized_metric``, so any Hydra sweeper can optimise it, and never a holdout or
test score.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tssweep import (
    checks,
    classification_evaluation,
    dataset,
    forecast_evaluation,
    logs,
    model,
    preflight,
    preprocess,
    pruning,
    records,
    redact,
    startup,
    tracking,
)
from tssweep.objectives import evaluation_words
from tssweep.tracking import names

log = logging.getLogger(__name__)


def run_job(cfg: DictConfig) -> float | tuple[float, ...]:
    """Train and score the configured pipeline, log it, return the value(s) to optimise."""
    startup.done()
    logs.route_warnings()
    hydra_cfg = HydraConfig.get()
    choices = checks.group_choices(hydra_cfg.runtime.choices)
    objectives = checks.check_job_config(cfg, choices)
    overrides = redact.redact_overrides(list(hydra_cfg.overrides.task))
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    task = cfg.dataset.task
    _share_cores(cfg, hydra_cfg)

    # a missing file, a column, timestamps or a series too short for the backtest stop
    # the command here, before any run exists
    data = preflight.load_data(cfg)
    preflight.check_fits(cfg, data)
    if not in_sweep and task == "forecasting":  # in a sweep, the child records it
        preprocess.check_applicable(cfg.preprocess, data, choices.get("preprocess", "?"))

    where = tracking.where(cfg.tracking)
    tags = {"tssweep.overrides": " ".join(overrides), "optimized_metric": objectives[0],
            "tssweep.task": task, "mlflow.source.name": "src/train.py",
            **tracking.source_tags(str(cfg.paths.root_dir)), **_data_tags(task, data)}
    if in_sweep:
        tags["tssweep.job_num"] = str(hydra_cfg.job.num)
    if cfg.get("optuna_trial") is not None:
        tags["optuna.trial_number"] = str(cfg.optuna_trial)
    sweep_dir = os.path.abspath(hydra_cfg.sweep.dir) if in_sweep else None
    report_fold = pruning.fold_reporter(cfg, hydra_cfg.sweeper if in_sweep else None)
    artifacts = Path(hydra_cfg.runtime.output_dir) / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)

    dataset_name = dataset.display_name(cfg.dataset, choices["dataset"])
    single_name = names.single_name(overrides, dataset_name, choices.get("preprocess", ""))
    # an Optuna trial's overrides are all its hyperparameters: too long for a name
    name = f"trial {cfg.optuna_trial}" if cfg.get("optuna_trial") is not None else None
    with tracking.job_run(where, overrides, tags, sweep_dir, single_name, name,
                          hydra_cfg.job.num if in_sweep else None) as run:
        # resolved once: the params now, the run's config.yaml with the rest of the run
        resolved = OmegaConf.to_container(cfg, resolve=True)
        params = {key: value for key, value in tracking.flatten(resolved).items()
                  if key != "optuna_trial" and key not in checks.OPTION_METADATA
                  and key not in _LEFT_TO_THE_MODEL}
        # the store the run is in: MLFLOW_TRACKING_URI, when set, wins over the config's
        params["tracking.uri"] = redact.redact_uri(where.uri)
        run.log(params={**params, **{f"{group}.name": option for group, option in choices.items()},
                        "dataset.name": dataset_name})
        folds_done: list[dict] = []

        def after_fold(fold: int, fold_scores: dict) -> None:
            folds_done.append({k: v for k, v in fold_scores.items() if isinstance(v, float)})
            if report_fold is not None and objectives[0] in folds_done[-1]:
                done = [row[objectives[0]] for row in folds_done]
                report_fold(fold, sum(done) / len(done))

        try:
            if in_sweep and task == "forecasting":  # alone, it was checked before the run
                preprocess.check_applicable(cfg.preprocess, data, choices.get("preprocess", "?"))
            job = _classify if task == "classification" else _forecast
            scores = job(cfg, resolved, choices, data, run, after_fold, artifacts, objectives[0])
        except BaseException:
            # a pruned (or interrupted) run keeps the folds it finished
            if folds_done:
                run.log(step_metrics={f"fold_{key}": [row[key] for row in folds_done]
                                      for key in folds_done[0]})
            raise
    if not in_sweep and cfg.tracking.registry.enabled and cfg.tracking.registry.single_runs:
        from tssweep.tracking.registry import registered_name

        register_winner(cfg, run.store, run.run_id, run.run_id, registered_name(cfg.tracking, dataset_name),
                        objectives[0], f"single run {run.name}")

    values = tuple(scores.objective(name) for name in objectives)
    kinds = evaluation_words(task)
    log.info("%s %s  %s %s", kinds[0], _show(dict(zip(objectives, values))), kinds[1],
             _show(scores.test_scores))
    return values[0] if isinstance(cfg.optimized_metric, str) else values


def _forecast(cfg: DictConfig, resolved: dict, choices: dict, series: pd.Series, run: tracking.TrackedRun,
              after_fold, artifacts: Path, metric: str) -> forecast_evaluation.ForecastEvaluation:
    """Backtest a forecasting pipeline and score its holdout; the rest of the run
    (:func:`tssweep.records.record_forecast`) is completed here or beside the next job."""
    pipeline = preprocess.wrap_forecaster(cfg.preprocess, model.build_model(cfg.model))
    scores = forecast_evaluation.evaluate_forecaster(pipeline, series, cfg.dataset, after_fold=after_fold,
                                                     exog=dataset.load_exog(cfg.dataset))
    run.complete(records.record_forecast, resolved, dataset.display_name(cfg.dataset, choices["dataset"]),
                 dataset.target_name(series), _forecast_record(cfg, scores), artifacts, metric)
    return scores


def _forecast_record(cfg: DictConfig, scores: forecast_evaluation.ForecastEvaluation) -> records.ForecastRecord:
    """What the run of ``scores`` keeps, as plain data: the pipeline packed (when models
    are logged), its importances and settings read off it here."""
    return records.ForecastRecord(
        replace(scores, fitted=None), importances=model.feature_importances(scores.fitted),
        model=tracking.pack_forecaster(scores.fitted) if cfg.tracking.log_models == "all" else None,
        settings=_model_settings(cfg, scores.fitted))


def _classify(cfg: DictConfig, resolved: dict, choices: dict, split: tuple, run: tracking.TrackedRun,
              after_fold, artifacts: Path, metric: str) -> classification_evaluation.ClassificationEvaluation:
    """Cross-validate a classification pipeline and score the test split; the rest of
    the run (:func:`tssweep.records.record_classification`) is completed here or beside
    the next job."""
    X_train, y_train, X_test, y_test = split
    scores = classification_evaluation.evaluate_classifier(
        preprocess.feature_transformer(cfg.preprocess), model.build_model(cfg.model),
        X_train, y_train, X_test, y_test, folds=int(cfg.dataset.cv.folds), seed=int(cfg.seed),
        after_fold=after_fold)
    run.complete(records.record_classification, resolved, dataset.display_name(cfg.dataset, choices["dataset"]),
                 split, scores, artifacts, cfg.tracking.log_models == "all", _model_settings(cfg, scores.fitted))
    return scores


# settings whose null leaves the value to CatBoost or to the data's width: the run's
# params get what the fitted model used instead (params cannot change once logged)
_LEFT_TO_THE_MODEL = frozenset({"model.rsm", "model.border_count"})


def _model_settings(cfg: DictConfig, fitted) -> dict[str, object]:
    """The model settings the fitted model really used, for those the config leaves to
    CatBoost (:data:`_LEFT_TO_THE_MODEL`): logged as params with the run's scores."""
    used = model.effective_params(fitted)
    settings = [key.removeprefix("model.") for key in _LEFT_TO_THE_MODEL]
    return {f"model.{key}": used.get(key, cfg.model[key]) for key in settings if key in cfg.model}


def _data_tags(task: str, data) -> dict[str, object]:
    """What the run is scored on, tagged when it opens: the data's fingerprint (what
    the verdict and the registry compare) and its size."""
    if task == "classification":
        X_train, y_train, X_test, _ = data
        return {"data.fingerprint": dataset.fingerprint(X_train, y_train),
                "data.train_series": len(X_train), "data.test_series": len(X_test)}
    if dataset.is_panel(data):
        return {"data.fingerprint": dataset.fingerprint(data), "data.length": len(data),
                "data.series": data.index.get_level_values(0).nunique()}
    return {"data.fingerprint": dataset.fingerprint(data), "data.length": len(data)}


def fit_final(cfg: DictConfig) -> records.FinalModel:
    """The pipeline of ``cfg`` (a job's resolved config) fitted on all its labelled data."""
    logs.route_warnings()  # in a sweep's own process too, where a parallel launcher ran no job
    data = preflight.load_data(cfg)
    if cfg.dataset.task == "classification":
        X_train, y_train, X_test, y_test = data
        X, y = pd.concat([X_train, X_test], ignore_index=True), np.concatenate([y_train, y_test])
        fitted = classification_evaluation.fit_classifier(
            preprocess.feature_transformer(cfg.preprocess), model.build_model(cfg.model), X, y)
        return records.FinalModel("classification", fitted, len(y), np.asarray(sorted(set(y))))
    pipeline = preprocess.wrap_forecaster(cfg.preprocess, model.build_model(cfg.model))
    fitted = forecast_evaluation.fit_forecaster(pipeline, data, int(cfg.dataset.horizon),
                                                dataset.load_exog(cfg.dataset))
    return records.FinalModel("forecasting", fitted, len(data))


def register_winner(cfg: DictConfig, store: tracking.Store, run_id: str, winner_run_id: str,
                    name: str, metric: str, what: str):
    """Refit the winner (the run ``winner_run_id``, whose config is ``cfg``) on all its
    labelled data, log it on ``run_id`` and register it as a version of ``name``:
    champion or challenger (a :class:`tssweep.records.Registration`)."""
    from tssweep.tracking import registry

    done = registry.already_registered(store, name, store.client.get_run(winner_run_id), metric)
    if done is not None:
        return done
    registration = registry.publish(store, run_id, winner_run_id, fit_final(cfg), cfg, name, metric, what)
    log.info("Registered %s", registration.line())
    return registration


def _show(values: dict[str, float]) -> str:
    return "  ".join(f"{name}={value:.4f}" for name, value in values.items())


def _share_cores(cfg: DictConfig, hydra_cfg: DictConfig) -> None:
    """With jobs running side by side, give each CatBoost its share of the cores.

    ``model.thread_count=-1`` means "every core this job may use": all of them with the
    basic launcher, ``cores // n`` when a parallel launcher runs ``n`` jobs at once (the
    smaller of the launcher's and the sweeper's ``n_jobs``), so jobs x threads never
    exceeds the cores. A Ray task gets the CPUs it reserved (``ray.remote.num_cpus``).
    """
    if cfg.model.get("thread_count") != -1:
        return
    ray_cpus = OmegaConf.select(hydra_cfg, "launcher.ray.remote.num_cpus")
    if ray_cpus is not None:
        cfg.model.thread_count = max(1, int(ray_cpus))
        return
    cores = os.cpu_count() or 1
    limits = [int(n) for n in (hydra_cfg.launcher.get("n_jobs"), hydra_cfg.sweeper.get("n_jobs"))
              if n is not None]
    parallel = min([cores if n < 0 else n for n in limits], default=1)
    if parallel > 1:
        cfg.model.thread_count = max(1, cores // parallel)
