"""One Hydra job: dataset -> preprocess -> model -> evaluate, logged as one MLflow run.

``run_job`` is what ``src/train.py`` calls. It returns the backtest mean of
``optimized_metric``, so any Hydra sweeper can optimise it, and never the holdout score.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tssweep import checks, dataset, evaluate, model, plots, preprocess, pruning, tracking
from tssweep.errors import check_required

log = logging.getLogger(__name__)


def run_job(cfg: DictConfig) -> float | tuple[float, ...]:
    """Train and score the configured pipeline, log it, return the value(s) to optimise."""
    _route_warnings_to_log()
    hydra_cfg = HydraConfig.get()
    choices = {group: str(option) for group, option in hydra_cfg.runtime.choices.items()
               if "/" not in group and option is not None}
    overrides = tracking.redact_overrides(list(hydra_cfg.overrides.task))
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    check_required(cfg)
    checks.check_config(cfg)
    objectives = evaluate.objective_names(cfg.optimized_metric)
    _share_cores(cfg, hydra_cfg)

    store = tracking.open_store(cfg.tracking)
    tags = {"tssweep.overrides": " ".join(overrides), "optimized_metric": objectives[0],
            "mlflow.source.name": "src/train.py", **tracking.source_tags(str(cfg.paths.root_dir))}
    if in_sweep:
        tags["tssweep.job_num"] = str(hydra_cfg.job.num)
    if cfg.get("optuna_trial") is not None:
        tags["optuna.trial_number"] = str(cfg.optuna_trial)
    sweep_dir = os.path.abspath(hydra_cfg.sweep.dir) if in_sweep else None
    report_fold = pruning.fold_reporter(cfg, hydra_cfg.sweeper if in_sweep else None)

    default_name = "{dataset} {preprocess} {model}".format_map(choices)
    # an Optuna trial's overrides are all its hyperparameters: too long for a name
    name = f"trial {cfg.optuna_trial}" if cfg.get("optuna_trial") is not None else None
    with tracking.job_run(store, overrides, default_name, tags, sweep_dir, name) as run:
        params = {key: value for key, value in tracking.flatten(cfg).items() if key != "optuna_trial"}
        run.log(params={**params, **{f"{group}.name": option for group, option in choices.items()}})
        series = dataset.load_series(cfg.dataset)
        run.log(tags={"data.fingerprint": dataset.fingerprint(series), "data.length": len(series)})
        preprocess.check_applicable(cfg.preprocess, series, choices.get("preprocess", "?"))
        pipeline = preprocess.wrap_forecaster(cfg.preprocess, model.build_forecaster(cfg.model))

        folds_done: list[dict] = []

        def after_fold(fold: int, fold_scores: dict) -> None:
            folds_done.append(fold_scores)
            if report_fold is not None:
                done = [row[objectives[0]] for row in folds_done]
                report_fold(fold, sum(done) / len(done))

        try:
            scores = evaluate.evaluate(pipeline, series, cfg.dataset, after_fold=after_fold)
        except BaseException:
            # a pruned (or interrupted) run keeps the folds it finished
            run.log(step_metrics={f"fold_{name}": [row[name] for row in folds_done]
                                  for name in evaluate.METRICS})
            raise
        artifacts = Path(hydra_cfg.runtime.output_dir) / "artifacts"
        test_metric = f"test_{objectives[0]}"
        title = " ".join([choices.get("dataset", ""), run.name] + (
            [f"({test_metric} = {scores.test_scores[test_metric]:.3f})"]
            if test_metric in scores.test_scores else []))
        _write_artifacts(cfg, scores, title, artifacts)
        run.log(metrics={**scores.backtest_scores, **scores.test_scores,
                         "fit_seconds": scores.fit_seconds, "predict_seconds": scores.predict_seconds},
                step_metrics={f"fold_{name}": scores.fold_scores[name].tolist()
                              for name in evaluate.METRICS})
        run.log_artifacts(artifacts)

    values = tuple(scores.objective(name) for name in objectives)
    log.info("backtest %s  holdout %s", _show(dict(zip(objectives, values))), _show(scores.test_scores))
    return values[0] if isinstance(cfg.optimized_metric, str) else values


def _show(values: dict[str, float]) -> str:
    return "  ".join(f"{name}={value:.4f}" for name, value in values.items())


def _share_cores(cfg: DictConfig, hydra_cfg: DictConfig) -> None:
    """With jobs running side by side, give each CatBoost its share of the cores.

    ``model.thread_count=-1`` means "every core this job may use": all of them with the
    basic launcher, ``cores // n`` when a parallel launcher runs ``n`` jobs at once (the
    smaller of the launcher's and the sweeper's ``n_jobs``), so jobs x threads never
    exceeds the cores.
    """
    if cfg.model.get("thread_count") != -1:
        return
    cores = os.cpu_count() or 1
    limits = [int(n) for n in (hydra_cfg.launcher.get("n_jobs"), hydra_cfg.sweeper.get("n_jobs"))
              if n is not None]
    parallel = min([cores if n < 0 else n for n in limits], default=1)
    if parallel > 1:
        cfg.model.thread_count = max(1, cores // parallel)


def _write_artifacts(cfg: DictConfig, scores: evaluate.Evaluation, title: str, folder: Path) -> None:
    """The files a run keeps: config, fold table, forecast plot, importances, the model."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    scores.fold_scores.to_csv(folder / "backtest_folds.csv")
    plots.forecast_plot(scores.history, scores.holdout, scores.holdout_forecast, title,
                        folder / "forecast.png")
    importances = model.feature_importances(scores.fitted)
    if importances is not None:
        pd.Series(importances, name="importance").rename_axis("feature").to_csv(
            folder / "feature_importance.csv")
    tracking.save_model(scores.fitted, folder / "model")


class _DropRememberDataWarning(logging.Filter):
    """sktime >= 1.2 warns at every forecaster it builds that its ``remember_data``
    default changes in 1.3; tssweep never calls ``update``, so it does not concern us."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "remember_data" not in record.getMessage()


def _route_warnings_to_log() -> None:
    """Send warnings to the job's log, minus sktime's repeated ``remember_data`` notice.

    A ``warnings`` filter cannot hold it back: sktime's pandas-warning guard puts a
    global "default" filter for FutureWarning back in front after every horizon check.
    """
    logging.captureWarnings(True)
    logger = logging.getLogger("py.warnings")
    if not any(isinstance(existing, _DropRememberDataWarning) for existing in logger.filters):
        logger.addFilter(_DropRememberDataWarning())
