"""Compose a sweep's jobs once per shape, not once per job.

Hydra's launchers compose every job from scratch: the defaults list, every config
file, then the overrides. That is about 0.1 s a job here, most of what a short job
costs besides its training. Yet in a sweep over ``seed`` or CatBoost settings (every
Optuna search) the jobs differ only in values, and Hydra itself applies value
overrides last, to the composed config (``ConfigLoaderImpl._load_configuration_impl``).

:class:`ComposeOnce` wraps Hydra's config loader. For each job it splits the overrides
the way Hydra does (``hydra._internal.defaults_list.Overrides``): those that name a
config group choose the shape, the others set values. The first job of each shape is
composed by Hydra; later ones copy it and apply their values with Hydra's own
function, then record the job's overrides and ``override_dirname`` as Hydra would. A
job that chooses another group option (``preprocess=log``) is a new shape, composed
by Hydra in full. Both sweepers (``tssweep_grid`` and ``tssweep_optuna``) hand it to
their launcher; ``tests/test_composition.py`` holds it equal to Hydra's composition.

The shape of jobs that choose no group is not even composed once: it is the sweep's own
config, which Hydra composed from the same files before the sweep started (sweep
overrides are left out of it, the rest applied), when what the command line set there
can be set again with the same result (``key=value``, ``++key=value``; not ``+key`` or
``~key``) and no group was left unchosen (``???``, which a sweep's composition skips).

And the sweep's own config is composed once, not three times: :func:`compose_command_once`
hands Hydra's first composition of the command (made to read its mode) to the typo
check and then to Hydra's second (the sweep's), which differs by one value Hydra adds.
"""

from __future__ import annotations

import copy
import pickle
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, List, Optional

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.config_loader import ConfigLoader
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

# distinct shapes kept: a grid over three groups of four options has 64
SHAPES_KEPT = 64
_SHARED: weakref.WeakKeyDictionary[ConfigLoader, ComposeOnce] = weakref.WeakKeyDictionary()


def compose_command_once(check: Callable[[DictConfig], None],
                         explain: Callable[[Exception, Callable[[List[str]], DictConfig]], None]) -> None:
    """The command's config composed once before it runs, and checked as it is.

    Before a sweep runs, Hydra composes its config twice: to read its mode
    (``Hydra.get_mode``, whose errors it drops), then for the sweep, with one override
    more, ``hydra.mode=MULTIRUN``, a value. From this call on, the next composition of
    Hydra's config loader is passed to ``check`` and kept; the one after it gets that
    config, if it asks for the same one, that value set and its sweep overrides checked
    as Hydra would; else it is Hydra's own, as are all later ones (a job's, a sweep's
    checks).

    A composition error is first given to ``explain``, with a function composing other
    overrides in the same way. ``check`` and ``explain`` refuse by ending the command
    (``SystemExit``, which ``get_mode`` lets through); what they let pass is Hydra's.
    """
    original = ConfigLoaderImpl.load_configuration
    kept: list[tuple[tuple, List[str], DictConfig]] = []

    def load_configuration(self: ConfigLoaderImpl, config_name: Optional[str], overrides: List[str],
                           run_mode: RunMode, from_shell: bool = True,
                           validate_sweep_overrides: bool = True) -> DictConfig:
        key = (id(self), config_name, run_mode, from_shell)
        if kept:  # the second composition: the last one this hook sees
            ConfigLoaderImpl.load_configuration = original
            config = _reuse(kept.pop(), key, list(overrides))
            if config is None:
                return original(self, config_name, overrides, run_mode, from_shell, validate_sweep_overrides)
            if validate_sweep_overrides:
                ConfigLoaderImpl.validate_sweep_overrides_legal(
                    OverridesParser.create().parse_overrides(list(overrides)), run_mode, from_shell)
            return config

        def composed(chosen: List[str]) -> DictConfig:
            return original(self, config_name, chosen, run_mode, from_shell, validate_sweep_overrides=False)

        try:
            config = original(self, config_name, overrides, run_mode, from_shell, validate_sweep_overrides)
        except ConfigCompositionException as err:
            explain(err, composed)
            ConfigLoaderImpl.load_configuration = original  # Hydra's error, as Hydra says it
            raise
        check(config)
        kept.append((key, list(overrides), config))
        return config

    ConfigLoaderImpl.load_configuration = load_configuration


# what Hydra adds to a command's overrides between its first composition and the next
_MODE_KEY = "hydra.mode"


def _reuse(kept: tuple[tuple, List[str], DictConfig], key: tuple, overrides: List[str]) -> Optional[DictConfig]:
    """The kept composition, for a composition of ``overrides`` under ``key``: the same
    overrides, or those and ``hydra.mode=...`` after them, which is then applied and
    recorded as Hydra's composition does; None for any other."""
    kept_key, kept_overrides, config = kept
    added = overrides[len(kept_overrides):]
    if kept_key != key or overrides[:len(kept_overrides)] != kept_overrides:
        return None
    parsed = OverridesParser.create().parse_overrides(added)
    if any(o.key_or_group != _MODE_KEY or o.is_sweep_override() or o.package is not None for o in parsed):
        return None
    ConfigLoaderImpl._apply_overrides_to_config(parsed, config)
    config.hydra.overrides.hydra.extend([o.input_line for o in parsed])
    return config


def compose_once(hydra_context: HydraContext) -> HydraContext:
    """``hydra_context`` with its config loader wrapped in :class:`ComposeOnce`."""
    return HydraContext(config_loader=shared(hydra_context.config_loader), callbacks=hydra_context.callbacks)


def shared(loader: ConfigLoader) -> ComposeOnce:
    """The one :class:`ComposeOnce` of ``loader``: the sweep callback's checks compose a
    sweep's first job through it (``tssweep.preflight.check_sweep_jobs``), and the
    sweeper's launcher then reuses that composition, 0.08 s, instead of composing it again."""
    if isinstance(loader, ComposeOnce):
        return loader
    if loader not in _SHARED:
        _SHARED[loader] = ComposeOnce(loader)
    return _SHARED[loader]


class ComposeOnce(ConfigLoader):
    """A config loader that composes each shape of job once (see the module docstring).

    Every method but :meth:`load_sweep_config` is the wrapped loader's. A loader that
    is not Hydra's own is used as it is, without copies.
    """

    def __init__(self, loader: ConfigLoader) -> None:
        self._loader = loader
        self._shapes: OrderedDict[tuple, _Kept] = OrderedDict()
        self._repositories: dict[tuple, Any] = {}
        self._parser = OverridesParser.create()

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: List[str]) -> DictConfig:
        if not isinstance(self._loader, ConfigLoaderImpl):
            return self._loader.load_sweep_config(master_config, sweep_overrides)
        config_name = master_config.hydra.job.config_name
        hydra_overrides = tuple(OmegaConf.to_container(master_config.hydra.overrides.hydra))
        parsed = self._parser.parse_overrides(list(sweep_overrides))
        repository = self._repository(config_name, hydra_overrides)
        sets_a_value = [_sets_a_value(o, repository) for o in parsed]
        values = [o for o, is_value in zip(parsed, sets_a_value) if is_value]
        shape = [o.input_line for o, is_value in zip(parsed, sets_a_value) if not is_value]
        key = (config_name, hydra_overrides, tuple(shape))
        if key not in self._shapes:
            copied = None if shape else _from_sweep_config(master_config, self._parser, repository)
            self._shapes[key] = _Kept(copied if copied is not None
                                      else self._loader.load_sweep_config(master_config, shape))
            if len(self._shapes) > SHAPES_KEPT:
                self._shapes.popitem(last=False)
        else:
            self._shapes.move_to_end(key)
        job_config = self._shapes[key].copy()
        try:
            ConfigLoaderImpl._apply_overrides_to_config(values, job_config)
        except OmegaConfBaseException as err:  # as Hydra's load_configuration reports it
            raise ConfigCompositionException().with_traceback(err.__traceback__) from err
        app_overrides = [o for o in parsed if not o.is_hydra_override()]
        job_config.hydra.overrides.task = [o.input_line for o in app_overrides]
        dirname = job_config.hydra.job.config.override_dirname
        job_config.hydra.job.override_dirname = get_overrides_dirname(
            overrides=app_overrides, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep,
            exclude_keys=dirname.exclude_keys)
        OmegaConf.copy_cache(from_config=master_config, to_config=job_config)
        return job_config

    def _repository(self, config_name: Optional[str], hydra_overrides: tuple) -> Any:
        """The config repository Hydra composes from, search path overrides included."""
        key = (config_name, hydra_overrides)
        if key not in self._repositories:
            _, self._repositories[key] = self._loader._parse_overrides_and_create_caching_repo(
                config_name, list(hydra_overrides))
        return self._repositories[key]

    def load_configuration(self, config_name: Optional[str], overrides: List[str], run_mode: RunMode,
                           from_shell: bool = True, validate_sweep_overrides: bool = True) -> DictConfig:
        return self._loader.load_configuration(config_name, overrides, run_mode, from_shell=from_shell,
                                               validate_sweep_overrides=validate_sweep_overrides)

    def get_search_path(self):
        return self._loader.get_search_path()

    def get_sources(self):
        return self._loader.get_sources()

    def list_groups(self, parent_name: str) -> List[str]:
        return self._loader.list_groups(parent_name)

    def get_group_options(self, group_name: str, results_filter: Optional[ObjectType] = ObjectType.CONFIG,
                          config_name: Optional[str] = None,
                          overrides: Optional[List[str]] = None) -> List[str]:
        return self._loader.get_group_options(group_name, results_filter=results_filter,
                                              config_name=config_name, overrides=overrides)

    def compute_defaults_list(self, config_name: Optional[str], overrides: List[str], run_mode: RunMode):
        return self._loader.compute_defaults_list(config_name, overrides, run_mode)


class _Kept:
    """A shape, kept pickled: unpickling makes each job's copy in a ninth of the time
    ``copy.deepcopy`` takes (0.6 ms against 5 ms here: OmegaConf copies node by node in
    Python), flags, parents and interpolations alike. A shape that cannot be pickled
    (a structured config of a local class) is deep-copied."""

    def __init__(self, config: DictConfig) -> None:
        try:
            self._pickled: Optional[bytes] = pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL)
            self._config = None
        except (pickle.PicklingError, AttributeError, TypeError):
            self._pickled, self._config = None, config

    def copy(self) -> DictConfig:
        return pickle.loads(self._pickled) if self._pickled is not None else copy.deepcopy(self._config)


def _from_sweep_config(master_config: DictConfig, parser: OverridesParser, repository) -> Optional[DictConfig]:
    """The shape of the sweep's jobs that choose no group, copied from the sweep's config
    (see the module docstring), or None where it must be composed."""
    choices = master_config.hydra.runtime.choices
    if any(OmegaConf.is_missing(choices, group) for group in choices):
        return None
    for override in parser.parse_overrides(list(master_config.hydra.overrides.task)):
        if override.is_sweep_override():
            continue  # left out of the sweep's config: each job sets its own value
        if not _sets_a_value(override, repository) or override.is_add() or override.is_delete():
            return None
    shape = copy.deepcopy(master_config)
    # as Hydra's composition leaves them: closed to new keys, the Hydra node writable
    OmegaConf.set_readonly(shape, None)
    OmegaConf.set_struct(shape, True)
    OmegaConf.set_readonly(shape.hydra, False)
    return shape


def _sets_a_value(override, repository) -> bool:
    """Whether Hydra applies ``override`` to the composed config rather than to the
    defaults list (the rule of ``hydra._internal.defaults_list.Overrides``); overrides
    of Hydra's own config and package overrides stay with the composition."""
    if override.is_hydra_override() or override.package is not None:
        return False
    return isinstance(override.value(), dict) or not repository.group_exists(override.key_or_group)
