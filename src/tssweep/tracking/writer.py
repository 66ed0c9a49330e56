"""A process beside a local sweep that completes each child run while the next job trains.

After its training, a job's run still needs what only the store wants: the forecast
plot, the model in MLflow's format, the datasets, the scores and the artifacts, then
FINISHED. In a sweep whose jobs run in the callback's own process (Hydra's basic
launcher), the callback forks this writer once the store is open, so the writer starts
with everything imported and the store's client made; each job trains, hands the rest
of its run over (:meth:`TrackedRun.complete <tssweep.tracking.runs.TrackedRun.complete>`)
and returns, and the writer does that work, in order, on the other core while the next
job trains.

- A run is marked FINISHED only once all of it is in the store. A completion that fails
  marks the run FAILED with its traceback, and is reported when the sweep flushes.
- The writer ignores Ctrl-C and SIGTERM: on the way out of an interrupted sweep the
  callback flushes it first, so every run handed over is complete, and the parent is
  closed after. If the sweep's process dies outright, the writer still completes what it
  was handed, then ends with its pipe.
- Jobs in other processes (joblib, Ray) and single runs complete their runs themselves.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import signal
import sys
from collections.abc import Callable

from tssweep.tracking.store import Store

log = logging.getLogger(__name__)

_active: Writer | None = None


class Writer:
    """The writer process of this process's sweep, and the pipe to it."""

    def __init__(self, store: Store) -> None:
        context = multiprocessing.get_context("fork")
        self._pipe, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs, self._pipe, store), name="tssweep-writer",
                                        daemon=True)
        self._process.start()
        theirs.close()
        self.uri = store.uri
        # before multiprocessing's own exit handler, which would end the process unasked
        atexit.register(self.stop)

    def complete(self, run_id: str, run_name: str, work: Callable, args: tuple) -> None:
        """Have ``work(run, *args)`` done on the run, then the run marked FINISHED."""
        self._pipe.send(("complete", run_id, run_name, work, args))

    def flush(self) -> list[str]:
        """Wait until every run handed over is complete; the completions that failed,
        one line each (``run name: error``)."""
        if self._process.exitcode is not None:
            return []
        self._pipe.send(("flush",))
        return self._pipe.recv()

    def stop(self) -> list[str]:
        """Flush, then end the writer; what failed, as :meth:`flush`. Idempotent."""
        global _active
        if _active is self:
            _active = None
        if self._pipe.closed:
            return []
        try:
            failed = self.flush()
            self._pipe.send(None)
        except (BrokenPipeError, EOFError, ConnectionResetError):
            failed = ["the writer process ended early: runs handed to it may still be RUNNING"]
        self._pipe.close()
        self._process.join()
        return failed


def start(store: Store) -> Writer | None:
    """Fork this process's writer for the runs in ``store`` (where processes can fork:
    Linux), None elsewhere. Not while holding a file lock: the writer would hold it too."""
    global _active
    if "fork" not in multiprocessing.get_all_start_methods() or sys.platform == "darwin":
        return None
    _active = Writer(store)
    return _active


def active(store: Store) -> Writer | None:
    """The writer this process's sweep started for ``store``, if any."""
    return _active if _active is not None and _active.uri == store.uri else None


def _serve(pipe, parents_end, store: Store) -> None:
    """The writer's loop: complete each run handed over, in order, until told to stop
    or the sweep's end of the pipe closes."""
    from mlflow.entities import RunStatus

    from tssweep.tracking.runs import TrackedRun, log_failure

    parents_end.close()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    # The store's client came with the fork. Its database connections are the sweep's:
    # they are forgotten here, not shared, and the pool opens the writer's own
    # (SQLAlchemy's way after a fork). A tracking server's HTTP sessions are per process
    # in MLflow already.
    sql_store = sys.modules.get("mlflow.store.tracking.sqlalchemy_store")
    for engine in getattr(getattr(sql_store, "SqlAlchemyStore", None), "_engine_map", {}).values():
        engine.dispose(close=False)
    failed: list[str] = []
    while True:
        try:
            message = pipe.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if message[0] == "flush":
            pipe.send(failed)
            failed = []
        else:
            _, run_id, run_name, work, args = message
            try:
                work(TrackedRun(store, run_id, run_name), *args)
                store.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
            except Exception as err:
                failed.append(f"{run_name}: {type(err).__name__}: {err}")
                try:  # FAILED in any case; its traceback too, where the store takes it
                    log_failure(store, run_id, err)
                except Exception as again:
                    failed.append(f"{run_name}: its traceback was not logged: {type(again).__name__}: {again}")
