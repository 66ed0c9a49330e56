"""The Hydra ``Sweeper`` entry point; the search itself lives in ``_impl`` (lazy import)."""

from typing import Any, Optional

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig


class ResumableOptunaSweeper(OptunaSweeper):
    """hydra-optuna-sweeper's ``OptunaSweeper`` (same arguments, by position or by name)
    driving ``_impl.ResumableSearch``; tssweep's options come after the plugin's."""

    def __init__(self, sampler: Any, direction: Any, storage: Optional[Any],
                 study_name: Optional[str], n_trials: int, n_jobs: int,
                 max_failure_rate: float, search_space: Optional[DictConfig],
                 custom_search_space: Optional[str], params: Optional[DictConfig],
                 pruner: Any = None, spaces: Optional[DictConfig] = None,
                 space: Optional[str] = None, search_space_filter: Optional[str] = None) -> None:
        from ._impl import ResumableSearch

        # the parent's setup() and sweep() drive self.sweeper
        self.sweeper = ResumableSearch(sampler, direction, storage, study_name, n_trials, n_jobs,
                                       max_failure_rate, search_space, custom_search_space, params,
                                       pruner=pruner, spaces=spaces, space=space,
                                       search_space_filter=search_space_filter)
