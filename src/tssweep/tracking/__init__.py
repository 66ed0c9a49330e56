"""Everything MLflow, split by concern: the store, params and git tags, runs, models.

This package (with the Hydra callback that calls it) is the only code that imports
mlflow. It talks to the store through ``MlflowClient`` with explicit run and experiment
ids, never through the fluent "active run" state: jobs of the basic launcher share one
process, and a global active run would leak from one job into the next.
"""

import importlib

# what this package offers, by the module it lives in: imported when first asked for,
# so that importing the package (its writer, its names) does not import mlflow
_FROM = {
    "models": ("log_model", "save_classifier", "save_forecaster"),
    "packing": ("PackedForecaster", "pack_forecaster"),
    "params": ("flatten", "source_tags"),
    "runs": ("FAILED", "FINISHED", "KILLED", "RUNNING", "EVALUATION_KEYS", "INTERRUPTED_TAG", "PARENT_RUN_ENV", "PARENT_TAG", "POINTS_FILES",
             "PRUNED_TAG", "ROLE_TAG", "STUDY_TAG", "SWEEP_DIR_TAG", "SWEPT_KEYS_TAG", "TrackedRun",
             "child_runs", "find_parent", "finish_parent", "fold_values", "job_config", "job_run",
             "point_losses", "runs_frame", "start_parent", "study_key"),
    "store": ("Store", "Where", "connect", "open_store", "resolved_uri", "where"),
}
_MODULE = {name: module for module, names in _FROM.items() for name in names}
__all__ = sorted(_MODULE)


def __getattr__(name: str):
    if name not in _MODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE[name]}"), name)
    globals()[name] = value
    return value
