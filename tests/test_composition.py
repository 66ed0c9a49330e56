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


def _counting(monkeypatch, hydra_loader) -> list:
    """The overrides of each job Hydra itself composes through ``hydra_loader``."""
    composed = []
    compose = hydra_loader.load_sweep_config
    monkeypatch.setattr(hydra_loader, "load_sweep_config",
                        lambda config, overrides: composed.append(list(overrides)) or compose(config, overrides))
    return composed


def test_the_sweeps_checks_and_its_launcher_share_one_composition(monkeypatch):
    # the callback's checks compose the first job through the loader the sweeper's
    # launcher gets: Hydra composes that shape once, not once for each
    from hydra.types import HydraContext

    from tssweep.composition import compose_once, shared

    hydra_loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    master = hydra_loader.load_configuration("config", ["hydra.job.chdir=false"], RunMode.MULTIRUN)
    composed = _counting(monkeypatch, hydra_loader)
    checked = shared(hydra_loader).load_sweep_config(master, ["seed=0"])
    launcher_loader = compose_once(HydraContext(config_loader=hydra_loader, callbacks=None)).config_loader
    assert launcher_loader is shared(hydra_loader) and shared(launcher_loader) is launcher_loader
    jobs = [launcher_loader.load_sweep_config(master, [f"seed={seed}"]) for seed in range(3)]
    # jobs that choose no group are copies of the sweep's own config: Hydra composes none
    assert composed == [] and [job.seed for job in jobs] == [0, 1, 2] and checked.seed == 0
    assert checked.hydra.overrides.task == ["seed=0"] and jobs[2].hydra.job.override_dirname == "seed=2"


# command lines of sweeps, and the jobs their sweeper makes of them (its fixed overrides
# repeated in every job)
SWEEPS = [
    (["seed=range(0,3)", "paths.output_dir=/tmp/tssweep-x"], ["seed=0"]),
    (["model.depth=4,5", "++model.iterations=30", "model={learning_rate: 0.2}"], ["model.depth=5"]),
    (["tracking.log_models=none", "+model.one_hot_max_size=2,4"], ["+model.one_hot_max_size=4"]),
]
# sweeps whose fixed overrides cannot be set twice, or that leave a group unchosen
COMPOSED_AGAIN = [["+model.one_hot_max_size=4", "seed=1,2"], ["~model.l2_leaf_reg", "seed=1,2"]]


@pytest.mark.parametrize("line,first", SWEEPS + [(line, ["seed=1"]) for line in COMPOSED_AGAIN])
def test_jobs_copied_from_the_sweeps_config_equal_hydras_composition(monkeypatch, line, first):
    hydra_loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    master = hydra_loader.load_configuration("config", ["hydra.job.chdir=false", "hydra.mode=MULTIRUN", *line],
                                             RunMode.MULTIRUN)
    fixed = [o for o in line if "," not in o and "range(" not in o]

    def keys(overrides):
        return {o.split("=")[0].lstrip("+~") for o in overrides}

    # and the jobs of JOBS that set none of the sweep's keys, with its fixed overrides
    jobs = [[*fixed, *first], *([*fixed, *job] for job in JOBS if not keys(job) & keys(line))]
    expected = [hydra_loader.load_sweep_config(master, list(job)) for job in jobs]
    composed = _counting(monkeypatch, hydra_loader)
    once = ComposeOnce(hydra_loader)
    for job, hydras in zip(jobs, expected):
        made = once.load_sweep_config(master, list(job))
        assert OmegaConf.to_container(made) == OmegaConf.to_container(hydras), job
        assert list(made.hydra.overrides.task) == job
        assert made.hydra.job.override_dirname == hydras.hydra.job.override_dirname
        assert OmegaConf.is_struct(made) and not OmegaConf.is_readonly(made.hydra)
    # the jobs that choose no group: the sweep's config copied, or, where its fixed
    # overrides cannot be applied twice, composed once by Hydra
    assert composed.count([]) == (line in COMPOSED_AGAIN)


def test_a_group_left_unchosen_is_composed_by_hydra(tmp_path, monkeypatch):
    # a sweep's composition skips a group whose option is ???; a job's fails on it
    (tmp_path / "db").mkdir()
    (tmp_path / "config.yaml").write_text("defaults:\n  - db: ???\n  - _self_\nx: 1\n")
    (tmp_path / "db" / "a.yaml").write_text("host: a\n")
    hydra_loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(tmp_path)))
    master = hydra_loader.load_configuration("config", ["x=2,3"], RunMode.MULTIRUN)
    once = ComposeOnce(hydra_loader)
    with pytest.raises(ConfigCompositionException) as by_hydra:
        hydra_loader.load_sweep_config(master, ["x=2"])
    with pytest.raises(ConfigCompositionException) as once_only:
        once.load_sweep_config(master, ["x=2"])
    assert str(once_only.value) == str(by_hydra.value)
    assert once.load_sweep_config(master, ["x=3", "db=a"]).db.host == "a"


# command lines as Hydra gets them (without -m): sweeps, fixed values, groups, Hydra's
# keys, appended and deleted keys
COMMANDS = [
    ["seed=range(0,3)", "paths.output_dir=/tmp/tssweep-x"],
    ["preprocess=none,log", "model.depth=4", "hydra.job.chdir=false"],
    ["dataset=lynx", "dataset.horizon=6", "seed=1,2"],
    ["+model.one_hot_max_size=4", "~model.l2_leaf_reg", "model={iterations: 30}", "seed=0,1"],
    [],
]


def _impl_calls(monkeypatch) -> list:
    """Each composition Hydra's config loader makes from its files, by its overrides;
    and ``ConfigLoaderImpl.load_configuration`` given back as it is at the end."""
    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", ConfigLoaderImpl.load_configuration)
    calls = []
    impl = ConfigLoaderImpl._load_configuration_impl
    monkeypatch.setattr(ConfigLoaderImpl, "_load_configuration_impl",
                        lambda self, config_name, overrides, **kwargs: calls.append(list(overrides))
                        or impl(self, config_name, overrides, **kwargs))
    return calls


@pytest.mark.parametrize("line", COMMANDS)
def test_a_sweeps_config_is_composed_once_and_is_hydras(monkeypatch, line):
    # Hydra composes a sweep's config to read its mode, then again with hydra.mode set:
    # the second is the first, checked, with that value, and equal to Hydra's own
    from tssweep.composition import compose_command_once

    hydra_loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    expected = hydra_loader.load_configuration("config", [*line, "hydra.mode=MULTIRUN"], RunMode.MULTIRUN)
    calls = _impl_calls(monkeypatch)
    checked = []
    compose_command_once(checked.append, lambda err, compose: None)
    mode = hydra_loader.load_configuration("config", list(line), RunMode.MULTIRUN, validate_sweep_overrides=False)
    assert mode.hydra.mode is None  # what Hydra's get_mode reads
    sweep = hydra_loader.load_configuration("config", [*line, "hydra.mode=MULTIRUN"], RunMode.MULTIRUN)
    assert calls == [line] and checked == [sweep]
    assert OmegaConf.to_container(sweep) == OmegaConf.to_container(expected)
    assert str(sweep.hydra.mode) == "RunMode.MULTIRUN"
    assert list(sweep.hydra.overrides.task) == [o for o in line if not o.startswith("hydra.")]
    assert list(sweep.hydra.overrides.hydra) == [*(o for o in line if o.startswith("hydra.")), "hydra.mode=MULTIRUN"]
    assert OmegaConf.is_struct(sweep) and not OmegaConf.is_readonly(sweep.hydra)
    # every later composition is Hydra's own
    job = hydra_loader.load_sweep_config(sweep, ["seed=7"])
    assert len(calls) == 2 and job.seed == 7


def test_a_run_and_other_compositions_after_the_first_are_hydras(monkeypatch):
    # a single run's second composition is in another mode: composed by Hydra; a sweep
    # over Hydra's own config is still refused as Hydra refuses it
    from tssweep.composition import compose_command_once

    hydra_loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    calls = _impl_calls(monkeypatch)
    compose_command_once(lambda cfg: None, lambda err, compose: None)
    hydra_loader.load_configuration("config", ["seed=3"], RunMode.MULTIRUN, validate_sweep_overrides=False)
    run = hydra_loader.load_configuration("config", ["seed=3", "hydra.mode=RUN"], RunMode.RUN)
    assert len(calls) == 2 and run.seed == 3 and str(run.hydra.mode) == "RunMode.RUN"
    compose_command_once(lambda cfg: None, lambda err, compose: None)
    hydra_loader.load_configuration("config", ["hydra.job.chdir=true,false"], RunMode.MULTIRUN,
                                    validate_sweep_overrides=False)
    with pytest.raises(ConfigCompositionException, match="Sweeping over Hydra's configuration is not supported"):
        hydra_loader.load_configuration("config", ["hydra.job.chdir=true,false", "hydra.mode=MULTIRUN"],
                                        RunMode.MULTIRUN)


@pytest.mark.parametrize("argv,message", [
    (["-m", "seed=1,2", "model.dept=3"], "model.dept='3': there is no key dept in model. Did you mean model.depth?"),
    (["+model.dept=3"], "tssweep.model.catboost takes no argument 'dept'. Did you mean model.depth?"),
    (["trackng.uri=x"], "there is no key trackng at the top of the config. Did you mean tracking? Allowed: "
                        "dataset, model, optimized_metric, paths, preprocess, seed, summary, tracking."),
])
def test_the_typo_check_is_the_first_composition_of_hydra(monkeypatch, capsys, argv, message):
    # the check composes nothing itself: Hydra's first composition of the command is
    # checked, and the message printed alone (no Hydra frame, no hint at a trace)
    from tssweep import overrides

    hydra_loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    calls = _impl_calls(monkeypatch)
    overrides.refuse_unknown(argv, ROOT / "conf")
    assert calls == []
    command = [a for a in argv if a != "-m"]
    # the exit passes Hydra's get_mode, which drops exceptions
    with pytest.raises(SystemExit) as exited:
        hydra_loader.load_configuration("config", command, RunMode.MULTIRUN, validate_sweep_overrides=False)
    assert exited.value.code == 1 and message in capsys.readouterr().err


def test_the_typo_check_passes_what_hydra_takes(monkeypatch, capsys):
    # Hydra's keys of a node are no arguments of its target: a callback appended to
    # Hydra's config, a key the sweeper takes, a partial of the model
    from tssweep import overrides

    hydra_loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    _impl_calls(monkeypatch)
    command = ["+hydra.callbacks.x._target_=hydra.experimental.callbacks.LogJobReturnCallback",
               "+model._partial_=true", "hydra.sweeper.max_batch_size=2"]
    overrides.refuse_unknown(["-m", "seed=1,2", *command], ROOT / "conf")
    config = hydra_loader.load_configuration("config", ["seed=1,2", *command], RunMode.MULTIRUN,
                                             validate_sweep_overrides=False)
    assert config.hydra.callbacks.x._target_.endswith("LogJobReturnCallback") and config.model._partial_
    assert capsys.readouterr().err == ""


def test_a_kept_shape_copies_whole_and_apart_pickled_or_not(loaders):
    # pickled (every shape of conf/), or deep-copied where pickle cannot (a structured
    # config of a local class): each copy equal to the shape, with its flags, and its own
    from dataclasses import dataclass

    from tssweep.composition import _Kept

    @dataclass
    class Local:
        depth: int = 6

    _, _, master = loaders
    local = OmegaConf.create({"model": OmegaConf.structured(Local)})
    OmegaConf.set_struct(local, True)
    for shape, pickled in ((master, True), (local, False)):
        kept = _Kept(shape)
        assert (kept._pickled is not None) is pickled
        first, second = kept.copy(), kept.copy()
        assert OmegaConf.to_container(first) == OmegaConf.to_container(shape)
        assert OmegaConf.is_struct(first) and first is not shape
        first.model.depth = 2
        assert second.model.depth == shape.model.depth != 2
