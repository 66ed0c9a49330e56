"""tssweep.composition: a job composed once per shape is the job Hydra composes."""

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError

from conftest import ROOT
from tssweep.composition import ComposeOnce

# in this order, so that shapes repeat, come back after another one, and values of one
# job must not leak into the next job of the same shape
JOBS = [
    ["seed=3"],
    ["seed=4", "model.depth=4"],
    ["preprocess=log", "model.depth=5"],
    ["model.depth=5", "preprocess=log"],
    ["seed=5"],
    ["dataset=lynx", "dataset.horizon=6"],
    ["dataset.horizon=6", "dataset=lynx", "model.learning_rate=0.05"],
    ["+model.one_hot_max_size=4"],
    ["++model.depth=7", "~model.l2_leaf_reg"],
    ["model={depth: 3, iterations: 30}"],
    ["preprocess=log"],
    ["model.iterations=20", "tracking.log_models=none", "seed=9"],
    ["preprocess=detrend", "dataset=shampoo_sales", "seed=1"],
    [],
    ["seed=3"],
]


@pytest.fixture(scope="module")
def loaders():
    hydra_loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    master = hydra_loader.load_configuration("config", ["hydra.job.chdir=false"], RunMode.MULTIRUN)
    return hydra_loader, ComposeOnce(hydra_loader), master


def test_every_job_equals_hydras_composition(loaders):
    hydra_loader, once, master = loaders
    for job in JOBS:
        expected = hydra_loader.load_sweep_config(master, list(job))
        composed = once.load_sweep_config(master, list(job))
        assert OmegaConf.to_container(composed) == OmegaConf.to_container(expected), job
        assert list(composed.hydra.overrides.task) == job
        assert composed.hydra.overrides.hydra == ["hydra.job.chdir=false"]
        # the same flags: closed to new keys, the Hydra node writable
        assert OmegaConf.is_struct(composed) and not OmegaConf.is_readonly(composed.hydra)
        with pytest.raises(ConfigAttributeError):
            composed.model.no_such_key = 1
    # four shapes among the fifteen jobs (none, preprocess=log, dataset=lynx, and
    # preprocess=detrend with dataset=shampoo_sales): the other eleven were copies
    assert {shape for *_, shape in once._shapes} == {
        (), ("preprocess=log",), ("dataset=lynx",), ("preprocess=detrend", "dataset=shampoo_sales")}


def test_values_of_one_job_do_not_reach_the_next(loaders):
    _, once, master = loaders
    first = once.load_sweep_config(master, ["model.depth=2", "seed=11"])
    second = once.load_sweep_config(master, ["seed=12"])
    assert (first.model.depth, first.seed) == (2, 11)
    assert (second.model.depth, second.seed) == (6, 12)
    assert second.hydra.job.override_dirname == "seed=12"


def test_a_wrong_key_or_option_fails_as_with_hydra(loaders):
    hydra_loader, once, master = loaders
    for job in (["model.dpeth=3"], ["preprocess=no_such_option"], ["seed=1", "model.depth.x=3"]):
        with pytest.raises(ConfigCompositionException) as by_hydra:
            hydra_loader.load_sweep_config(master, job)
        with pytest.raises(ConfigCompositionException) as once_only:
            once.load_sweep_config(master, job)
        assert str(once_only.value) == str(by_hydra.value) or \
            str(once_only.value.__cause__) == str(by_hydra.value.__cause__), job


def test_the_sweeps_checks_and_its_launcher_share_one_composition(monkeypatch):
    # the callback's checks compose the first job through the loader the sweeper's
    # launcher gets: Hydra composes that shape once, not once for each
    from hydra.types import HydraContext

    from tssweep.composition import compose_once, shared

    hydra_loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    master = hydra_loader.load_configuration("config", ["hydra.job.chdir=false"], RunMode.MULTIRUN)
    composed = []
    compose = hydra_loader.load_sweep_config
    monkeypatch.setattr(hydra_loader, "load_sweep_config",
                        lambda config, overrides: composed.append(overrides) or compose(config, overrides))
    checked = shared(hydra_loader).load_sweep_config(master, ["seed=0"])
    launcher_loader = compose_once(HydraContext(config_loader=hydra_loader, callbacks=None)).config_loader
    assert launcher_loader is shared(hydra_loader) and shared(launcher_loader) is launcher_loader
    jobs = [launcher_loader.load_sweep_config(master, [f"seed={seed}"]) for seed in range(3)]
    assert composed == [[]] and [job.seed for job in jobs] == [0, 1, 2] and checked.seed == 0
