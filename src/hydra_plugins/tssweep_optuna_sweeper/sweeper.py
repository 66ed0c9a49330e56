"""The Hydra ``Sweeper`` entry point; the search itself lives in ``_impl`` (lazy import)."""

from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class ResumableOptunaSweeper(OptunaSweeper):
    """hydra-optuna-sweeper's ``OptunaSweeper`` driving ``_impl.ResumableSearch``: the
    same arguments, by position or by name, then tssweep's (``pruner``, ``spaces``,
    ``space``, ``search_space_filter``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from ._impl import ResumableSearch

        # the parent's setup() and sweep() drive self.sweeper
        self.sweeper = ResumableSearch(*args, **kwargs)
