"""What an Optuna search leaves on its parent run: the trials, the best, and plots.

Read from the study's storage at the end of a search (and again after every resume,
so the parent always describes the whole study): ``trials.csv`` (one row per trial,
with state, values, params and duration), ``optimization_history.png``,
``param_importances.png`` (fANOVA, once two trials completed) and, for a
multi-objective search, ``pareto_front.png`` and ``pareto_front.csv``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tssweep.redact import redact_uri

log = logging.getLogger(__name__)


def write_study_report(storage: str, study_name: str, folder: Path) -> tuple[dict, dict]:
    """Write the report files into ``folder``; return (metrics, tags) for the parent run.

    Nothing when the study does not exist (a search refused before its first trial).
    """
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # the search stopped before it created the study
        return {}, {}
    except Exception as err:  # an unusable storage was reported when the search began
        log.warning("No study report: %s cannot be read (%s)", redact_uri(storage), type(err).__name__)
        return {}, {}
    folder.mkdir(parents=True, exist_ok=True)
    study.trials_dataframe().to_csv(folder / "trials.csv", index=False)
    counts = {state: len(study.get_trials(deepcopy=False, states=[state]))
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    metrics = {"optuna.trials_complete": counts[TrialState.COMPLETE],
               "optuna.trials_pruned": counts[TrialState.PRUNED],
               "optuna.trials_failed": counts[TrialState.FAIL]}
    tags: dict = {"optuna.study_name": study_name}
    if not counts[TrialState.COMPLETE]:
        return metrics, tags

    multi_objective = len(study.directions) > 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if multi_objective:
            front = study.best_trials
            tags["optuna.pareto_trials"] = " ".join(str(t.number) for t in front)
            metrics["optuna.pareto_size"] = len(front)
            study.trials_dataframe().query("number in @numbers", local_dict={
                "numbers": [t.number for t in front]}).to_csv(folder / "pareto_front.csv", index=False)
            _save(optuna.visualization.matplotlib.plot_pareto_front(study), folder / "pareto_front.png")
        else:
            best = study.best_trial
            metrics["optuna.best_value"] = best.value
            tags["optuna.best_trial"] = str(best.number)
            tags.update({f"optuna.best_params.{key}": str(value) for key, value in best.params.items()})
            _save(optuna.visualization.matplotlib.plot_optimization_history(study),
                  folder / "optimization_history.png")
            if counts[TrialState.COMPLETE] >= 2 and study.best_trial.params:
                try:
                    _save(optuna.visualization.matplotlib.plot_param_importances(study),
                          folder / "param_importances.png")
                except (ValueError, RuntimeError) as err:  # e.g. a search space of one value
                    log.warning("No hyperparameter-importance plot: %s", err)
    return metrics, tags


def _save(axes, path: Path) -> None:
    figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    figure.set_size_inches(9, 5)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    import matplotlib.pyplot as plt  # optuna draws with pyplot; free its figure

    plt.close(figure)
