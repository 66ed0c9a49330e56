"""A job's side of Optuna pruning: report the running backtest score after each fold.

The tssweep Optuna sweeper gives each job its trial number (``optuna_trial`` in the job
config). With a storage, the job opens the study, reports the mean of the optimised
metric over the folds done so far as the trial's intermediate value (step = fold), and
raises ``optuna.TrialPruned`` when the configured pruner says the trial is hopeless.
Outside an Optuna search, or for multi-objective searches (Optuna cannot prune those),
there is nothing to report.
"""

from __future__ import annotations

from collections.abc import Callable

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

FoldReporter = Callable[[int, float], None]


def fold_reporter(cfg: DictConfig, sweeper_cfg: DictConfig | None) -> FoldReporter | None:
    """A callable ``(fold, running_score)`` for this job's trial, or None."""
    trial_number = cfg.get("optuna_trial")
    if trial_number is None or sweeper_cfg is None or not sweeper_cfg.get("storage"):
        return None
    if OmegaConf.is_list(cfg.optimized_metric) or OmegaConf.is_list(sweeper_cfg.get("direction")):
        return None  # multi-objective: Optuna cannot prune
    import optuna  # a search's job only: a grid sweep's jobs never import it

    from tssweep import shared_study

    pruner = instantiate(sweeper_cfg.pruner) if sweeper_cfg.get("pruner") else None
    storage = optuna.storages.get_storage(shared_study.open_storage(str(sweeper_cfg.storage), heartbeat=False))
    study = optuna.load_study(study_name=sweeper_cfg.study_name, storage=storage, pruner=pruner)
    study_id = storage.get_study_id_from_name(sweeper_cfg.study_name)
    trial = optuna.trial.Trial(
        study, storage.get_trial_id_from_study_id_trial_number(study_id, int(trial_number)))

    def report(fold: int, running_score: float) -> None:
        trial.report(running_score, step=fold)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after fold {fold}: running {cfg.optimized_metric} "
                                     f"{running_score:.4g} is worse than the pruner allows")
    return report
