"""The Hydra ``Sweeper`` entry point; the search itself lives in ``_impl`` (lazy import)."""

from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ResumableOptunaSweeper(Sweeper):
    """hydra-optuna-sweeper's options, plus a pruner; see ``_impl.ResumableSearch``."""

    def __init__(self, sampler: Any, direction: Any, storage: Optional[Any],
                 study_name: Optional[str], n_trials: int, n_jobs: int,
                 max_failure_rate: float, search_space: Optional[DictConfig],
                 custom_search_space: Optional[str], params: Optional[DictConfig],
                 pruner: Optional[Any]) -> None:
        from ._impl import ResumableSearch

        self.search = ResumableSearch(sampler, direction, storage, study_name, n_trials, n_jobs,
                                      max_failure_rate, search_space, custom_search_space, params,
                                      pruner=pruner)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.search.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> None:
        return self.search.sweep(arguments)
