"""The one table of metric directions, and how a search's directions follow from it."""

import pytest
from hydra_plugins.hydra_optuna_sweeper.config import Direction

from tssweep.errors import BadInput
from tssweep.objectives import (
    DIRECTIONS,
    OBJECTIVES,
    greater_is_better,
    objective_names,
    search_directions,
)

EXPECTED = {"mase": "minimize", "mae": "minimize", "rmse": "minimize", "smape": "minimize",
            "cv_log_loss": "minimize", "fit_seconds": "minimize", "predict_seconds": "minimize",
            "transform_seconds": "minimize", "cv_accuracy": "maximize",
            "cv_balanced_accuracy": "maximize", "cv_f1_macro": "maximize"}


def test_every_objective_of_every_task_has_its_direction():
    assert {name for names in OBJECTIVES.values() for name in names} == set(DIRECTIONS)
    assert DIRECTIONS == EXPECTED


@pytest.mark.parametrize("metric", sorted(EXPECTED))
def test_an_unset_direction_follows_the_metric_and_the_opposite_is_refused(metric):
    assert search_directions(None, metric) == [EXPECTED[metric]]
    assert search_directions(EXPECTED[metric], metric) == [EXPECTED[metric]]
    assert greater_is_better(metric) == (EXPECTED[metric] == "maximize")
    assert greater_is_better(f"test_{metric}") == greater_is_better(metric)
    opposite = "maximize" if EXPECTED[metric] == "minimize" else "minimize"
    with pytest.raises(BadInput, match=f"hydra.sweeper.direction='{opposite}': contradicts the "
                                       f"metric: {metric} is to {EXPECTED[metric]}"):
        search_directions(opposite, metric)


def test_each_objective_of_a_multi_objective_search_takes_its_own_direction():
    assert search_directions(None, ["cv_accuracy", "fit_seconds"]) == ["maximize", "minimize"]
    assert search_directions([Direction.maximize, "MINIMIZE"], ["cv_accuracy", "fit_seconds"]) == \
        ["maximize", "minimize"]
    with pytest.raises(BadInput, match="fit_seconds is to minimize"):
        search_directions(["maximize", "maximize"], ["cv_accuracy", "fit_seconds"])
    with pytest.raises(BadInput, match=r"gives 1 direction\(s\) for 2 objective\(s\)"):
        search_directions("maximize", ["cv_accuracy", "fit_seconds"])


def test_another_apps_metric_takes_the_direction_given_or_minimize():
    assert search_directions(None, None) == ["minimize"]
    assert search_directions(Direction.maximize, None) == ["maximize"]
    assert search_directions("maximize", "reward") == ["maximize"]
    assert search_directions(None, "loss") == ["minimize"]
    assert search_directions(None, ["a", "b"]) == ["minimize", "minimize"]


def test_objective_names_are_checked_against_the_task():
    assert objective_names("mase") == ["mase"]
    assert objective_names(["mase", "fit_seconds"]) == ["mase", "fit_seconds"]
    with pytest.raises(BadInput, match="for forecasting. Allowed: mae, rmse, smape, mase, fit_seconds"):
        objective_names("accuracy")
    with pytest.raises(BadInput, match="unknown metric for classification"):
        objective_names("mase", "classification")
