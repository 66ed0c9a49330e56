"""What a job can return for a sweeper to optimise, and which way is better.

The one table of metric directions: the sweeper (``hydra/sweeper=tssweep_optuna`` and
the ``hparams_search`` presets), the sweep callback's ranking and the verdict all read
it, so a search never climbs a metric that should fall. Dependency-free (the sweeper
plugin imports it when Hydra starts).
"""

from __future__ import annotations

from collections.abc import Sequence

from tssweep.errors import BadInput

MINIMIZE, MAXIMIZE = "minimize", "maximize"

# Every objective a tssweep job can return, with its direction: errors and seconds go
# down, classification scores go up.
DIRECTIONS = {
    "mae": MINIMIZE,
    "rmse": MINIMIZE,
    "smape": MINIMIZE,
    "mase": MINIMIZE,
    "cv_accuracy": MAXIMIZE,
    "cv_balanced_accuracy": MAXIMIZE,
    "cv_f1_macro": MAXIMIZE,
    "cv_log_loss": MINIMIZE,
    "fit_seconds": MINIMIZE,
    "transform_seconds": MINIMIZE,
    "predict_seconds": MINIMIZE,
}
# what a job of each task computes: a backtest or cross-validation mean, or its cost
OBJECTIVES = {
    "forecasting": ("mae", "rmse", "smape", "mase", "fit_seconds", "predict_seconds"),
    "classification": ("cv_accuracy", "cv_balanced_accuracy", "cv_f1_macro", "cv_log_loss",
                       "fit_seconds", "transform_seconds", "predict_seconds"),
}


def objective_names(optimized_metric: str | Sequence[str], task: str = "forecasting") -> list[str]:
    """The objectives named by ``optimized_metric`` (a list for multi-objective searches),
    checked against what the dataset's task computes, before any training."""
    names = [optimized_metric] if isinstance(optimized_metric, str) else list(optimized_metric)
    allowed = OBJECTIVES.get(task, OBJECTIVES["forecasting"])
    for name in names:
        if name not in allowed:
            raise BadInput("optimized_metric", name, f"unknown metric for {task}.", ", ".join(allowed))
    if not names:
        raise BadInput("optimized_metric", names, "names no metric.", ", ".join(allowed))
    return names


def greater_is_better(metric: str) -> bool:
    """Whether a higher value of ``metric`` is better (``test_`` twins follow their metric)."""
    base = metric.removeprefix("test_")
    return MAXIMIZE in (DIRECTIONS.get(base), DIRECTIONS.get(f"cv_{base}") if base != metric else None)


def test_twin(metric: str) -> str:
    """The held-out score of an objective: ``mase`` -> ``test_mase`` (the holdout),
    ``cv_accuracy`` -> ``test_accuracy`` (the test split)."""
    return f"test_{metric.removeprefix('cv_')}"


def evaluation_words(task: str) -> tuple[str, str]:
    """What the task calls the score a sweep ranks by, and the held-out one."""
    return ("cross-validation", "test split") if task == "classification" else ("backtest", "holdout")


def search_directions(direction: object, optimized_metric: object) -> list[str]:
    """The directions a search optimises, one per objective.

    ``direction`` is ``hydra.sweeper.direction`` as given: ``None`` (unset) follows the
    metric, else it must agree with it. A metric outside the table (another app's own)
    takes ``direction`` as given, ``minimize`` when unset, as hydra-optuna-sweeper does.
    """
    names = [] if optimized_metric is None else (
        [str(optimized_metric)] if isinstance(optimized_metric, str) else [str(n) for n in optimized_metric])
    given = None if direction is None else (
        [_name(direction)] if isinstance(direction, str) or not isinstance(direction, Sequence)
        else [_name(d) for d in direction])
    known = [DIRECTIONS.get(name) for name in names]
    if not names or None in known:
        return given or [MINIMIZE] * max(1, len(names))
    if given is None:
        return known
    shown = given[0] if len(given) == 1 else given
    if len(given) != len(known):
        raise BadInput("hydra.sweeper.direction", shown,
                       f"gives {len(given)} direction(s) for {len(known)} objective(s) "
                       f"(optimized_metric={names}).",
                       f"leave it unset to follow the metrics, or {known}")
    wrong = [f"{name} is to {want}" for name, want, got in zip(names, known, given) if want != got]
    if wrong:
        raise BadInput("hydra.sweeper.direction", shown,
                       f"contradicts the metric: {', '.join(wrong)}.",
                       f"leave hydra.sweeper.direction unset (it follows optimized_metric), "
                       f"or {known[0] if len(known) == 1 else known}")
    return known


def _name(direction: object) -> str:
    """``minimize`` from the plugin's ``Direction`` enum or a string, lower-cased."""
    return str(getattr(direction, "name", direction)).lower()
