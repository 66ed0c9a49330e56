"""Ctrl-C and SIGTERM end a run cleanly, and the parent run learns it was interrupted.

Python turns SIGINT into ``KeyboardInterrupt`` but lets SIGTERM kill the process on the
spot, leaving MLflow runs RUNNING and Optuna trials RUNNING forever. After
:func:`install`, both raise ``KeyboardInterrupt`` in the main thread, which every layer
already handles: the job's run ends KILLED, the sweeper tells Optuna the trials in
flight failed, and the sweep callback closes the parent as KILLED on the way out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

_received: list[int] = []
_holding = 0  # blocks inside held()
_held: list[int] = []  # the interrupting signal, received inside one


def install() -> None:
    """Route SIGINT and SIGTERM to ``KeyboardInterrupt``; a no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    if sys.unraisablehook is not _swallowed:
        global _default_unraisablehook
        _default_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _swallowed


_default_unraisablehook = sys.unraisablehook


def _swallowed(unraisable) -> None:
    """A signal that landed in a finaliser or a garbage-collection callback (SQLAlchemy's
    registry cleanup, say) raised there, where Python ignores exceptions: deliver it
    again, so the interrupt is not lost."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _received:
        signum = _received.pop()
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
        return
    _default_unraisablehook(unraisable)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Ctrl-C or SIGTERM received while the block runs interrupts at its end, not in its
    middle: for a step that must be done whole (a run's creation, which must not leave a
    run nobody knows the id of; a sweep's close: its summary, the winner's refit and
    registration). Not raised over another exception of the block.

    Where :func:`install` routed the signals here, both are held. Elsewhere, as in a Ray
    worker (``ray.cancel`` interrupts a task with a simulated SIGINT), the block takes
    over SIGINT's handler, in the main thread, for its duration, and hands a SIGINT
    received meanwhile to the process's own handler at its end.
    """
    global _holding
    if not _holding:
        _borrow_sigint()
    _holding += 1
    try:
        yield
    except BaseException:
        _holding -= 1
        if not _holding:
            _held.clear()  # the block's exception goes on instead (the signal is recorded)
            _give_back_sigint()
        raise
    _holding -= 1
    if _holding:
        return
    handler = _give_back_sigint()
    if _held:
        signum = _held.pop()
        _held.clear()
        if handler is not None:
            handler(signum, None)  # what the signal would have done in the block's middle
            return
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


_borrowed: list = []  # SIGINT's own handler, while a held() block has taken it over


def _borrow_sigint() -> None:
    """Hold SIGINT for the block where :func:`install` did not route it here (only the
    main thread can, and only a Python handler receives a simulated SIGINT)."""
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGINT)
    if current is _interrupt or not callable(current):
        return
    _borrowed.append(current)
    signal.signal(signal.SIGINT, _hold)


def _give_back_sigint():
    """Restore the handler :func:`_borrow_sigint` took over, and return it (None if none)."""
    if not _borrowed:
        return None
    handler = _borrowed.pop()
    signal.signal(signal.SIGINT, handler)
    return handler


def _hold(signum: int, frame: FrameType | None) -> None:
    _held.append(signum)


def interrupted() -> bool:
    """Whether this process received SIGINT or SIGTERM."""
    return bool(_received)


def signal_name() -> str:
    """The first signal received (``SIGINT``, ``SIGTERM``), for messages.

    Taken from the record, not from the ``KeyboardInterrupt``: native code such as
    CatBoost's training loop may raise its own, without our message.
    """
    return signal.Signals(_received[0]).name if _received else "Ctrl-C"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if _inside_catboost_callback(frame):
        # an exception raised in Python code that CatBoost's Cython calls back into is
        # swallowed there, and CatBoost then crashes (SIGSEGV): deliver the signal again
        # once CatBoost is back in its own code
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
        return
    _received.append(signum)
    # only the first signal interrupts: a second Ctrl-C must not cut short the
    # clean-up that closes the runs
    if len(_received) == 1:
        if _holding:
            _held.append(signum)
            return
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


def _inside_catboost_callback(frame: FrameType | None) -> bool:
    """Whether ``frame`` is Python code called from inside CatBoost (a frame of the
    catboost package further up, but not this one). CatBoost's own frames, where its
    training loop checks for signals, take the interrupt as usual."""
    if frame is None or _is_catboost(frame):
        return False
    outer = frame.f_back
    while outer is not None:
        if _is_catboost(outer):
            return True
        outer = outer.f_back
    return False


def _is_catboost(frame: FrameType) -> bool:
    return f"{os.sep}catboost{os.sep}" in frame.f_code.co_filename
