"""``--help`` without a copy of Hydra's config repository per config group.

Hydra's ``--help`` and ``--hydra-help`` list every config group with its options:
``ConfigLoaderImpl.get_group_options`` once per group and kind of entry, 119 calls
here (the Ray launcher's plugin alone brings dozens of groups). Each call builds a
fresh ``CachingConfigRepository``, which deep-copies the whole repository, the
structured configs of every installed plugin included: most of the command's time.
All those calls ask with the same config name and overrides (none), and listing
changes nothing in a repository, so the one built for the first call serves the rest:
:func:`list_groups_once`, which ``src/train.py`` calls when the command asks for help,
and only then. What is printed is Hydra's own, to the character (``tests/test_help.py``).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, List, Optional

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.object_type import ObjectType

# Hydra's flags that print the help (hydra._internal.utils.get_args_parser)
HELP_FLAGS = frozenset({"--help", "-h", "--hydra-help"})

_repositories: weakref.WeakKeyDictionary[ConfigLoaderImpl, dict[tuple, Any]] = weakref.WeakKeyDictionary()


def asks_for_help(argv: Sequence[str]) -> bool:
    """Whether the command line ``argv`` asks Hydra for its help."""
    return any(arg in HELP_FLAGS for arg in argv)


def list_groups_once() -> None:
    """Have this process's Hydra config loaders list groups from one repository per
    config name and overrides (see the module). For a process that prints help."""
    ConfigLoaderImpl.get_group_options = _group_options  # type: ignore[method-assign]


def _group_options(self: ConfigLoaderImpl, group_name: str,
                   results_filter: Optional[ObjectType] = ObjectType.CONFIG,
                   config_name: Optional[str] = None, overrides: Optional[List[str]] = None) -> List[str]:
    """``ConfigLoaderImpl.get_group_options``, from the repository its first call built."""
    kept = _repositories.setdefault(self, {})
    key = (config_name, tuple(overrides or ()))
    if key not in kept:
        kept[key] = self._parse_overrides_and_create_caching_repo(config_name, list(overrides or ()))[1]
    return kept[key].get_group_options(group_name, results_filter)
