"""A process beside a local sweep that writes its child runs while the next job trains.

In a sweep whose jobs run in the callback's own process (Hydra's basic launcher), the
callback forks this writer once the store is open, so it starts with everything
imported and the store's client made. A job's run is then a :class:`PendingRun`: the
job opens it, logs its params, trains, and hands over the rest (its plot, model,
datasets, scores and artifacts: :meth:`PendingRun.complete`), and the writer does all
of it, in the order it was asked, on the other core while the next job trains.

- A run is marked FINISHED only once all of it is in the store. If any of it fails,
  the run is FAILED with the error and its traceback, the rest of it is dropped, and
  the failure is reported when the sweep flushes the writer.
- The writer ignores Ctrl-C and SIGTERM. On the way out of an interrupted sweep the
  callback flushes it before closing the parent, so every run the jobs handed over is
  complete, and the interrupted job's run is KILLED after them. If the sweep's process
  dies outright, the writer still writes what it was sent, then ends with its pipe.
- A message is sent whole: signals wait while it is written (an interrupt in the middle
  of one would garble every message after it).
- Jobs in other processes (joblib, Ray) and single runs write their runs themselves.
"""

from __future__ import annotations

import atexit
import gc
import itertools
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable, Mapping

from tssweep.tracking.store import Store

_active: Writer | None = None
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


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
        self._handles = itertools.count()
        # before multiprocessing's own exit handler, which would end the process unasked
        atexit.register(self.stop)

    def open(self, experiment_id: str, tags: Mapping[str, str], name: str) -> PendingRun:
        """A run to be created with ``tags`` and ``name``, and written, by the writer;
        it starts now, when its job does, however busy the writer is."""
        handle = next(self._handles)
        self.send(("open", handle, experiment_id, dict(tags), name, int(time.time() * 1000)))
        return PendingRun(self, handle, name)

    def send(self, message: tuple) -> None:
        """Send ``message`` whole: Ctrl-C or SIGTERM arriving meanwhile is raised after."""
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            self._pipe.send(message)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def alive(self) -> bool:
        return self._process.is_alive()

    def flush(self) -> list[str]:
        """Wait until everything sent is in the store; the runs that failed since the
        last flush, one line each (``run name: error``)."""
        self.send(("flush",))
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
            self.send(None)
        except (BrokenPipeError, EOFError, ConnectionResetError):
            self._process.join()  # it ended: told to (a Ctrl-C cut this short before), or not
            failed = [] if self._process.exitcode == 0 else [
                f"the writer process ended early (exit code {self._process.exitcode}): "
                "the runs it was sent may still be RUNNING"]
        self._pipe.close()
        self._process.join()
        return failed


class PendingRun:
    """A job's run as the writer holds it: the methods of
    :class:`~tssweep.tracking.runs.TrackedRun` a job calls (the rest of the run is
    logged inside :meth:`complete`'s work), sent to the writer to be done there."""

    def __init__(self, writer: Writer, handle: int, name: str):
        self._writer = writer
        self._handle = handle
        self.name = name
        self.completed = False

    def _call(self, method: str, *args, **kwargs) -> None:
        self._writer.send(("call", self._handle, method, args, kwargs))

    def log(self, params: Mapping[str, object] = {}, metrics: Mapping[str, float] = {},
            tags: Mapping[str, object] = {}, step_metrics: Mapping[str, list[float]] = {}) -> None:
        self._call("log", dict(params), dict(metrics), dict(tags), dict(step_metrics))

    def complete(self, work: Callable, *args) -> None:
        self._call("complete", work, *args)
        self.completed = True

    def end(self, status: str, tags: Mapping[str, str] = {}) -> None:
        self._call("end", status, dict(tags))

    def fail(self, error: str, trace: str) -> None:
        self._call("fail", error, trace)


def start(store: Store) -> Writer | None:
    """Fork this process's writer for the runs in ``store`` (where processes can fork:
    Linux), None elsewhere. Not while holding a file lock: the writer would hold it too."""
    global _active
    if "fork" not in multiprocessing.get_all_start_methods() or sys.platform == "darwin":
        return None
    _active = Writer(store)
    return _active


def active(store: Store) -> Writer | None:
    """The writer this process's sweep started for ``store``, if any and still alive
    (should it die, the jobs after write their runs themselves)."""
    if _active is None or _active.uri != store.uri or not _active.alive():
        return None
    return _active


def _serve(pipe, parents_end, store: Store) -> None:
    """The writer's loop: do what each message asks of its run, in order, until told to
    stop or the sweep's end of the pipe closes."""
    from tssweep.tracking.runs import TrackedRun, failure_text

    parents_end.close()
    for signum in _SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    gc.enable()  # start-up's objects were frozen before the fork (tssweep.startup)
    # The store's client came with the fork. Its database connections are the sweep's:
    # they are forgotten here, not shared, and the pool opens the writer's own
    # (SQLAlchemy's way after a fork). A tracking server's HTTP sessions are per process
    # in MLflow already.
    sql_store = sys.modules.get("mlflow.store.tracking.sqlalchemy_store")
    for engine in getattr(getattr(sql_store, "SqlAlchemyStore", None), "_engine_map", {}).values():
        engine.dispose(close=False)
    runs: dict[int, TrackedRun | None] = {}  # None: failed, the rest of it dropped
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
            continue
        if message[0] == "open":
            _, handle, experiment_id, tags, name, started = message
            try:
                runs[handle] = TrackedRun(store, store.client.create_run(
                    experiment_id, start_time=started, tags=tags, run_name=name).info.run_id, name)
            except Exception as err:
                runs[handle] = None
                failed.append(f"{name}: not created: {type(err).__name__}: {err}")
            continue
        _, handle, method, args, kwargs = message
        run = runs.get(handle)
        if run is None:
            continue
        try:
            getattr(run, method)(*args, **kwargs)
        except Exception as err:
            runs[handle] = None
            failed.append(f"{run.name}: {type(err).__name__}: {err}")
            try:  # FAILED in any case; its traceback too, where the store takes it
                run.fail(*failure_text(err))
            except Exception as again:
                failed.append(f"{run.name}: its traceback was not logged: {type(again).__name__}: {again}")
            continue
        if method in ("complete", "end", "fail"):
            del runs[handle]
