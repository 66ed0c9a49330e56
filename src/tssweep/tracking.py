"""Everything MLflow: where the store is, the parent run of a sweep, a job's run.

This is the only module (with the Hydra callback that calls it) that imports mlflow.
It talks to the store through ``MlflowClient`` with explicit run and experiment ids,
never through the fluent "active run" state: jobs of the basic launcher share one
process, and a global active run would leak from one job into the next.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.pyfunc import PythonModel
from mlflow.pyfunc import save_model as save_pyfunc_model
from omegaconf import DictConfig, OmegaConf

from tssweep.redact import SECRET_KEY, redact_uri

PARENT_RUN_ENV = "TSSWEEP_PARENT_RUN_ID"
SWEEP_DIR_TAG = "tssweep.sweep_dir"
ROLE_TAG = "tssweep.role"
SWEPT_KEYS_TAG = "tssweep.swept_keys"
STUDY_TAG = "tssweep.study"
PARENT_TAG = "mlflow.parentRunId"
# a child ended KILLED by the pruner, or by Ctrl-C / SIGTERM
PRUNED_TAG = "pruned"
INTERRUPTED_TAG = "interrupted"

# MLflow's own batch limits per log_batch call
_MAX_PARAMS, _MAX_TAGS, _MAX_METRICS = 100, 100, 1000
_MAX_PARAM_LENGTH = 6000
_SERVER_TIMEOUT = 5.0
# What a logged pipeline needs to be loaded again, pinned to what trained it; passing
# them spares MLflow's requirement inference, which costs over a second per model.
_MODEL_REQUIREMENTS = ("sktime", "catboost", "statsmodels", "scikit-learn", "pandas", "numpy",
                       "scipy")


@dataclass
class Store:
    """An MLflow client bound to the experiment the runs of this invocation go to."""

    client: MlflowClient
    experiment_id: str
    uri: str


def open_store(tracking_cfg: DictConfig) -> Store:
    """Connect to the configured store and get (or create) the experiment.

    ``MLFLOW_TRACKING_URI`` wins over ``tracking.uri``. A SQLite store's folder is
    created, and a new experiment gets ``tracking.artifact_location`` explicitly, so
    MLflow never falls back to ``./mlruns`` in the current directory. Done once per
    process and store: the jobs of a local sweep share the callback's connection.
    """
    uri, key = resolved_uri(tracking_cfg)
    location = tracking_cfg.get("artifact_location")
    return _open_store(uri, key, str(tracking_cfg.experiment), str(location) if location else None)


def resolved_uri(tracking_cfg: DictConfig) -> tuple[str, str]:
    """The store's URI and where it came from: ``MLFLOW_TRACKING_URI`` wins over ``tracking.uri``."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI"
    return str(tracking_cfg.uri), "tracking.uri"


@lru_cache(maxsize=None)
def _open_store(uri: str, key: str, name: str, location: str | None) -> Store:
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if uri.startswith(("http://", "https://")):
        _check_server(uri, key)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return Store(client, experiment.experiment_id, uri)
    if location:
        Path(location).mkdir(parents=True, exist_ok=True)
        location = Path(location).resolve().as_uri()
    return Store(client, client.create_experiment(name, artifact_location=location), uri)


def flatten(cfg: DictConfig) -> dict[str, str]:
    """Every leaf of a resolved config as ``group.key`` -> string, MLflow's param shape.

    Keys that look like secrets (password, token, secret, key) are left out, and
    credentials inside URIs are masked: params are readable by anyone with the store.
    """
    flat: dict[str, str] = {}

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif not SECRET_KEY.search(prefix.rsplit(".", 1)[-1]):  # scalars and lists
            flat[prefix] = redact_uri(str(node))[:_MAX_PARAM_LENGTH]

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


@lru_cache(maxsize=None)
def source_tags(root_dir: str) -> dict[str, str]:
    """Git commit and dirty flag of the checkout that ran, so a result can be reproduced."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", root_dir, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"git.commit": "unknown"}
    return {"git.commit": commit, "git.dirty": str(dirty).lower(), "mlflow.source.git.commit": commit}


class TrackedRun:
    """One MLflow run to log to; callers hand it plain values, never mlflow objects."""

    def __init__(self, store: Store, run_id: str, name: str = ""):
        self.store = store
        self.run_id = run_id
        self.name = name

    def log(self, params: Mapping[str, object] = {}, metrics: Mapping[str, float] = {},
            tags: Mapping[str, object] = {}, step_metrics: Mapping[str, list[float]] = {}) -> None:
        """Log in as few ``log_batch`` calls as MLflow's limits allow.

        ``step_metrics`` maps a metric name to its values per step (fold 0, 1, ...).
        """
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

    def log_artifacts(self, local_dir: Path) -> None:
        """Upload a folder's files to the run's artifact root in one call."""
        self.store.client.log_artifacts(self.run_id, str(local_dir))


def save_model(fitted: object, path: Path) -> None:
    """Save a fitted sktime estimator in MLflow's model format (sktime flavor + pyfunc).

    Loadable with ``sktime.utils.mlflow_sktime.load_model`` or
    ``mlflow.pyfunc.load_model`` from ``runs:/<run_id>/model``.
    """
    from sktime.utils import mlflow_sktime

    mlflow_sktime.save_model(fitted, str(path), pip_requirements=_pinned(_MODEL_REQUIREMENTS))


def save_classifier(fitted: object, path: Path) -> None:
    """Save a fitted tssweep classifier (preprocessing + model) as an MLflow pyfunc model.

    ``mlflow.pyfunc.load_model("runs:/<run_id>/model").predict(X)`` takes sktime's
    nested DataFrame of series and returns labels; the tssweep package travels with
    the model, so loading needs only the pinned requirements.
    """
    import tssweep

    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)  # its per-model notice that pickles are code
    try:
        save_pyfunc_model(str(path), python_model=_ClassifierModel(fitted),
                                 code_paths=[str(Path(tssweep.__file__).parent)],
                                 pip_requirements=_pinned(_MODEL_REQUIREMENTS))
    finally:
        pyfunc_log.setLevel(level)


@contextmanager
def job_run(store: Store, overrides: list[str], default_name: str, tags: Mapping[str, str],
            sweep_dir: str | None, name: str | None = None) -> Iterator[TrackedRun]:
    """Open the run of one job and always close it with its real status.

    The run is named ``name``, else by the job's overrides, else ``default_name``. In a
    multirun (``sweep_dir`` given) it is a child of the sweep's parent run, named by
    the overrides of the swept keys only. An exception marks it FAILED with its
    traceback as ``traceback.txt``, Ctrl-C marks it KILLED; both are re-raised so Hydra
    reports the job as failed.
    """
    run_tags = dict(tags)
    shown = overrides
    if sweep_dir is not None:
        parent = store.client.get_run(find_parent(store, sweep_dir))
        swept = set(parent.data.tags.get(SWEPT_KEYS_TAG, "").split())
        shown = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept] or overrides
        run_tags[PARENT_TAG] = parent.info.run_id
        run_tags[ROLE_TAG] = "child"
    run_name = name or " ".join(shown) or default_name
    run = store.client.create_run(store.experiment_id, tags=run_tags, run_name=run_name)
    run_id = run.info.run_id
    try:
        yield TrackedRun(store, run_id, run_name)
    except KeyboardInterrupt as err:
        store.client.set_tag(run_id, INTERRUPTED_TAG, str(err) or "interrupted")
        store.client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException as err:
        if _is_pruned(err):
            store.client.set_tag(run_id, PRUNED_TAG, str(err))
            store.client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
        else:
            _log_failure(store, run_id, err)
        raise
    else:
        store.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


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
                 tags: Mapping[str, str], study: str | None = None) -> str:
    """Create the parent run of a sweep, or reopen the one of its study; publish its id.

    ``swept_keys`` (the config keys the sweep varies) is kept on the parent, so each
    child is named by its own values of them alone: ``preprocess=log``. ``study`` (see
    :func:`study_key`) marks a resumable Optuna study: a parent already tagged with it
    is reopened (RUNNING again, pointed at the new sweep dir) instead of a new one made.
    """
    sweep_tags = {SWEEP_DIR_TAG: sweep_dir, ROLE_TAG: "parent", SWEPT_KEYS_TAG: " ".join(swept_keys)}
    earlier = store.client.search_runs(
        [store.experiment_id], filter_string=f"tags.`{STUDY_TAG}` = '{study}'",
        order_by=["attributes.start_time ASC"], max_results=1) if study else []
    if earlier:
        run_id = earlier[0].info.run_id
        store.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        TrackedRun(store, run_id).log(tags={**tags, **sweep_tags})
    else:
        run_id = store.client.create_run(
            store.experiment_id, run_name=run_name,
            tags={**tags, **sweep_tags, **({STUDY_TAG: study} if study else {})}).info.run_id
    os.environ[PARENT_RUN_ENV] = run_id
    return run_id


def study_key(storage: str, study_name: str) -> str:
    """What identifies an Optuna study across resumes: its name and where it is stored."""
    return f"{study_name} @ {redact_uri(storage)}"


def _check_server(uri: str, key: str) -> None:
    """Fail in seconds, naming the URI, when no MLflow server answers at ``uri``.

    MLflow's client would otherwise retry each call with backoff for minutes.
    """
    import urllib.error
    import urllib.request

    from tssweep.errors import BadInput

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=_SERVER_TIMEOUT):
            return
    except urllib.error.HTTPError:
        return  # something answers (a proxy or auth in front of MLflow): let MLflow speak
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise BadInput(key, redact_uri(uri), f"no MLflow tracking server answers there ({reason}).",
                       "the URI of a running server (start one with `mlflow server --host "
                       "127.0.0.1`), or unset MLFLOW_TRACKING_URI and use tracking=local") from None


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


def _log_failure(store: Store, run_id: str, err: BaseException) -> None:
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "traceback.txt"
        trace.write_text("".join(traceback.format_exception(err)))
        try:
            store.client.log_artifacts(run_id, folder)
            store.client.set_tag(run_id, "error", f"{type(err).__name__}: {err}"[:5000])
        finally:
            store.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))


@lru_cache(maxsize=None)
def _pinned(packages: tuple[str, ...]) -> list[str]:
    pins = []
    for package in packages:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def runs_frame(runs: list, metric: str) -> pd.DataFrame:
    """One row per run: id, name, dataset, status, the metric, its test twin, fit seconds."""
    columns = ["run_id", "run_name", "dataset", "status", metric, f"test_{metric}", "fit_seconds"]
    rows = [{
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "dataset": run.data.params.get("dataset.name", ""),
        "status": run.info.status,
        metric: run.data.metrics.get(metric),
        f"test_{metric}": run.data.metrics.get(f"test_{metric}"),
        "fit_seconds": run.data.metrics.get("fit_seconds"),
    } for run in runs]
    return pd.DataFrame(rows, columns=columns)


class _ClassifierModel(PythonModel):
    """pyfunc face of a fitted classifier: ``predict`` returns labels."""

    # Series of any shape go in, which no MLflow type hint describes; without this, MLflow
    # asks for type hints on stderr at every import (its ChatModel opts out the same way).
    _skip_type_hint_validation = True

    def __init__(self, fitted: object):
        self.fitted = fitted

    def predict(self, context, model_input, params=None):
        return self.fitted.predict(model_input)
