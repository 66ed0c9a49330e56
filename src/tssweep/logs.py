"""Warnings into the log of whatever meets them, minus the notices that do not concern
a tssweep user.

A job, the check of a search space against the data (before any job) and a winner's
refit all build sktime forecasters; each calls :func:`route_warnings` first, so that
what Python warns about lands in Hydra's log lines, not raw on the terminal.
:func:`without_schema_hints` holds back MLflow's hints about a model's input schema
where tssweep logs what has none on purpose.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


class _DropRememberDataWarning(logging.Filter):
    """sktime >= 1.2 warns at every forecaster it builds that its ``remember_data``
    default changes in 1.3; tssweep never calls ``update``, so it does not concern us."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "remember_data" not in record.getMessage()


def route_warnings() -> None:
    """Send warnings to the log, minus sktime's repeated ``remember_data`` notice. Once
    per process is enough; again changes nothing.

    A ``warnings`` filter cannot hold it back: sktime's pandas-warning guard puts a
    global "default" filter for FutureWarning back in front after every horizon check.
    """
    logging.captureWarnings(True)
    logger = logging.getLogger("py.warnings")
    if not any(isinstance(existing, _DropRememberDataWarning) for existing in logger.filters):
        logger.addFilter(_DropRememberDataWarning())


@contextmanager
def without_schema_hints() -> Iterator[None]:
    """MLflow's hints about a model's input held back: that integer columns cannot hold
    missing values (a dataset logged as a record of what a run used, a classifier's
    predicted labels) and that no input example was given (a classifier, whose series
    in cells have no MLflow type)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
        yield
