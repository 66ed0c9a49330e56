"""Everything MLflow, split by concern: the store, params and git tags, runs, models.

This package (with the Hydra callback that calls it) is the only code that imports
mlflow. It talks to the store through ``MlflowClient`` with explicit run and experiment
ids, never through the fluent "active run" state: jobs of the basic launcher share one
process, and a global active run would leak from one job into the next.
"""

from tssweep.tracking.models import log_model, save_classifier, save_forecaster
from tssweep.tracking.params import flatten, source_tags
from tssweep.tracking.runs import (
    EVALUATION_KEYS,
    INTERRUPTED_TAG,
    PARENT_RUN_ENV,
    PARENT_TAG,
    POINTS_FILES,
    PRUNED_TAG,
    ROLE_TAG,
    STUDY_TAG,
    SWEEP_DIR_TAG,
    SWEPT_KEYS_TAG,
    TrackedRun,
    child_runs,
    find_parent,
    finish_parent,
    fold_values,
    job_config,
    job_run,
    point_losses,
    runs_frame,
    start_parent,
    study_key,
)
from tssweep.tracking.store import Store, connect, open_store, resolved_uri

__all__ = [
    "EVALUATION_KEYS", "POINTS_FILES", "point_losses", "INTERRUPTED_TAG", "PARENT_RUN_ENV", "PARENT_TAG", "PRUNED_TAG", "ROLE_TAG", "STUDY_TAG",
    "SWEEP_DIR_TAG", "SWEPT_KEYS_TAG", "Store", "TrackedRun", "child_runs", "connect", "find_parent",
    "finish_parent", "flatten", "fold_values", "job_config", "job_run", "log_model", "open_store", "resolved_uri",
    "runs_frame", "save_classifier", "save_forecaster", "source_tags", "start_parent", "study_key",
]
