"""Hydra's basic sweeper, composing each job once, and each shape of job once.

Before launching a batch, the basic sweeper composes each of its jobs to validate it;
the launcher then composes each again to run it, about 0.1 s a job here, which is
most of what a short job costs on top of its training. In tssweep the sweep callback
has already composed and checked every distinct job before the first one starts
(``tssweep.preflight.check_sweep_jobs``, which ``on_multirun_start`` runs and which
stops the command on a job that does not compose), so that validation is left out.
The launcher gets a config loader that composes each shape of job once
(``tssweep.composition``): a sweep over seeds or CatBoost settings composes its first
job and copies it for the others. Everything else is the basic sweeper's: the
cartesian product, batches, the ``max_batch_size``. While it runs them, Hydra's
bookkeeping of each job copies configs and writes its YAML cheaply
(``tssweep.bookkeeping``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from tssweep.bookkeeping import cheap_bookkeeping
from tssweep.composition import compose_once


class GridSweeper(BasicSweeper):
    """The basic sweeper, trusting the sweep callback's check of every job."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        super().setup(hydra_context=compose_once(hydra_context), task_function=task_function,
                      config=config)

    def sweep(self, arguments: list[str]) -> Any:
        with cheap_bookkeeping():
            return super().sweep(arguments)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        return None
