"""Warnings into the log of whatever meets them, minus sktime's repeated notice.

A job, the check of a search space against the data (before any job) and a winner's
refit all build sktime forecasters; each calls :func:`route_warnings` first, so that
what Python warns about lands in Hydra's log lines, not raw on the terminal.
"""

from __future__ import annotations

import logging


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
