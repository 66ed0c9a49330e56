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

from tssweep import dataset, evaluate, model, plots, preprocess, tracking
from tssweep.errors import check_required

log = logging.getLogger(__name__)


def run_job(cfg: DictConfig) -> float:
    """Train and score the configured pipeline, log it, return the value to optimise."""
    _route_warnings_to_log()
    hydra_cfg = HydraConfig.get()
    choices = {group: str(option) for group, option in hydra_cfg.runtime.choices.items()
               if "/" not in group and option is not None}
    overrides = list(hydra_cfg.overrides.task)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    check_required(cfg)
    evaluate.check_metric(cfg.optimized_metric)

    store = tracking.open_store(cfg.tracking)
    tags = {"tssweep.overrides": " ".join(overrides), "optimized_metric": cfg.optimized_metric,
            "mlflow.source.name": "src/train.py",
            **tracking.source_tags(str(cfg.paths.root_dir))}
    if in_sweep:
        tags["tssweep.job_num"] = str(hydra_cfg.job.num)
    sweep_dir = os.path.abspath(hydra_cfg.sweep.dir) if in_sweep else None

    default_name = "{dataset} {preprocess} {model}".format_map(choices)
    with tracking.job_run(store, overrides, default_name, tags, sweep_dir) as run:
        run.log(params={**tracking.flatten(cfg), **{f"{g}.name": o for g, o in choices.items()}})
        series = dataset.load_series(cfg.dataset)
        run.log(tags={"data.fingerprint": dataset.fingerprint(series), "data.length": len(series)})
        preprocess.check_applicable(cfg.preprocess, series, choices.get("preprocess", "?"))
        pipeline = preprocess.wrap_forecaster(cfg.preprocess, model.build_forecaster(cfg.model))
        scores = evaluate.evaluate(pipeline, series, cfg.dataset)
        artifacts = Path(hydra_cfg.runtime.output_dir) / "artifacts"
        metric = f"test_{cfg.optimized_metric}"
        title = f"{choices.get('dataset', '')}  {run.name}  ({metric} = {scores.test_scores[metric]:.3f})"
        _write_artifacts(cfg, scores, title, artifacts)
        run.log(metrics={**scores.backtest_scores, **scores.test_scores,
                         "fit_seconds": scores.fit_seconds, "predict_seconds": scores.predict_seconds},
                step_metrics={f"fold_{name}": scores.fold_scores[name].tolist()
                              for name in evaluate.METRICS})
        run.log_artifacts(artifacts)

    objective = scores.backtest_scores[cfg.optimized_metric]
    log.info("backtest %s=%.4f  holdout test_%s=%.4f", cfg.optimized_metric, objective,
             cfg.optimized_metric, scores.test_scores[f"test_{cfg.optimized_metric}"])
    return objective


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
