"""Run names that fit MLflow's name column and say what differs between runs.

The runs table shows about 24 characters of a name. A child is named by the values it
sweeps, the group prefix left out where the value alone is unambiguous (``detrend``,
``detrend · naive``, ``depth=6``); a CSV file by its name (``co2_monthly``, not
``dataset.path=/data/co2_monthly.csv``). A name too long for the column is cut, and the
job's number keeps cut names distinct within the sweep. A parent says what the sweep
compares: ``airline · preprocess ×3``, ``search lynx``. Pure strings: no MLflow here.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

MAX_LENGTH = 24
# the config groups of conf/: their option alone says what it is (``detrend``); any
# other key keeps its name (``seed=3``, ``depth=6``)
GROUPS = frozenset({"dataset", "preprocess", "model", "tracking", "cluster", "paths",
                    "experiment", "hparams_search"})
SEPARATOR = " · "
# keys that say where a run goes or runs, not what it is
_INFRASTRUCTURE = ("tracking", "hydra", "paths", "cluster")


def child_name(overrides: list[str], swept_keys: list[str], job_num: int | None = None) -> str:
    """A sweep's child, by its own values of the swept keys: ``log · depth=6``."""
    return _fit(swept_values(overrides, swept_keys), job_num)


def swept_values(overrides: list[str], swept_keys: list[str]) -> str:
    """A job's values of the swept keys, uncut (``log_deseasonalize_detrend · depth=6``):
    what tells it apart from the other jobs."""
    return _label([(key, value) for key, value in _pairs(overrides) if key in swept_keys])


def single_name(overrides: list[str], dataset_name: str, preprocess: str) -> str:
    """A run without ``-m``: its dataset, then what the command line changed
    (``airline · log · depth=6``), or its preprocessing (``airline · none``)."""
    changed = [(key, value) for key, value in _pairs(overrides)
               if key.split(".", 1)[0] not in ("dataset", *_INFRASTRUCTURE)]
    return _fit(SEPARATOR.join([dataset_name, _label(changed) or preprocess]))


def parent_name(overrides: list[str], dataset_name: str, search: bool) -> str:
    """A sweep's parent: ``airline · preprocess ×3``, ``dataset ×2 · model ×2``,
    ``search lynx``."""
    sweeps = [override for override in OverridesParser.create().parse_overrides(overrides)
              if override.is_sweep_override()]
    swept_groups = {_key(override.get_key_element()).split(".", 1)[0] for override in sweeps}
    subject = dataset_name if "dataset" not in swept_groups else ""
    if search:
        return " ".join(["search", subject or "datasets"])
    counts = [f"{_key(override.get_key_element())} ×{_count(override)}" for override in sweeps]
    return SEPARATOR.join(part for part in [subject, *counts] if part)


def _pairs(overrides: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for override in overrides:
        key, _, value = override.partition("=")
        if override.startswith("~") or not _:
            continue
        pairs.append((_key(key), value))
    return pairs


def _key(key: str) -> str:
    return key.lstrip("+~").split("@", 1)[0]


def _label(pairs: list[tuple[str, str]]) -> str:
    """``group=value`` shown as ``value``, ``a.b.key=value`` as ``key=value``, unless
    another pair would read the same."""
    values = [value for _, value in pairs]
    leaves = [key.rsplit(".", 1)[-1] for key, _ in pairs]
    parts = []
    for (key, value), leaf in zip(pairs, leaves):
        if key.endswith(".path"):  # a file: its name without folder and extension
            parts.append(Path(value).stem)
        elif key in GROUPS and values.count(value) == 1:
            parts.append(value)
        else:
            parts.append(f"{leaf if leaves.count(leaf) == 1 else key}={value}")
    return SEPARATOR.join(parts)


def _fit(name: str, job_num: int | None = None) -> str:
    if len(name) <= MAX_LENGTH:
        return name
    suffix = f" #{job_num}" if job_num is not None else ""
    return name[:MAX_LENGTH - len(suffix) - 1].rstrip(" ·") + "…" + suffix


def _count(override) -> str:
    try:
        return str(len(list(override.sweep_iterator())))
    except Exception:  # a glob or an interval: its values are not listed on the command line
        return "…"
