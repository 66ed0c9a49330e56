"""Config schema of the ``tssweep_optuna`` sweeper and its pruner choices.

Hydra imports every module of the ``hydra_plugins`` package when it starts, so this
file registers the schemas and imports nothing heavy: Optuna is imported only when a
search runs.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import MISSING


@dataclass
class TPESamplerConf:
    """Optuna's TPE with only its current arguments (the plugin's ``tpe`` passes ones
    deprecated since Optuna 4.3). Multivariate: depth and learning rate interact."""

    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = True
    constant_liar: bool = True  # parallel trials do not all sample the same point


@dataclass
class MedianPrunerConf:
    """Stop a trial whose running backtest score is worse than the median of earlier
    trials at the same fold. The first trials and the first fold are never pruned."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 1
    interval_steps: int = 1


@dataclass
class PercentilePrunerConf:
    """Like the median pruner at another percentile: 25.0 prunes more eagerly."""

    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: float = 25.0
    n_startup_trials: int = 5
    n_warmup_steps: int = 1
    interval_steps: int = 1


@dataclass
class ResumableOptunaSweeperConf(OptunaSweeperConf):
    """The plugin's options plus tssweep's; ``max_failure_rate`` is judged over the
    whole search (once 5 trials have run) instead of per batch.

    Defaults differ from the plugin's where tssweep needs them to: one trial at a time
    (``n_jobs=1``; raise it with a parallel launcher), up to half the trials may fail
    (``max_failure_rate=0.5``) before the search stops, and ``direction`` left unset
    follows the app's ``optimized_metric`` (``minimize`` for a metric tssweep does not
    know, as in the plugin).
    """

    _target_: str = "hydra_plugins.tssweep_optuna_sweeper.sweeper.ResumableOptunaSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tssweep_tpe"},
                                                         {"pruner": "median"}])
    direction: Any = None
    n_jobs: int = 1
    max_failure_rate: float = 0.5
    pruner: Any = MISSING
    # Named search spaces, and the one to use (e.g. `space: ${dataset.task}`): its
    # entries go after `params` and before the command line's.
    spaces: Dict[str, Dict[str, str]] = field(default_factory=dict)
    space: Optional[str] = None
    # Dotted path of `f(config, distributions) -> distributions`, called once before the
    # first trial to leave out what cannot work (tssweep.hparams_search.drop_inapplicable).
    search_space_filter: Optional[str] = None


store = ConfigStore.instance()
store.store(group="hydra/sweeper", name="tssweep_optuna", node=ResumableOptunaSweeperConf,
            provider="tssweep")
store.store(group="hydra/sweeper/sampler", name="tssweep_tpe", node=TPESamplerConf,
            provider="tssweep")
store.store(group="hydra/sweeper/pruner", name="median", node=MedianPrunerConf, provider="tssweep")
store.store(group="hydra/sweeper/pruner", name="percentile", node=PercentilePrunerConf,
            provider="tssweep")
store.store(group="hydra/sweeper/pruner", name="none", node={"_target_": "optuna.pruners.NopPruner"},
            provider="tssweep")
