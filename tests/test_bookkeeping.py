"""tssweep.bookkeeping: Hydra's run_job, its copies and files made cheaply, does what Hydra's does."""

import copy
import dataclasses
import shutil
from pathlib import Path

import hydra.core.utils as hydra_utils
import pytest
from hydra._internal.callbacks import Callbacks
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import run_job
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from conftest import ROOT
from tssweep.bookkeeping import cheap_bookkeeping, copy_config, to_yaml
from tssweep.composition import ComposeOnce

JOBS = [["seed=3"], ["preprocess=log", "model.depth=5"], ["dataset=lynx", "+model.one_hot_max_size=4"],
        ["model={depth: 3, iterations: 30}", "tracking.log_models=none"], ["~model.l2_leaf_reg"]]
# values whose YAML takes care: strings that read as other types, quotes, breaks, width
AWKWARD = {
    "words": ["true", "no", "null", "1.5", "1e-3", "0x1f", "", " leading", "trailing ", "a: b", "# not a comment",
              "it's", 'say "hi"', "tab\there", "two\nlines\n", "ünïcödé ✓ 時系列", "x" * 200,
              " ".join(["a long sentence that has to be folded by the emitter"] * 4), "${not.resolved}",
              "- dash", "[brackets]", "{braces}", "@at", "`tick`", "%percent", "*star", "&amp", "!bang", "|pipe"],
    "numbers": [0, -1, 10**20, 1.0, -0.0, 1e-12, 3.14159, float("inf"), float("-inf"), float("nan")],
    "flags": [True, False, None],
    "nested": {"empty_list": [], "empty_dict": {}, "deep": {"deeper": [{"k": "v"}, [1, [2, [3]]]]}},
    "ünï key": "v", "key with spaces": 1, "1": "numeric key",
}


@pytest.fixture(scope="module")
def loader_and_master():
    hydra_loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    master = hydra_loader.load_configuration("config", ["hydra.job.chdir=false", "hydra.mode=MULTIRUN"],
                                             RunMode.MULTIRUN)
    return ComposeOnce(hydra_loader), master


def _shape(node, parent_of_root):
    """Everything a copy must reproduce of ``node``: types, metadata, flags, values, and
    each node's parent as a position in the tree (the root's as the object itself)."""
    nodes, places = [], {}

    def walk(current, place):
        places[id(current)] = place
        meta = current._metadata
        parent = current.__dict__["_parent"]
        row = [place, type(current).__name__, meta.ref_type, meta.object_type, meta.optional, meta.key,
               dict(meta.flags), meta.flags_root, dict(meta.resolver_cache),
               places.get(id(parent), "<outside>") if place else parent is parent_of_root]
        if isinstance(current, (DictConfig, ListConfig)):
            content = current.__dict__["_content"]
            items = content.items() if isinstance(content, dict) else enumerate(content) \
                if isinstance(content, list) else ()
            nodes.append(row + [content if isinstance(content, str) or content is None else "container"])
            for key, child in items:
                walk(child, f"{place}/{key}")
        else:
            nodes.append(row + [repr(current._value())])

    walk(node, "")
    return nodes


def test_a_config_copy_is_a_deep_copy(loader_and_master):
    once, master = loader_and_master
    configs = [once.load_sweep_config(master, job) for job in JOBS]
    HydraConfig.instance().set_config(configs[0])
    # the Hydra node masked out, whose parent is the whole config: outside the copied tree
    configs.append(HydraConfig.instance().cfg)
    configs.append(configs[0].model)  # a node with a parent
    for config in configs:
        parent = config.__dict__["_parent"]
        deep, cheap = copy.deepcopy(config), copy_config(config)
        assert _shape(cheap, parent) == _shape(deep, parent)
        assert cheap.__dict__["_parent"] is parent and OmegaConf.to_container(cheap) == OmegaConf.to_container(deep)
        # apart from the original, and the original untouched by the copy
        before = _shape(config, parent)
        with read_write(cheap), open_dict(cheap):
            cheap[next(iter(cheap))] = "changed"
        assert _shape(config, parent) == before
    hydra_node = copy_config(HydraConfig.instance().cfg).hydra
    # as a deep copy leaves it: Hydra's node now belongs to the copy, not to the job's config
    assert hydra_node.__dict__["_parent"] is not configs[0] and OmegaConf.is_readonly(hydra_node)


@dataclasses.dataclass
class _Module:
    depth: int = 6


def test_a_config_that_does_not_pickle_is_deep_copied():
    @dataclasses.dataclass
    class Local:  # a structured config of a local class: pickle cannot name it
        depth: int = 6

    config = OmegaConf.create({"model": OmegaConf.structured(Local), "fine": OmegaConf.structured(_Module)})
    with pytest.raises(Exception):
        copy_config(config)
    with cheap_bookkeeping():
        copied = hydra_utils.copy.deepcopy(config)
    assert OmegaConf.get_type(copied, "model") is Local and copied.model.depth == 6
    assert _shape(copied, None) == _shape(copy.deepcopy(config), None)


def test_yaml_is_omegaconfs_text(loader_and_master):
    once, master = loader_and_master
    awkward = OmegaConf.create(AWKWARD)
    for config in [*(once.load_sweep_config(master, job) for job in JOBS), awkward, awkward.words]:
        assert to_yaml(config) == OmegaConf.to_yaml(config)
    job = once.load_sweep_config(master, ["seed=3"])
    HydraConfig.instance().set_config(job)
    resolved = OmegaConf.to_container(job.model, resolve=True)
    assert to_yaml(job.model, resolve=True) == OmegaConf.to_yaml(job.model, resolve=True)
    assert to_yaml(resolved) == OmegaConf.to_yaml(resolved) and to_yaml(AWKWARD) == OmegaConf.to_yaml(AWKWARD)


def _run(job_config: DictConfig, output: Path) -> tuple:
    """Hydra's run_job of one job into ``output``, with a task that records what it sees."""
    seen = {}

    def task(cfg: DictConfig) -> float:
        seen["cfg"] = _shape(cfg, None)
        seen["hydra"] = OmegaConf.to_yaml(HydraConfig.get())
        seen["hydra_shape"] = _shape(HydraConfig.instance().cfg, None)
        seen["resolved_dir"] = HydraConfig.get().runtime.output_dir
        return cfg.seed

    with open_dict(job_config):
        job_config.hydra.sweep.dir = str(output)
        job_config.hydra.job.id = job_config.hydra.job.num = 0
    returned = run_job(task, job_config, "hydra.sweep.dir", "hydra.sweep.subdir",
                       HydraContext(config_loader=None, callbacks=Callbacks()), configure_logging=False)
    files = {path.name: path.read_bytes() for path in sorted((output / "0" / ".hydra").iterdir())}
    after = (_shape(returned.cfg, None), _shape(returned.hydra_cfg, None), returned.overrides,
             returned.return_value, returned.status, _shape(HydraConfig.instance().cfg, None))
    return seen, files, after


@pytest.mark.parametrize("job", JOBS)
def test_hydras_run_job_does_the_same_within(loader_and_master, tmp_path, job):
    once, master = loader_and_master
    by_hydra = _run(once.load_sweep_config(master, job), tmp_path / "sweep")
    shutil.rmtree(tmp_path / "sweep")  # the same job again, in the same place
    with cheap_bookkeeping():
        cheaply = _run(once.load_sweep_config(master, job), tmp_path / "sweep")
    # the same .hydra files byte for byte, the task sees the same config and Hydra node,
    # and the job's return is the same
    assert set(cheaply[1]) == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    assert cheaply[1] == by_hydra[1]
    assert cheaply[0]["cfg"] == by_hydra[0]["cfg"] and cheaply[0]["hydra"] == by_hydra[0]["hydra"]
    assert cheaply[0]["hydra_shape"] == by_hydra[0]["hydra_shape"]
    assert cheaply[2] == by_hydra[2]
    assert Path(cheaply[0]["resolved_dir"]) == tmp_path / "sweep" / "0"


def test_hydras_own_means_come_back_after(loader_and_master):
    before = (hydra_utils.copy, hydra_utils._save_config, HydraConfig.set_config)
    with pytest.raises(RuntimeError), cheap_bookkeeping():
        assert hydra_utils.copy is not copy and HydraConfig.set_config is not before[2]
        raise RuntimeError("a job's failure")
    assert (hydra_utils.copy, hydra_utils._save_config, HydraConfig.set_config) == before
    assert hydra_utils.copy is copy


# interpolations of every kind OmegaConf resolves: nested, in text, escaped, resolvers
# with arguments (and a resolver whose answer changes: each read asks it again)
INTERPOLATED = {
    "a": 1, "b": "${a}", "c": "x_${a}_${b}_y", "d": "${oc.select:missing,default}", "e": "\\${not.this}",
    "f": "${oc.env:TSSWEEP_BOOKKEEPING_TEST,unset}", "g": {"h": "${..a}", "i": "${c}"}, "j": ["${a}", "${g.h}"],
    "k": "${oc.decode:'[1, 2]'}", "l": "${counter:}", "m": "${oc.select:g.i}",
}


def test_interpolations_resolve_as_before_and_are_parsed_once(monkeypatch):
    import omegaconf.base

    calls = iter(range(1000))
    OmegaConf.register_new_resolver("counter", lambda: next(calls), replace=True)
    expected = OmegaConf.to_container(OmegaConf.create(INTERPOLATED), resolve=True)
    from tssweep.bookkeeping import _parse_once

    _parse_once.cache_clear()  # texts parsed by other tests of this process
    parsed = []
    parse = omegaconf.base.parse
    monkeypatch.setattr("tssweep.bookkeeping._OMEGACONFS_PARSE", lambda *a: parsed.append(a[0]) or parse(*a))
    with cheap_bookkeeping():
        config = OmegaConf.create(INTERPOLATED)
        first = OmegaConf.to_container(config, resolve=True)
        second = OmegaConf.to_container(OmegaConf.create(INTERPOLATED), resolve=True)
        assert config.g.i == "x_1_1_y" and config.j[1] == 1
        bad = OmegaConf.create({"x": "${no_such_resolver:1}", "y": "${no.such.key}"})
        with pytest.raises(Exception) as cheaply:
            bad.x
        with pytest.raises(Exception) as cheaply_too:
            bad.y
    with pytest.raises(Exception) as by_omegaconf:
        bad.x
    with pytest.raises(Exception) as by_omegaconf_too:
        bad.y
    assert {**first, "l": None} == {**expected, "l": None} == {**second, "l": None}
    assert second["l"] == first["l"] + 1  # a resolver is asked at every read, as before
    for mine, theirs in ((cheaply, by_omegaconf), (cheaply_too, by_omegaconf_too)):
        assert type(mine.value) is type(theirs.value) and str(mine.value) == str(theirs.value)
    # each text parsed once, however often it was read
    assert len(parsed) == len(set(parsed)) and {"${a}", "x_${a}_${b}_y", "${no.such.key}"} <= set(parsed)
    assert omegaconf.base.parse is parse
