"""tssweep's grid sweeper: Hydra's basic sweeper, each job composed once."""

import subprocess
import sys

import yaml

from hydra.core.plugins import Plugins

from conftest import ROOT


def sweeper_target(*overrides: str) -> str:
    shown = subprocess.run([sys.executable, str(ROOT / "src" / "train.py"), *overrides, "--cfg", "hydra"],
                           capture_output=True, text=True, check=True).stdout
    return yaml.safe_load(shown)["hydra"]["sweeper"]["_target_"]


def test_it_is_the_default_and_presets_and_users_can_swap_it():
    assert sweeper_target() == "hydra_plugins.tssweep_grid_sweeper.sweeper.GridSweeper"
    assert sweeper_target("hydra/sweeper=basic") == "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    assert sweeper_target("hparams_search=catboost_optuna").endswith("ResumableOptunaSweeper")


def test_it_leaves_the_second_composition_to_the_callbacks_check():
    # the basic sweeper composes every job of a batch before launching it; the launcher
    # composes each again. The sweep callback has composed them all (tests/test_robustness
    # covers what it refuses), so the sweeper does not
    # the classes as Hydra holds them: its plugin scan imports Hydra's own plugins anew,
    # so classes imported before it would be stale
    classes = Plugins.instance().class_name_to_class
    GridSweeper = classes["hydra_plugins.tssweep_grid_sweeper.sweeper.GridSweeper"]
    BasicSweeper = classes["hydra._internal.core_plugins.basic_sweeper.BasicSweeper"]
    assert issubclass(GridSweeper, BasicSweeper)
    assert GridSweeper.validate_batch_is_legal is not BasicSweeper.validate_batch_is_legal
    sweeper = GridSweeper(max_batch_size=None, params=None)
    assert sweeper.validate_batch_is_legal([["preprocess=no_such_option"]]) is None
