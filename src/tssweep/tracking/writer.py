"""A process beside a sweep that does its MLflow work: the parent, the summary, and
the child runs of the jobs in the sweep's own process, while the next job trains.

``src/train.py`` forks it for a sweep as soon as Hydra is imported (:func:`prefork`),
before the store is known: it imports MLflow on the other core while the sweep's
process composes its config, imports sktime and checks its input; the callback then
gives it the store (:func:`start`). The sweep's process never imports mlflow:

- :meth:`Writer.call` runs a function there and waits for its answer: the callback
  opens the parent that way (once the checks passed: nothing exists before) and
  summarises and closes it at the end. Its errors come back as errors.
- A job's run is a :class:`PendingRun`: the job opens it, logs its params, trains, and
  hands over the rest (its plot, model, datasets, scores and artifacts:
  :meth:`PendingRun.complete`), and the writer does all of it, in the order asked.
- A run is marked FINISHED only once all of it is in the store. If any of it fails,
  the run is FAILED with the error and its traceback, the rest of it is dropped, and
  the failure is reported when the sweep flushes the writer.
- The writer ignores Ctrl-C and SIGTERM. On the way out of an interrupted sweep the
  callback flushes it before closing the parent, so every run the jobs handed over is
  complete, and the interrupted job's run is KILLED after them. If the sweep's process
  dies outright, the writer still writes what it was sent, then ends with its pipe.
- A message is sent whole: signals wait while it is written (an interrupt in the middle
  of one would garble every message after it).
- Should the writer die, what is left is done in the sweep's process: calls run there,
  and the jobs after write their runs themselves, as jobs in other processes (joblib,
  Ray) and single runs always do.
"""

from __future__ import annotations

import atexit
import importlib
import itertools
import multiprocessing
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from hydra.errors import CompactHydraException

from tssweep import startup

if TYPE_CHECKING:
    from tssweep.tracking.store import Where

_active: Writer | None = None
_spare: Writer | None = None  # forked by prefork(), not given a store yet
_SIGNALS = {signal.SIGINT, signal.SIGTERM}
# done while the writer waits for work, from the moment it knows the store, before
# they are asked for: what a job's completion needs (tssweep.records: its work, the
# plots, the model's saving) and makes once (the git context its datasets' source is
# tagged with; the fonts and renderer the first figure loads), what the registration
# and the verdict import (arch, which imports statsmodels and numba). A message waits
# for one step at most: the big imports come in steps of about 0.1 s, their parts
# first. Done by the sweep's first job, they took a core from its training (about
# 1.2 s of CPU while CatBoost trains on both cores); before, the writer sat idle while
# the sweep's process composed and checked the sweep. Not sktime: a forecaster comes
# packed (tssweep.tracking.packing); a classification sweep's first completion imports
# it. In the writer's one thread: two threads importing the same packages at once can
# each meet the other's half-made modules (sklearn, narwhals).
_WARM_UP = ("tssweep.records", "pyparsing", "matplotlib", "matplotlib.figure", "tssweep.plots",
            "tssweep.plots:warm_up", "tssweep.tracking.runs:_code_source", "tssweep.tracking.models",
            "tssweep.tracking.registry", "numba", "scipy.optimize", "scipy.stats.distributions", "scipy.stats",
            "statsmodels.regression.linear_model", "arch.bootstrap", "tssweep.report")


class CallFailed(RuntimeError):
    """A function the writer ran raised: its type, message and traceback, as text."""


class CallRefused(CompactHydraException):
    """A function the writer ran refused the user's input (a ``BadInput``): its message."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a call, raised once it is done, with its ``result``:
    what the call made (a parent run) is then closed as interrupted, not left behind."""

    def __init__(self, cause: KeyboardInterrupt, result: object):
        super().__init__(*cause.args)
        self.result = result


class Writer:
    """The writer process of this process's sweep, and the pipe to it.

    ``where`` is its store: given when it is forked, or later (:meth:`bind`); until
    then it only imports. ``sweep`` is ``(parent run id, experiment id, swept keys)``
    once the callback has opened the parent: what a job's run needs to be a child of it."""

    def __init__(self, where: Where | None = None) -> None:
        context = multiprocessing.get_context("fork")
        self._pipe, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs, self._pipe, where and where.uri),
                                        name="tssweep-writer", daemon=True)
        self._process.start()
        theirs.close()
        self.where = where
        self.sweep: tuple[str, str, tuple[str, ...]] | None = None
        self._handles = itertools.count()
        # before multiprocessing's own exit handler, which would end the process unasked
        atexit.register(self.stop)

    def bind(self, where: Where, logs: tuple | None = None) -> None:
        """Give a writer forked without a store the store at ``where``, and ``logs``:
        Hydra's ``(log config, verbose)`` of the sweep's process, which was not set up
        yet when the writer was forked (its lines are printed as the sweep's)."""
        self.send(("where", where.uri, logs))
        self.where = where

    def call(self, work: Callable, *args):
        """``work(*args)`` done by the writer, after everything sent before; its result.
        It raises :class:`CallRefused` for a refusal of the user's input, else
        :class:`CallFailed`. Ctrl-C meanwhile is raised once the answer is in (the
        writer finishes the work either way), as :class:`Interrupted`, which holds the
        result. Done here should the writer be gone."""
        if not self.alive():
            return work(*args)
        try:
            self.send(("do", work, args))
        except (BrokenPipeError, ConnectionResetError):
            return work(*args)
        try:
            answer, interrupted = self._answer()
        except (EOFError, ConnectionResetError):
            raise CallFailed(f"the writer process ended during {work.__name__} ({self.ending()})") from None
        kind, value = answer
        if kind == "refused":
            raise CallRefused(value)
        if kind == "failed":
            raise CallFailed(value)
        if interrupted is not None:
            raise Interrupted(interrupted, value)
        return value

    def open(self, where: Where, experiment_id: str, tags: Mapping[str, str], name: str) -> PendingRun:
        """A run to be created in the store at ``where`` with ``tags`` and ``name``, and
        written, by the writer; it starts now, when its job does, however busy the writer is."""
        handle = next(self._handles)
        self.send(("open", handle, where, experiment_id, dict(tags), name, int(time.time() * 1000)))
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

    def ending(self) -> str:
        """How the writer, which ended unasked, ended: its exit code, or the signal
        that killed it (a crash, the OOM killer), once it is reaped."""
        self._process.join(timeout=10)
        code = self._process.exitcode
        if code is None:
            return "still running, with its end of the pipe closed"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                pass
        return f"exit code {code}"

    def flush(self) -> tuple[list[str], KeyboardInterrupt | None]:
        """Wait until everything sent is in the store: the runs that failed since the
        last flush, one line each (``run name: error``), and the Ctrl-C that came
        meanwhile, if one did (the writer completes what it has either way)."""
        try:
            self.send(("flush",))
            return self._answer()
        except (BrokenPipeError, EOFError, ConnectionResetError, OSError):
            self._pipe.close()
            return [f"the writer process ended early ({self.ending()}): "
                    "the runs it was sent may still be RUNNING"], None

    def stop(self) -> list[str]:
        """Flush, then end the writer; what failed, as :meth:`flush`. Idempotent."""
        global _active
        if _active is self:
            _active = None
        if self._pipe.closed:
            return []
        if self.where is None:  # never given a store, it has written nothing: not waited for
            self._process.kill()
            self._pipe.close()
            self._process.join()
            return []
        failed, _ = self.flush()
        if not self._pipe.closed:
            try:
                self.send(None)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self._pipe.close()
        self._process.join()
        return failed

    def _answer(self) -> tuple[object, KeyboardInterrupt | None]:
        """The writer's answer to what was just sent, waited for through Ctrl-C (which
        is returned, to be raised once the answer is in)."""
        interrupted = None
        while True:
            try:
                return self._pipe.recv(), interrupted
            except KeyboardInterrupt as err:
                interrupted = interrupted or err


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
        try:
            self._writer.send(("call", self._handle, method, args, kwargs))
        except (BrokenPipeError, ConnectionResetError):
            if method in ("end", "fail"):  # a run already lost with the writer (reported then)
                return
            raise CallFailed(f"{self.name}: the writer process ended before the run's {method} "
                             f"could be sent ({self._writer.ending()}); the run is closed by the "
                             "next command") from None

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


def prefork() -> None:
    """Fork this process's writer now, before its store is known (:func:`start` gives
    it the store), so that it imports MLflow while this process goes on. Nothing where
    processes cannot fork. One that is never given a store is killed at exit: it has
    only imported."""
    global _spare
    if _can_fork() and _spare is None:
        _spare = Writer()


def start(where: Where, logs: tuple | None = None) -> Writer | None:
    """This process's writer for the store at ``where``: the one :func:`prefork` made
    (given ``logs``, see :meth:`Writer.bind`), else one forked now (where processes can
    fork: Linux); None elsewhere. Not while holding a file lock: a writer forked then
    would hold it too."""
    global _active, _spare
    if not _can_fork():
        return None
    spare, _spare = _spare, None
    if spare is not None and spare.alive():
        spare.bind(where, logs)
        _active = spare
    else:
        if spare is not None:
            spare.stop()
        _active = Writer(where)
    return _active


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin"


def active(where: Where) -> Writer | None:
    """The writer this process's sweep started for the store at ``where``, if any and
    still alive (should it die, the jobs after write their runs themselves)."""
    if _active is None or _active.where.uri != where.uri or not _active.alive():
        return None
    return _active


def call(work: Callable, *args):
    """``work(*args)`` done by this process's writer (:meth:`Writer.call`), or here
    when there is none."""
    if _active is None:
        return work(*args)
    return _active.call(work, *args)


def _serve(pipe, parents_end, uri: str | None) -> None:
    """The writer's loop: do what each message asks, in order, until told to stop or the
    sweep's end of the pipe closes. Without ``uri``, the first message gives it."""
    parents_end.close()
    for signum in _SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    from tssweep.tracking import runs, store

    # a store the sweep's process opened before (a second sweep in one process) came
    # with the fork: its connections are not the writer's to use
    store.forget_connections()
    if uri is None:  # forked before the store was known: MLflow imported meanwhile
        store.preload()
        try:
            given = pipe.recv()
        except (EOFError, OSError):
            return
        if given is None:
            return
        _, uri, logs = given
        if logs is not None:
            from hydra.core.utils import configure_log

            configure_log(*logs)
    # the store's modules, and its client where making it changes nothing, while the
    # sweep's process imports the rest and checks its input
    store.warm(uri)
    TrackedRun, failure_text = runs.TrackedRun, runs.failure_text
    warm_up = list(_WARM_UP)
    pending: dict[int, TrackedRun | None] = {}  # None: failed, the rest of it dropped
    failed: list[str] = []
    try:
        while True:
            if warm_up and not pipe.poll():
                _warm(warm_up.pop(0))  # one step, then the pipe again
                if not warm_up:
                    startup.done()
                continue
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
            if message[0] == "do":
                _, work, args = message
                pipe.send(_outcome(work, args))
                continue
            if message[0] == "open":
                _, handle, where, experiment_id, tags, name, started = message
                try:
                    target = store.open_store(where)
                    pending[handle] = TrackedRun(target, target.client.create_run(
                        experiment_id, start_time=started, tags=tags, run_name=name).info.run_id, name)
                except Exception as err:
                    pending[handle] = None
                    failed.append(f"{name}: not created: {type(err).__name__}: {err}")
                continue
            _, handle, method, args, kwargs = message
            run = pending.get(handle)
            if run is None:
                continue
            try:
                getattr(run, method)(*args, **kwargs)
            except Exception as err:
                pending[handle] = None
                failed.append(f"{run.name}: {type(err).__name__}: {err}")
                try:  # FAILED in any case; its traceback too, where the store takes it
                    run.fail(*failure_text(err))
                except Exception as again:
                    failed.append(f"{run.name}: its traceback was not logged: {type(again).__name__}: {again}")
                continue
            if method in ("complete", "end", "fail"):
                del pending[handle]
            if method == "complete":
                # what a completion imports lives as long as the writer: kept out of every
                # later collection, at the first one at the latest (tssweep.startup)
                startup.done()
    finally:  # a new store's schema built aside and not taken (a refused command's)
        store.discard_prebuilt()


def _warm(step: str) -> None:
    """A step of :data:`_WARM_UP`: ``module`` imported, or ``module:function`` called."""
    name, _, function = step.partition(":")
    try:
        module = importlib.import_module(name)
        if function:
            getattr(module, function)()
    except Exception:  # met again, and reported, where it is needed
        pass


def _outcome(work: Callable, args: tuple) -> tuple[str, object]:
    """What ``work(*args)`` returned, or how it failed, as the sweep's process is told."""
    try:
        return "done", work(*args)
    except CompactHydraException as err:  # the user's to fix: its message alone
        return "refused", str(err)
    except Exception as err:
        return "failed", f"{type(err).__name__}: {err}\n{''.join(traceback.format_exception(err))}"
