"""Runs: a job's run, a sweep's parent, and reading a sweep's children back."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import pandas as pd

from tssweep import interrupts, logs
from tssweep.objectives import test_twin
from tssweep.redact import redact_uri
from tssweep.report import EVALUATION
from tssweep.tracking import names, owners, writer
from tssweep.tracking.store import Store, Where, open_store

# a run's statuses, as MLflow's RunStatus names them (mlflow is imported where a run is
# written, which in a local sweep is its writer process, not the jobs' own)
FINISHED, FAILED, KILLED, RUNNING = "FINISHED", "FAILED", "KILLED", "RUNNING"

PARENT_RUN_ENV = "TSSWEEP_PARENT_RUN_ID"
SWEEP_DIR_TAG = "tssweep.sweep_dir"
ROLE_TAG = "tssweep.role"
SWEPT_KEYS_TAG = "tssweep.swept_keys"
STUDY_TAG = "tssweep.study"
PARENT_TAG = "mlflow.parentRunId"
# a child ended KILLED by the pruner, or by Ctrl-C / SIGTERM
PRUNED_TAG = "pruned"
INTERRUPTED_TAG = "interrupted"

# what a run was scored on, as its tags and params name it: rivals share all of them
EVALUATION_KEYS = EVALUATION
# each child's per-point losses (a backtest point, or a train series held out by
# cross-validation), by file, with the columns that identify a point
# a panel's backtest points have a series column too, between fold and step
POINTS_FILES = {"backtest_points.csv": ("fold", "series", "step"), "cv_points.csv": ("series",)}

# tries at logging a dataset input that a parallel child may be creating too
_DATASET_ATTEMPTS = 4


def _lost_create_race(err: Exception) -> bool:
    """A unique-key violation on insert, as PostgreSQL, MySQL or SQLite word it."""
    text = str(err).lower()
    return any(word in text for word in ("duplicate key", "unique constraint", "uniqueviolation",
                                         "duplicate entry"))


# MLflow's own batch limits per log_batch call
_MAX_PARAMS, _MAX_TAGS, _MAX_METRICS = 100, 100, 1000


class TrackedRun:
    """One MLflow run to log to; callers hand it plain values, never mlflow objects.

    In a sweep with a writer process (:mod:`tssweep.tracking.writer`), a job holds a
    :class:`~tssweep.tracking.writer.PendingRun` instead, with the same methods, which
    this class then runs in the writer."""

    def __init__(self, store: Store, run_id: str, name: str = ""):
        self.store = store
        self.run_id = run_id
        self.name = name
        self.completed = False

    def complete(self, work, *args) -> None:
        """Do ``work(run, *args)``, what the run needs after its training (its plots,
        model, scores and artifacts), then mark it FINISHED. ``work`` is a module-level
        function and ``args`` plain values: a writer process may do it instead."""
        work(self, *args)
        self.end(FINISHED)
        self.completed = True

    def end(self, status: str, tags: Mapping[str, str] = {}) -> None:
        """Close the run as ``status`` (FINISHED, KILLED), tagged with ``tags`` first."""
        self.log(tags=tags)
        self.store.client.set_terminated(self.run_id, status)

    def fail(self, error: str, trace: str) -> None:
        """Close the run as FAILED: ``error`` (type: message) as its ``error`` tag, then
        ``trace`` as ``traceback.txt``, where the store takes them."""
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "traceback.txt").write_text(trace)
            try:
                self.log(tags={"error": error})
                self.log_artifacts(Path(folder))
            finally:
                self.store.client.set_terminated(self.run_id, FAILED)

    def log(self, params: Mapping[str, object] = {}, metrics: Mapping[str, float] = {},
            tags: Mapping[str, object] = {}, step_metrics: Mapping[str, list[float]] = {}) -> None:
        """Log in as few ``log_batch`` calls as MLflow's limits allow.

        ``step_metrics`` maps a metric name to its values per step (fold 0, 1, ...).
        """
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metric_rows = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
        metric_rows += [Metric(key, float(value), now, step)
                        for key, values in step_metrics.items() for step, value in enumerate(values)]
        param_rows = [Param(key, str(value)) for key, value in params.items()]
        tag_rows = [RunTag(key, str(value)) for key, value in tags.items()]
        while metric_rows or param_rows or tag_rows:
            self.store.client.log_batch(self.run_id, metrics=metric_rows[:_MAX_METRICS],
                                        params=param_rows[:_MAX_PARAMS], tags=tag_rows[:_MAX_TAGS])
            metric_rows, param_rows = metric_rows[_MAX_METRICS:], param_rows[_MAX_PARAMS:]
            tag_rows = tag_rows[_MAX_TAGS:]

    def log_datasets(self, parts: list[tuple[pd.DataFrame, str, str]], name: str,
                     targets: str | None = None) -> None:
        """Record the data the run used as MLflow dataset inputs (the runs table's
        Dataset column), in one call: each part is ``(frame, digest, context)``, the
        digest telling equal data apart, the context saying what the run did with them
        (training, holdout; train, test)."""
        from mlflow.data import from_pandas
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.exceptions import MlflowException

        with logs.without_schema_hints():  # a record of the data used, not a model's input
            inputs = [DatasetInput(from_pandas(frame, name=name, digest=digest, targets=targets,
                                               source=_code_source())._to_mlflow_entity(),
                                   tags=[InputTag("mlflow.data.context", context)])
                      for frame, digest, context in parts]
        for attempt in range(_DATASET_ATTEMPTS):
            try:
                self.store.client.log_inputs(self.run_id, datasets=inputs)
                return
            except MlflowException as err:
                # MLflow's store finds or creates the dataset's row in two steps: children
                # of a parallel sweep logging the same data at once can both try to create
                # it, and one loses on the unique key. Again, it finds the winner's row.
                if attempt + 1 == _DATASET_ATTEMPTS or not _lost_create_race(err):
                    raise
                time.sleep(0.1 * (attempt + 1))

    def log_artifacts(self, local_dir: Path) -> None:
        """Upload a folder's files to the run's artifact root in one call."""
        self.store.client.log_artifacts(self.run_id, str(local_dir))


@contextmanager
def job_run(where: Where, overrides: list[str], tags: Mapping[str, str], sweep_dir: str | None,
            single_name: str, name: str | None = None,
            job_num: int | None = None) -> Iterator[TrackedRun]:
    """Open the run of one job in the store at ``where`` and always close it with its
    real status.

    The run is named ``name`` when given (``trial 12``). In a multirun (``sweep_dir``
    given) it is a child of the sweep's parent run, named by its own values of the
    swept keys (:func:`tssweep.tracking.names.child_name`); alone, ``single_name``. An
    exception marks it FAILED with its traceback as ``traceback.txt``, Ctrl-C marks it
    KILLED; both are re-raised so Hydra reports the job as failed. In a sweep whose
    writer process runs beside its jobs, the run is a
    :class:`~tssweep.tracking.writer.PendingRun` that the writer creates, logs and
    closes, in this order: this process then opens no store at all.
    """
    # as text: a tracking server's protocol takes no numbers in tags (SQLite does)
    run_tags = {**{key: str(value) for key, value in tags.items()}, owners.OWNERS_TAG: owners.this_process()}
    background = writer.active(where)
    sweep = background.sweep if background is not None and sweep_dir is not None else None
    store = None if sweep is not None else open_store(where)
    if sweep is not None:
        parent_id, experiment_id, swept = sweep
    elif sweep_dir is not None:
        parent_id = find_parent(store, sweep_dir)
        swept = _swept_keys(store.client, parent_id)
    run_name = name or single_name
    if sweep_dir is not None:
        run_name = name or names.child_name(overrides, swept, job_num) or single_name
        run_tags[PARENT_TAG] = parent_id
        run_tags[ROLE_TAG] = "child"
    run = None
    try:
        # an interrupt in the middle of the creation would leave a run RUNNING whose id
        # never came back: it comes once the run is known, and closes it
        with interrupts.held():
            if sweep is not None:  # opened, logged and closed by the writer, in order
                run = background.open(where, experiment_id, run_tags, run_name)
            else:
                run = TrackedRun(store, store.client.create_run(store.experiment_id, tags=run_tags,
                                                                run_name=run_name).info.run_id, run_name)
        yield run
    except KeyboardInterrupt as err:
        if run is not None:
            run.end(KILLED, {INTERRUPTED_TAG: str(err) or "interrupted"})
        raise
    except BaseException as err:
        if run is None:
            raise
        if _is_pruned(err):
            run.end(KILLED, {PRUNED_TAG: str(err)})
        else:
            run.fail(*failure_text(err))
        raise
    else:
        if not run.completed:
            with interrupts.held():
                run.end(FINISHED)


@lru_cache(maxsize=16)
def _swept_keys(client, parent_id: str) -> tuple[str, ...]:
    """The keys a sweep varies, as its parent was opened with (the tag is set when the
    parent is created, before any child): read once per parent and process."""
    return tuple(client.get_run(parent_id).data.tags.get(SWEPT_KEYS_TAG, "").split())


def find_parent(store: Store, sweep_dir: str) -> str:
    """The parent run of the sweep this job belongs to.

    The callback puts its id in the environment, which reaches jobs in this process and
    in local worker processes; a job on another machine finds it by the tag holding the
    sweep dir instead.
    """
    from_env = os.environ.get(PARENT_RUN_ENV)
    if from_env:
        return from_env
    parents = store.client.search_runs(
        [store.experiment_id],
        filter_string=f"tags.`{SWEEP_DIR_TAG}` = '{sweep_dir}' and tags.`{ROLE_TAG}` = 'parent'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        raise RuntimeError(f"No MLflow parent run tagged {SWEEP_DIR_TAG}={sweep_dir!r} in "
                           f"{store.uri}: was the tssweep callback removed from hydra.callbacks?")
    return parents[0].info.run_id


def start_parent(store: Store, sweep_dir: str, run_name: str, swept_keys: list[str],
                 tags: Mapping[str, str], study: str | None = None, owner: str | None = None) -> str:
    """Create the parent run of a sweep, or reopen the one of its study; publish its id.

    ``swept_keys`` (the config keys the sweep varies) is kept on the parent, so each
    child is named by its own values of them alone: ``log``. ``study`` (see
    :func:`study_key`) marks a resumable Optuna study: a parent already tagged with it
    is reopened (RUNNING again, pointed at the new sweep dir) instead of a new one made.
    ``owner`` is the sweep's process (:mod:`tssweep.tracking.owners`), this one unless given.
    """
    owner = owner or owners.this_process()
    sweep_tags = {SWEEP_DIR_TAG: sweep_dir, ROLE_TAG: "parent", SWEPT_KEYS_TAG: " ".join(swept_keys)}
    earlier = store.client.search_runs(
        [store.experiment_id], filter_string=f"tags.`{STUDY_TAG}` = '{study}'",
        order_by=["attributes.start_time ASC"], max_results=1) if study else []
    if earlier:  # every process sharing the study owns it, with the ones still running
        run_id = earlier[0].info.run_id
        store.client.update_run(run_id, status=RUNNING)
        TrackedRun(store, run_id).log(tags={
            **tags, **sweep_tags, owners.OWNERS_TAG: owners.joined(earlier[0].data.tags.get(owners.OWNERS_TAG, ""), owner)})
    else:
        run_id = store.client.create_run(
            store.experiment_id, run_name=run_name,
            tags={**tags, **sweep_tags, owners.OWNERS_TAG: owner,
                  **({STUDY_TAG: study} if study else {})}).info.run_id
    os.environ[PARENT_RUN_ENV] = run_id
    return run_id


def study_key(storage: str, study_name: str) -> str:
    """What identifies an Optuna study across resumes: its name and where it is stored."""
    return f"{study_name} @ {redact_uri(storage)}"


def child_runs(store: Store, parent_id: str) -> list:
    """Every child run of ``parent_id``, oldest first."""
    runs, token = [], None
    while True:
        page = store.client.search_runs([store.experiment_id],
                                        filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
                                        order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def fold_values(store: Store, run_id: str, metric: str) -> list[float]:
    """A run's per-fold values of ``fold_<metric>``, in fold order."""
    history = store.client.get_metric_history(run_id, f"fold_{metric}")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def finish_parent(store: Store, parent_id: str, status: str) -> None:
    """Close the parent run and take its id out of the environment."""
    store.client.set_terminated(parent_id, status)
    if os.environ.get(PARENT_RUN_ENV) == parent_id:
        del os.environ[PARENT_RUN_ENV]


def _is_pruned(err: BaseException) -> bool:
    # optuna is only imported by searches; an exception of its type means it is loaded
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(err, optuna.TrialPruned)


def failure_text(err: BaseException) -> tuple[str, str]:
    """An error as a run's ``error`` tag (type: message) and its traceback."""
    return f"{type(err).__name__}: {err}"[:5000], "".join(traceback.format_exception(err))


def scored_on(run) -> dict[str, str]:
    """What a run was scored on: its data fingerprint (a tag) and evaluation settings
    (params), by :data:`EVALUATION_KEYS`; empty for a setting of the other task."""
    return {key: run.data.tags.get(key, run.data.params.get(key, "")) for key in EVALUATION_KEYS}


@lru_cache(maxsize=1)
def _code_source():
    """Where a run's datasets came from: the code of this process, as ``from_pandas``
    makes it when given no source, but made once (each made it anew from the context's
    tags: its git commit, its script, 8 ms a dataset)."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.tracking.context import registry

    return CodeDatasetSource(tags=registry.resolve_tags())


def runs_frame(runs: list, metric: str, swept_keys: list[str] = ()) -> pd.DataFrame:
    """One row per run: id, name, dataset, status, the metric, its held-out twin
    (``test_mase``, ``test_accuracy``), fit seconds; then what it was scored on (the
    data fingerprint and the evaluation settings) and its ``variant``: its values of
    the swept keys other than the dataset's (``log``), the same on every dataset."""
    held_out = test_twin(metric)
    columns = ["run_id", "run_name", "dataset", "status", metric, held_out, "fit_seconds",
               *EVALUATION_KEYS, "variant"]
    not_data = [key for key in swept_keys if key != "dataset" and not key.startswith("dataset.")]
    rows = [{
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "dataset": run.data.params.get("dataset.name", ""),
        "status": run.info.status,
        metric: run.data.metrics.get(metric),
        held_out: run.data.metrics.get(held_out),
        "fit_seconds": run.data.metrics.get("fit_seconds"),
        **scored_on(run),
        "variant": names.swept_values(run.data.tags.get("tssweep.overrides", "").split(), not_data)
        or run.info.run_name,
    } for run in runs]
    return pd.DataFrame(rows, columns=columns)


def job_config(store: Store, run_id: str):
    """The config a job ran with (its ``config.yaml``, resolved), as a DictConfig."""
    from omegaconf import OmegaConf

    with tempfile.TemporaryDirectory() as folder:
        return OmegaConf.load(store.client.download_artifacts(run_id, "config.yaml", folder))


def point_losses(store: Store, runs: list, column: str) -> dict[str, pd.Series]:
    """Each run's per-point losses in ``column`` (see :data:`POINTS_FILES`), by run id,
    indexed by point (fold, a panel's series, and step; or train series); runs without
    the file are left out. Read where they lie in a local artifact store (MLflow's
    download would copy each first), downloaded from any other."""
    found = {}
    with tempfile.TemporaryDirectory() as folder:
        for run in runs:
            run_id = run.info.run_id
            for name, index in POINTS_FILES.items():
                path = _local_artifact(run.info.artifact_uri, name)
                if path is None:
                    try:
                        path = store.client.download_artifacts(run_id, name, f"{folder}/{run_id}")
                    except Exception:  # not this task's file, or a run from before it existed
                        continue
                points = pd.read_csv(path)
                if column in points:
                    found[run_id] = points.set_index([key for key in index if key in points])[column]
                break
    return found


def _local_artifact(artifact_uri: str, name: str) -> Path | None:
    """The file ``name`` of a run whose artifacts are on this machine's disk (a
    ``file:`` URI or a path), if it is there."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    parsed = urlparse(artifact_uri)
    if parsed.scheme not in ("file", "") or parsed.netloc not in ("", "localhost"):
        return None
    path = Path(url2pathname(parsed.path)) / name
    return path if path.is_file() else None
