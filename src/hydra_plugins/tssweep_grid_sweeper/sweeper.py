"""Hydra's basic sweeper without its second composition of every job.

Before launching a batch, the basic sweeper composes each of its jobs to validate it;
the launcher then composes each again to run it, about 0.1 s a job here, which is
most of what a short job costs on top of its training. In tssweep the sweep callback
has already composed and checked every distinct job before the first one starts
(``tssweep.preflight.check_sweep_jobs``, which ``on_multirun_start`` runs and which
stops the command on a job that does not compose), so that validation is left out.
Everything else is the basic sweeper's: the cartesian product, batches, the
``max_batch_size``.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper


class GridSweeper(BasicSweeper):
    """The basic sweeper, trusting the sweep callback's check of every job."""

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        return None
