"""The ``hparams_search`` config group's Python side: a search tries only what can work.

``conf/hparams_search/<name>.yaml`` presets name :func:`drop_inapplicable` as their
sweeper's ``search_space_filter``: before the first trial, the preprocessing choices
that cannot transform the dataset's series (log, Box-Cox or multiplicative steps on a
series with zeros or negatives) are left out of the space, with one line saying which
and why, so no trial is spent failing on them.
"""

from __future__ import annotations

import logging
import warnings

import pandas as pd
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from tssweep import dataset, preprocess
from tssweep.errors import BadInput

log = logging.getLogger(__name__)


def drop_inapplicable(config: DictConfig, distributions: dict) -> dict:
    """``distributions`` with the ``preprocess`` choices that break the series left out.

    ``config`` is the sweep's config. A classification dataset, a searched dataset
    (each job checks its own) or a fixed preprocessing leave the space as it is.
    """
    from optuna.distributions import CategoricalDistribution

    searched = distributions.get("preprocess")
    if not isinstance(searched, CategoricalDistribution) or \
            not _applies(config, [name.lstrip("+~") for name in distributions]):
        return distributions
    kept, dropped, why = _narrow(config, [str(c) for c in searched.choices])
    if dropped:
        log.warning("Left out of the search space, as they cannot transform dataset=%s%s: %s",
                    _dataset(config), why, _reasons(dropped))
    return {**distributions, "preprocess": CategoricalDistribution([c for c in searched.choices
                                                                    if str(c) in kept])}


def refuse_if_nothing_applies(config: DictConfig, distributions: dict) -> None:
    """Stop a search none of whose ``preprocess`` choices can transform the data; the
    sweep callback calls it on the parsed search space, before any run exists."""
    from optuna.distributions import CategoricalDistribution

    searched = distributions.get("preprocess")
    if isinstance(searched, CategoricalDistribution) and \
            _applies(config, [name.lstrip("+~") for name in distributions]):
        _narrow(config, [str(c) for c in searched.choices])


def _applies(config: DictConfig, searched_keys: list[str]) -> bool:
    """Whether the filter has work to do: a forecasting dataset that is not searched."""
    return config.dataset.task == "forecasting" and \
        not any(key == "dataset" or key.startswith("dataset.") for key in searched_keys)


def _narrow(config: DictConfig, options: list[str]) -> tuple[list[str], dict[str, str], str]:
    """The options that can transform the sweep's series, those that cannot (with why),
    and a note on the series; raises when none is left."""
    series = dataset.load_series(config.dataset)
    kept, dropped = applicable_preprocessing(config, options, series)
    low = float(series.min())
    why = f" (its minimum is {low:g}; log, Box-Cox and multiplicative steps need a series > 0)" \
        if low <= 0 else ""
    if not kept:
        raise BadInput("hydra.sweeper.params.preprocess", options,
                       f"no choice can transform dataset={_dataset(config)}{why}: {_reasons(dropped)}.",
                       "none, detrend, deseasonalize, difference (no log, Box-Cox or "
                       "multiplicative steps)")
    return kept, dropped, why


def _dataset(config: DictConfig) -> str:
    return str(config.hydra.runtime.choices.get("dataset", "?"))


def applicable_preprocessing(config: DictConfig, options: list[str],
                             series: pd.Series) -> tuple[list[str], dict[str, str]]:
    """Split preprocess ``options`` into those that can transform ``series`` and those
    that cannot (option -> why), each composed from the sweep's ``config`` as its jobs
    will be."""
    loader = GlobalHydra.instance().config_loader()
    fixed = [o.input_line for o in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
             if not o.is_sweep_override() and o.key_or_group != "preprocess"]
    kept: list[str] = []
    dropped: dict[str, str] = {}
    for option in options:
        job_cfg = loader.load_sweep_config(config, [*fixed, f"preprocess={option}"])
        with warnings.catch_warnings():  # sktime's notices on building forecasters: jobs log them
            warnings.simplefilter("ignore", FutureWarning)
            broken = preprocess.breaking_step(job_cfg.preprocess, series)
        if broken is None:
            kept.append(option)
        else:
            dropped[option] = f"step {broken[0]!r}: {broken[1]}"
    return kept, dropped


def _reasons(dropped: dict[str, str]) -> str:
    return "; ".join(f"preprocess={option} ({why})" for option, why in dropped.items())
