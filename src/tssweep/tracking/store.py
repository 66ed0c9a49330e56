"""Where the runs go: the MLflow store and the experiment of this invocation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mlflow import MlflowClient
from omegaconf import DictConfig

from tssweep.redact import redact_uri
from tssweep.tracking import owners

_SERVER_TIMEOUT = 5.0
# no progress bar on the terminal for each small file the summary or a prediction fetches
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


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
    MLflow never falls back to ``./mlruns`` in the current directory. Runs left RUNNING
    by processes of this host that are gone are closed first
    (:mod:`tssweep.tracking.owners`). Done once per process and store: the jobs of a
    local sweep share the callback's connection.
    """
    uri, key = resolved_uri(tracking_cfg)
    location = tracking_cfg.get("artifact_location")
    return _open_store(uri, key, str(tracking_cfg.experiment), str(location) if location else None)


def connect(tracking_cfg: DictConfig) -> Store:
    """The configured store, to read from: nothing is created, not even the experiment
    (``experiment_id`` is the existing one's, or empty) or a SQLite file."""
    from tssweep.errors import BadInput

    uri, key = resolved_uri(tracking_cfg)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise BadInput(key, redact_uri(uri), "no store there yet.",
                       "the store a sweep wrote to (`make sweep` fills outputs/mlflow.db)")
    if uri.startswith(("http://", "https://")):
        _check_server(uri, key)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(str(tracking_cfg.experiment))
    return Store(client, experiment.experiment_id if experiment else "", uri)


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
        store = Store(client, experiment.experiment_id, uri)
        owners.reap(store)  # what processes killed outright left RUNNING
        return store
    if location:
        Path(location).mkdir(parents=True, exist_ok=True)
        location = Path(location).resolve().as_uri()
    return Store(client, client.create_experiment(name, artifact_location=location), uri)


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


