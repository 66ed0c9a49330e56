"""``hydra/sweeper=tssweep_grid``: the basic sweeper's settings, tssweep's class."""

from dataclasses import dataclass

from hydra._internal.core_plugins.basic_sweeper import BasicSweeperConf
from hydra.core.config_store import ConfigStore


@dataclass
class GridSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.tssweep_grid_sweeper.sweeper.GridSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="tssweep_grid", node=GridSweeperConf,
                             provider="tssweep")
