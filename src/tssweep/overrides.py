"""The command line checked against the config tree, with "did you mean" for typos.

Hydra refuses an unknown key (``model.dept=3``) or option (``preprocess=detrnd``) with
its own wording, which lists no near match and, for a key, suggests appending it with
``+``; and it accepts ``+model.dept=3``, which then fails deep inside the model's
constructor. This module says, before any run exists, which key or option was meant:

- :func:`refuse_unknown` checks the command (``src/train.py`` calls it first): its
  options at once, its keys in Hydra's own first composition of the config, whose
  errors it turns into one :class:`BadInput`;
- :func:`explain` does that for any composition error, so the sweep callback can use it
  on every job of a sweep;
- :func:`refuse_unknown_options` checks each option named for a group, each value of a
  sweep included;
- :func:`check_arguments` names a key under a ``_target_`` that its callable does not
  take (``+model.dept=3``), or needs and the command deletes (``~model.depth``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

from hydra.errors import MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from tssweep.checks import OPTION_METADATA
from tssweep.errors import BadInput, exit_with

# the command-line flags that print something instead of composing this config
_NOT_COMPOSING = ("help", "hydra_help", "shell_completion", "info", "config_path", "config_name",
                  "config_dir", "experimental_rerun")


def sweeps(argv: list[str]) -> bool:
    """Whether the command runs a sweep (``-m``), not one that prints something instead
    (``--help``, ``--cfg job``)."""
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args(argv)
    return bool(args.multirun) and not args.cfg and not any(getattr(args, flag, None) for flag in _NOT_COMPOSING)


def refuse_unknown(argv: list[str], conf_dir: Path) -> None:
    """Check the command's overrides against the config tree in ``conf_dir``: each option
    named for a group now (:func:`refuse_unknown_options`), and each key, appended or
    deleted, in Hydra's own first composition of the command (not its sweeps, which the
    sweep callback composes job by job), which
    :func:`tssweep.composition.compose_command_once` hands to this check. An unknown
    option is raised as a :class:`BadInput` with its near matches; an unknown key, or an
    argument its ``_target_`` does not take, is printed so and ends the command (code
    1) before Hydra runs it; other errors are left to Hydra. Called before Hydra runs
    (``src/train.py``, ``src/predict.py``)."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from tssweep.composition import compose_command_once

    args, _ = get_args_parser().parse_known_args(argv)
    if any(getattr(args, flag, None) for flag in _NOT_COMPOSING):
        return
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
    except Exception:  # malformed: Hydra's parser error says where
        return
    refuse_unknown_options(args.overrides, conf_dir)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]

    def check(cfg: DictConfig) -> None:
        try:
            check_arguments(cfg, fixed)
        except BadInput as err:
            exit_with(err)

    def explained(err: Exception, compose: Callable[[list[str]], DictConfig]) -> None:
        refused = explain(err, fixed, compose)
        if refused is not None:
            exit_with(refused)

    compose_command_once(check, explained)


def explain(err: Exception, overrides: list[str],
            compose: Callable[[list[str]], DictConfig]) -> BadInput | None:
    """A :class:`BadInput` for an unknown option or key, None for any other error.

    ``compose`` composes a list of overrides (as the failed composition did); it is
    called without the faulty one, to list the keys next to the unknown key.
    """
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        group, _, option = err.missing_cfg_file.rpartition("/")
        return _unknown_option(group, option, err.options) if group else None
    cause = err.__cause__
    if not isinstance(cause, (ConfigKeyError, ConfigAttributeError)) or not cause.full_key:
        return None
    missing = str(cause.full_key)  # the first key of the path that is not there
    faulty = [o for o in overrides if _key(o) == missing or _key(o).startswith(missing + ".")]
    if not faulty:
        return None
    try:  # the config's shape comes from the groups chosen; other keys may be wrong too
        cfg = compose([o for o in overrides if o not in faulty and "." not in _key(o)])
    except Exception:
        return None
    parent, _, leaf = missing.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return None
    keys = sorted(str(k) for k in node.keys()  # Hydra's own node is Hydra's to name
                  if not str(k).startswith("_") and f"{parent}.{k}" not in OPTION_METADATA
                  and (parent or k != "hydra"))
    where = f"in {parent}" if parent else "at the top of the config"
    return BadInput(_key(faulty[0]), _value(faulty[0]),
                    f"there is no key {leaf} {where}{_near(leaf, keys, parent)}",
                    ", ".join(f"{parent}.{k}" if parent else k for k in keys))


def refuse_unknown_options(overrides: list[str], conf_dir: Path) -> None:
    """Every option named for a config group, each value of a sweep included, must be a
    file of that group: Hydra itself skips an unknown option of an ``optional`` group
    (``experiment=airline_detrnd`` would run the default config)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(overrides):
        group = override.get_key_element().lstrip("+~").split("@", 1)[0]
        folder = conf_dir / group
        if not folder.is_dir() or override.is_delete():
            continue
        try:
            values = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                      else [override.get_value_element_as_str()])
        except Exception:  # a glob or range over options: Hydra lists them itself
            continue
        options = sorted(path.stem for path in folder.glob("*.yaml"))
        for value in values:
            if value != "null" and value not in options:
                raise _unknown_option(group, value, options)


def _unknown_option(group: str, option: str, options) -> BadInput:
    return BadInput(group, option, f"no such option{_near(option, options)}",
                    ", ".join(sorted(options)))


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0].split("@", 1)[0]


def _value(override: str) -> str | None:
    return override.split("=", 1)[1] if "=" in override else None


def check_arguments(cfg: DictConfig, overrides: list[str]) -> None:
    """Refuse an appended key (``+model.dept=3``) that the ``_target_`` of its node
    does not take as an argument, and a deleted one (``~model.depth``) that it needs."""
    for override in overrides:
        if not override.startswith(("+", "~")):
            continue
        key = _key(override)
        parent, _, leaf = key.rpartition(".")
        if leaf.startswith("_"):  # Hydra's own keys of a node (_target_, _partial_), no argument
            continue
        node = OmegaConf.select(cfg, parent) if parent else None
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        signature = _signature(str(node._target_))
        if signature is None:
            continue
        accepted, required, takes_any = signature
        if override.startswith("~"):
            if leaf in required:
                raise BadInput(key, "~", f"{node._target_} needs {leaf!r}, which has no default, "
                               "so it cannot be deleted.", f"a value ({key}=...), or the config's own")
        elif not takes_any and leaf not in accepted:
            raise BadInput(key, _value(override),
                           f"{node._target_} takes no argument {leaf!r}"
                           f"{_near(leaf, accepted, parent)}", ", ".join(sorted(accepted)))


def _signature(target: str) -> tuple[list[str], set[str], bool] | None:
    """The keyword arguments a ``_target_`` takes, those of them it needs (no default),
    and whether it takes any (``**kwargs``); None when its signature cannot be read."""
    module_name, _, name = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), name)
        parameters = inspect.signature(obj).parameters.values()
    except (ImportError, AttributeError, ValueError, TypeError):
        return None
    named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return ([p.name for p in named], {p.name for p in named if p.default is p.empty},
            any(p.kind == p.VAR_KEYWORD for p in parameters))


def _near(word: str, candidates, prefix: str = "") -> str:
    matches = difflib.get_close_matches(word, [str(c) for c in candidates], n=3, cutoff=0.6)
    if not matches:
        return "."
    shown = [f"{prefix}.{m}" if prefix else m for m in matches]
    return ". Did you mean " + " or ".join(shown) + "?"
