"""Hydra's bookkeeping around each job of a sweep: the same copies and files, made cheaply.

Around every job, Hydra's ``run_job`` (``hydra.core.utils``) copies the job's config
twice (``copy.deepcopy``: the task's config, then Hydra's node), masks Hydra's node out
of it twice (``HydraConfig.set_config``) and writes ``.hydra/config.yaml``,
``hydra.yaml`` and ``overrides.yaml``. OmegaConf copies a config node by node in
Python, and PyYAML emits in Python: 68 ms a job on a slow day of this machine, more than
the 60 ms all of a job's overhead may take, the same for a job of seconds as for one of
minutes.

:func:`cheap_bookkeeping`, which tssweep's sweepers enter while they run their jobs, has
Hydra's own ``run_job`` do the same with cheaper means: every copy is a pickle round
trip (:func:`copy_config`: OmegaConf's own pickling, each node's parent as a deep copy
leaves it), and the YAML is emitted by libyaml with OmegaConf's representer
(:func:`to_yaml`): 35 ms a job instead of 68 on that day. The objects and the files are
Hydra's (``tests/test_bookkeeping.py`` holds them equal, byte for byte); a config that
does not pickle (a structured config of a local class) is deep-copied as before.

Within it too, OmegaConf parses each interpolation's text once (:func:`_parse_once`):
it runs its ANTLR parser on ``${...}`` at every read of an interpolated value, about
20 times a job here (Hydra's output directory, the job's resolved config, the model's
arguments), 0.5 ms each on that day, always on the same few texts. The parse tree is
only read when resolved, so one tree serves every read; what the resolvers return
(``${now:...}``) is not kept, only the parsed text.
"""

from __future__ import annotations

import copy
import functools
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra.core.utils as hydra_utils
import omegaconf.base
import yaml
from hydra.conf import HydraConf
from hydra.core.hydra_config import HydraConfig
from omegaconf import Container, DictConfig, ListConfig, OmegaConf, flag_override
from omegaconf._utils import get_omega_conf_dumper

# OmegaConf's dumper (its strings that read as numbers or booleans quoted) on libyaml's
# emitter, where PyYAML has it; the same text as OmegaConf.to_yaml, five times faster
if hasattr(yaml, "CDumper"):
    class _Dumper(yaml.CDumper):
        pass

    _Dumper.add_representer(str, get_omega_conf_dumper().str_representer)
else:  # PyYAML built without libyaml
    _Dumper = get_omega_conf_dumper()


def to_yaml(cfg: Any, resolve: bool = False) -> str:
    """``OmegaConf.to_yaml(cfg, resolve=resolve)``, the same text, emitted by libyaml.
    ``cfg`` is a config or plain data (a dict of a config resolved, say)."""
    if OmegaConf.is_config(cfg) or resolve or not _plain(cfg):
        cfg = OmegaConf.to_container(cfg if OmegaConf.is_config(cfg) else OmegaConf.create(cfg),
                                     resolve=resolve, enum_to_str=True)
    return yaml.dump(cfg, default_flow_style=False, allow_unicode=True, sort_keys=False,
                     Dumper=_Dumper)


def _plain(value: Any) -> bool:
    """Whether ``value`` is what a config makes of itself as a container (dicts with text
    keys, lists, text, numbers, booleans, None): dumped as it is, not made a config first."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    return value is None or type(value) in (str, int, float, bool)


def copy_config(config: Container) -> Container:
    """``copy.deepcopy(config)``, as a pickle round trip: three times faster.

    A deep copy keeps the parent of ``config`` itself and gives each node below it its
    copied container as parent (whatever its parent was); pickling would carry along
    every node a parent reference reaches. So the parents are set as the copy will
    have them while ``config`` is pickled, and restored after. Raises what pickling
    raises for a config that does not pickle."""
    moved: list[tuple[Any, Any]] = []
    parent = config.__dict__["_parent"]
    config.__dict__["_parent"] = None
    try:
        _own_children(config, moved)
        data = pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        config.__dict__["_parent"] = parent
        for node, old in moved:
            node.__dict__["_parent"] = old
    copied = pickle.loads(data)
    copied.__dict__["_parent"] = parent
    return copied


def _own_children(container: Container, moved: list) -> None:
    content = container.__dict__["_content"]
    children = content.values() if isinstance(content, dict) else content if isinstance(content, list) else ()
    for child in children:
        if child.__dict__["_parent"] is not container:
            moved.append((child, child.__dict__["_parent"]))
            child.__dict__["_parent"] = container
        if isinstance(child, (DictConfig, ListConfig)):
            _own_children(child, moved)


class _Copies:
    """What ``hydra.core.utils`` sees as its ``copy`` module: the module, but a deep copy
    of a config is :func:`copy_config`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: dict | None = None) -> Any:
        if memo is None and isinstance(value, (DictConfig, ListConfig)):
            try:
                return copy_config(value)
            except Exception:  # noqa: BLE001 - what does not pickle is deep-copied
                pass
        return copy.deepcopy(value, memo)


def _save_config(cfg: Any, filename: str, output_dir: Path) -> None:
    """Hydra's ``hydra.core.utils._save_config``, the YAML emitted by :func:`to_yaml`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(str(output_dir / filename), "w", encoding="utf-8") as file:
        file.write(to_yaml(cfg))


def _set_config(self: HydraConfig, cfg: DictConfig) -> None:
    """Hydra's ``HydraConfig.set_config``: Hydra's node of ``cfg``, read-only, in a config
    of its own whose ``hydra`` still resolves against ``cfg``; copied by
    :func:`copy_config` where ``OmegaConf.masked_copy`` deep-copies it."""
    OmegaConf.set_readonly(cfg.hydra, True)
    node_type = OmegaConf.get_type(cfg, "hydra")
    assert node_type is not None and issubclass(node_type, HydraConf)
    try:
        node = copy_config(cfg._get_node("hydra"))
    except Exception:  # noqa: BLE001 - what does not pickle is Hydra's to copy
        return _HYDRAS["set_config"](self, cfg)
    masked = DictConfig(content={})
    with flag_override(masked, "no_deepcopy_set_nodes", True):
        masked["hydra"] = node
    masked.hydra._set_parent(cfg)
    self.cfg = masked


@functools.lru_cache(maxsize=1024)
def _parse_once(value: str, parser_rule: str = "configValue", lexer_mode: str = "DEFAULT_MODE") -> Any:
    """OmegaConf's ``grammar_parser.parse``, once per text (a text that does not parse
    raises each time, as before)."""
    return _OMEGACONFS_PARSE(value, parser_rule, lexer_mode)


_OMEGACONFS_PARSE = omegaconf.base.parse
_HYDRAS = {"copy": hydra_utils.copy, "_save_config": hydra_utils._save_config,
           "set_config": HydraConfig.set_config}


@contextmanager
def cheap_bookkeeping() -> Iterator[None]:
    """Within: Hydra's ``run_job`` copies configs with :func:`copy_config` and writes its
    YAML files with :func:`to_yaml`, and OmegaConf parses each interpolation once (see
    the module docstring); Hydra's and OmegaConf's own after."""
    before = (hydra_utils.copy, hydra_utils._save_config, HydraConfig.set_config, omegaconf.base.parse)
    hydra_utils.copy, hydra_utils._save_config = _Copies(), _save_config
    HydraConfig.set_config = _set_config
    omegaconf.base.parse = _parse_once
    try:
        yield
    finally:
        hydra_utils.copy, hydra_utils._save_config, HydraConfig.set_config, omegaconf.base.parse = before
