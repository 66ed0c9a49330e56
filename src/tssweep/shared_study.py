"""One Optuna study shared by several sweep processes, each with its own sweep dir.

Two processes running the same search (same storage, same study name) must together run
exactly ``n_trials`` and hang every child under one MLflow parent. Three steps must
therefore never interleave between them, and run under :func:`lock`: creating the
storage's schema and the study, counting the trials and asking for new ones, and
finding or creating the parent run. On PostgreSQL the lock is an advisory lock of the
database itself (so it holds across machines); on SQLite a lock file next to the
database (one machine, as SQLite is). Other storages get no lock, and a shared search
there may overshoot ``n_trials`` by up to one batch per extra process.

Each process that searches the study says so in the study's user attributes
(:func:`mark_search`, one ``tssweep.search.<host>-<pid>`` entry each, beaten with the
trials' heartbeat), so the MLflow parent is closed by the last process to stop, even
one that stops between two batches of another's (:func:`other_searches`).

A process killed outright (``kill -9``, the OOM killer) leaves its trials RUNNING.
:func:`open_storage` turns on Optuna's heartbeat, which :class:`Heartbeat` keeps
beating for the trials in flight, so such trials are failed once their heartbeat is
stale and a later search (any process) redoes them instead of counting them forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from tssweep.errors import BadInput
from tssweep.redact import redact_uri

if TYPE_CHECKING:  # Optuna is imported by searches only
    import optuna

SEARCH_ATTR_PREFIX = "tssweep.search."
HEARTBEAT_SECONDS = 60
# a trial whose process missed three heartbeats is taken for dead
GRACE_SECONDS = 3 * HEARTBEAT_SECONDS
# how long a write to a SQLite study waits for another process's lock: SQLite's default,
# 5 s, failed an interrupted search's last write while the other process wrote, on a
# loaded machine ("database is locked")
SQLITE_BUSY_SECONDS = 60


@contextlib.contextmanager
def lock(storage: str, study_name: str) -> Iterator[None]:
    """Hold the study's lock across processes (see the module) for the ``with`` block."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(storage)
    except Exception:  # not an RDB URL: no lock, the storage check names the problem
        yield
        return
    if url.get_backend_name() == "postgresql":
        with _advisory_lock(storage, study_name):
            yield
    elif url.get_backend_name() == "sqlite" and url.database and _make_folder(Path(url.database).parent):
        with open(f"{url.database}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield


def _make_folder(folder: Path) -> bool:
    """Create a SQLite database's folder (``outputs/`` on a fresh clone), not its parents:
    a mistyped path still fails, and is named, when the storage is opened."""
    with contextlib.suppress(OSError):
        folder.mkdir(exist_ok=True)
    return folder.is_dir()


@contextlib.contextmanager
def _advisory_lock(storage: str, study_name: str) -> Iterator[None]:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    key = int.from_bytes(hashlib.sha1(f"tssweep:{study_name}".encode()).digest()[:8], "big", signed=True)
    engine = sqlalchemy.create_engine(storage, poolclass=NullPool)
    try:
        try:
            connection = engine.connect()
        except Exception as err:
            raise BadInput("hydra.sweeper.storage", redact_uri(storage),
                           f"cannot be opened ({type(err).__name__}: {str(err).splitlines()[0]}).",
                           "the URL of a running PostgreSQL database, such as "
                           "postgresql+psycopg://user@host:5432/optuna (the password in PGPASSWORD)") from None
        with connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


def open_storage(storage: str, heartbeat: bool = True) -> optuna.storages.BaseStorage | str:
    """The study's storage for a database URL, with Optuna's heartbeat on (``heartbeat``,
    for a search's process) and, for SQLite, writes that wait up to
    :data:`SQLITE_BUSY_SECONDS` for another process's lock; any other storage as given."""
    import optuna

    if not storage.startswith(("sqlite:", "postgresql", "mysql")):
        return storage
    engine = {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}} if storage.startswith("sqlite:") else None
    if not heartbeat:
        return optuna.storages.RDBStorage(storage, engine_kwargs=engine)
    with warnings.catch_warnings():  # experimental since Optuna 2.9, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(storage, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS,
                                          grace_period=GRACE_SECONDS)


def search_key() -> str:
    """This process's entry among the study's user attributes."""
    return f"{SEARCH_ATTR_PREFIX}{socket.gethostname()}-{os.getpid()}"


def mark_search(study: optuna.Study, done: bool) -> None:
    """Record that this process searches the study (``done=False``, again at each beat)
    or has stopped searching it."""
    study.set_user_attr(search_key(), {"beat": time.time(), "done": done})


def other_searches(storage: str, study_name: str) -> int:
    """How many other processes still search the study: entries not done whose last beat
    is within the grace period, or RUNNING trials of theirs (0 if no study yet, or if
    the storage cannot be read: then the caller closes what it holds)."""
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage, heartbeat=False))
    except Exception:
        return 0
    now = time.time()
    searching = sum(1 for key, entry in study.user_attrs.items()
                    if key.startswith(SEARCH_ATTR_PREFIX) and key != search_key()
                    and isinstance(entry, dict) and not entry.get("done")
                    and now - float(entry.get("beat", 0)) < GRACE_SECONDS)
    return searching or len(study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]))


class Heartbeat:
    """Beat the heartbeat of the trials in flight and this process's search entry, from
    a thread, while a batch runs."""

    def __init__(self, study: optuna.Study):
        self._study = study
        self._storage = study._storage  # Optuna's own optimize() beats through it too
        self._trials: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        interval = getattr(self._storage, "get_heartbeat_interval", lambda: None)
        self._interval = interval()

    @contextlib.contextmanager
    def beating(self, trials: list[optuna.Trial]) -> Iterator[None]:
        if self._interval is None:
            yield
            return
        self._trials = [trial._trial_id for trial in trials]
        self._stop.clear()
        self._beat()
        self._thread = threading.Thread(target=self._run, name="optuna-heartbeat", daemon=True)
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._beat()

    def _beat(self) -> None:
        for trial_id in self._trials:
            with contextlib.suppress(Exception):  # a finished trial or a storage hiccup
                self._storage.record_heartbeat(trial_id)
        with contextlib.suppress(Exception):
            mark_search(self._study, done=False)
