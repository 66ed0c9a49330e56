"""The garbage collector after start-up: the objects made so far are kept for good.

Start-up (Hydra, sktime, CatBoost, MLflow and their imports) makes about a million
objects that live as long as the process: modules, classes, functions. Python's
collector would walk all of them again at every full collection, about 0.14 s each
here, ten times in a 40-job sweep. ``src/train.py`` turns the collector off while it
starts, and :func:`done` moves what exists to the permanent generation (``gc.freeze``),
then turns the collector back on: from there it sees only what the jobs make. The
sweep's process calls it at its first job, its writer process (forked off before, with
the collector off) once it has imported what it needs.
"""

from __future__ import annotations

import gc


def done() -> None:
    """Start-up is over: keep its objects out of every later collection. Once."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
