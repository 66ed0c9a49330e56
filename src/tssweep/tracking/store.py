"""Where the runs go: the MLflow store and the experiment of this invocation."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from omegaconf import DictConfig

from tssweep.redact import redact_uri
from tssweep.tracking import owners

if TYPE_CHECKING:  # mlflow is imported where a store is opened (a sweep's writer process)
    from mlflow import MlflowClient

_SERVER_TIMEOUT = 5.0
# no progress bar on the terminal for each small file the summary or a prediction fetches
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass
class Store:
    """An MLflow client bound to the experiment the runs of this invocation go to."""

    client: MlflowClient
    experiment_id: str
    uri: str


class Where(NamedTuple):
    """Where a config's runs go, in plain values another process can be sent: the
    store's URI, the setting it came from, the experiment and its artifact location."""

    uri: str
    key: str
    experiment: str
    artifact_location: str | None


def where(tracking_cfg: DictConfig) -> Where:
    """Where ``tracking_cfg``'s runs go (see :func:`open_store`); nothing is opened."""
    uri, key = resolved_uri(tracking_cfg)
    location = tracking_cfg.get("artifact_location")
    return Where(uri, key, str(tracking_cfg.experiment), str(location) if location else None)


def open_store(tracking_cfg: DictConfig | Where) -> Store:
    """Connect to the configured store and get (or create) the experiment.

    ``MLFLOW_TRACKING_URI`` wins over ``tracking.uri``. A SQLite store's folder is
    created, and a new experiment gets ``tracking.artifact_location`` explicitly, so
    MLflow never falls back to ``./mlruns`` in the current directory. Runs left RUNNING
    by processes of this host that are gone are closed first
    (:mod:`tssweep.tracking.owners`). Done once per process and store: the jobs of a
    local sweep share the callback's connection.
    """
    return _open_store(*(tracking_cfg if isinstance(tracking_cfg, Where) else where(tracking_cfg)))


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
    client = client_of(uri)
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
        file = Path(uri.removeprefix("sqlite:///"))
        file.parent.mkdir(parents=True, exist_ok=True)
        if uri not in _prebuilt and not file.exists():
            _prebuild(uri)  # a new store appears whole, never half-built, to other processes
        _place_prebuilt(uri)
    if uri.startswith(("http://", "https://")):
        _check_server(uri, key)
    client = client_of(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        store = Store(client, experiment.experiment_id, uri)
        owners.reap(store)  # what processes killed outright left RUNNING
        return store
    if location:
        Path(location).mkdir(parents=True, exist_ok=True)
        location = Path(location).resolve().as_uri()
    return Store(client, client.create_experiment(name, artifact_location=location), uri)


@lru_cache(maxsize=None)
def client_of(uri: str) -> MlflowClient:
    """An MLflow client of the store at ``uri``, made once per process (a SQLite or
    database store's schema is checked, or created, as it is made)."""
    from mlflow import MlflowClient

    if uri.startswith("sqlite:///"):
        _await_schema(Path(uri.removeprefix("sqlite:///")))
    return MlflowClient(tracking_uri=uri)


# a SQLite file written to within this many seconds, and not at MLflow's schema yet,
# is taken to be in the middle of its creation by another process
_BUILDING_QUIET = 10.0
_BUILDING_PATIENCE = 120.0


def _await_schema(file: Path) -> None:
    """Wait while another process (an ``mlflow ui``, a user's script) is creating the
    SQLite store at ``file``. MLflow builds a new store's schema without a lock: a
    client made meanwhile runs the same migrations and one of them fails ("table ...
    already exists"). Waited for: a file written to in the last few seconds whose
    schema is not yet at MLflow's latest revision. A store at an older revision and
    left alone is not waited for: MLflow upgrades or refuses it, as it would."""
    deadline = time.monotonic() + _BUILDING_PATIENCE
    head = None
    while time.monotonic() < deadline:
        written = max((f.stat().st_mtime for f in (file, file.with_name(file.name + "-journal"),
                                                   file.with_name(file.name + "-wal")) if f.exists()),
                      default=None)
        if written is None or time.time() - written > _BUILDING_QUIET:
            return
        if head is None:
            from mlflow.store.db.utils import _get_latest_schema_revision

            head = _get_latest_schema_revision()
        if _schema_revision(file) == head:
            return
        time.sleep(0.1)


def _schema_revision(file: Path) -> str | None:
    """The MLflow schema revision recorded in the SQLite file (None while it has none,
    or while its writer holds it locked)."""
    import sqlite3

    try:
        with closing(sqlite3.connect(f"{file.as_uri()}?mode=ro", uri=True, timeout=0.2)) as db:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


# a new SQLite store's schema, built aside by warm() before its command may create it:
# by URI, the file (in a temp folder) that open_store() puts in place
_prebuilt: dict[str, Path] = {}


def preload() -> None:
    """Import MLflow's client and its SQL store, before the store's URI is known."""
    import mlflow  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


def warm(uri: str) -> None:
    """Import what opening ``uri`` takes and, where that changes nothing, make its
    client already: an existing SQLite file's, a tracking server's. For a SQLite file
    that does not exist yet, its schema (MLflow's migrations, most of a new store's
    cost) is built in a temp folder, for :func:`open_store` to move in place: nothing
    is created where the store goes until it is opened. Refused input is left to
    :func:`open_store` to report."""
    import mlflow  # noqa: F401

    if uri.startswith(("sqlite:", "postgresql", "mysql", "mssql")):
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    file = Path(uri.removeprefix("sqlite:///"))
    existing = uri.startswith("sqlite:///") and file.is_file() and file.stat().st_size > 0
    try:
        if existing or uri.startswith(("http://", "https://")):
            client_of(uri)
        elif uri.startswith("sqlite:///") and not file.exists():
            _prebuild(uri)
    except Exception:  # open_store() meets it again (a failed client is not cached), and reports it
        pass


def _prebuild(uri: str) -> None:
    """A new SQLite store's schema, made by MLflow in a temp folder (kept in
    :data:`_prebuilt` until placed or discarded)."""
    from mlflow import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="tssweep-new-store-"))
    _prebuilt[uri] = folder / "mlflow.db"
    aside = f"sqlite:///{_prebuilt[uri]}"
    said = logging.getLogger("mlflow.store.db.utils")
    level = said.level
    said.setLevel(logging.WARNING)  # "Creating initial MLflow database tables", of a store not made yet
    try:
        MlflowClient(tracking_uri=aside)
    finally:
        said.setLevel(level)
    engine = _engines().pop(aside, None)
    if engine is not None:
        engine.dispose()


def _engines() -> dict:
    """MLflow's SQLAlchemy engines of this process, by database URI (empty before any)."""
    sql_store = sys.modules.get("mlflow.store.tracking.sqlalchemy_store")
    return getattr(getattr(sql_store, "SqlAlchemyStore", None), "_engine_map", {})


def forget_connections() -> None:
    """Forget, without closing them, the database connections this process got with a
    fork: they are its parent's (SQLAlchemy's way after a fork); its pools open its own."""
    for engine in _engines().values():
        engine.dispose(close=False)


def _place_prebuilt(uri: str) -> None:
    """The schema built aside for ``uri`` moved in place, unless a store is there by now
    (a parallel process made it first: its file is kept)."""
    built = _prebuilt.pop(uri, None)
    if built is None:
        return
    target = Path(uri.removeprefix("sqlite:///"))
    try:
        if not target.exists():
            staged = target.with_name(f".{target.name}.{os.getpid()}.new")
            shutil.copyfile(built, staged)
            try:
                os.link(staged, target)  # never over a file another process put there
            except FileExistsError:
                pass
            finally:
                staged.unlink()
    finally:
        shutil.rmtree(built.parent, ignore_errors=True)


def discard_prebuilt() -> None:
    """Remove what :func:`warm` built aside and no store took (a refused command's)."""
    for built in _prebuilt.values():
        shutil.rmtree(built.parent, ignore_errors=True)
    _prebuilt.clear()


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


