"""The ``hparams_search`` config group's Python side: a search tries only what can work.

``conf/hparams_search/<name>.yaml`` presets name :func:`drop_inapplicable` as their
sweeper's ``search_space_filter``: before the first trial, what cannot work on the
dataset's series is left out of the space, with one line saying what and why, so no
trial is spent failing on it: preprocessing choices that cannot transform the series
(log, Box-Cox or multiplicative steps on a series with zeros or negatives), and
reduction windows longer than the first backtest fold can hold (a short series such as
shampoo_sales). The sweep callback runs :func:`refuse_if_nothing_applies` first, so a
search with nothing left stops before any run exists.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from tssweep import dataset, forecast_evaluation, logs, model, preprocess
from tssweep.bookkeeping import to_yaml
from tssweep.errors import BadInput

log = logging.getLogger(__name__)


def drop_inapplicable(config: DictConfig, distributions: dict) -> dict:
    """``distributions`` without what cannot work on the sweep's series: ``preprocess``
    choices that break it, and reduction windows longer than its first backtest fold
    can hold (one line says what went and why).

    ``config`` is the sweep's config. A classification dataset or a searched dataset
    (each job checks its own) leave the space as it is.
    """
    narrowed, dropped = _narrowed(config, distributions)
    for what in dropped:
        log.warning("Left out of the search space, as they cannot work on dataset=%s: %s",
                    _dataset(config), what)
    return narrowed


def refuse_if_nothing_applies(config: DictConfig, distributions: dict) -> None:
    """Stop a search with nothing left to try on the data (every ``preprocess`` choice
    breaks the series, or every window is too long); the sweep callback calls it on the
    parsed search space, before any run exists."""
    _narrowed(config, distributions)


# The callback checks the space, then the sweeper narrows the same one, in the same
# process: the data are loaded and each choice composed and fitted once.
_NARROWED: dict[tuple, tuple[dict, list[str]]] = {}


def _narrowed(config: DictConfig, distributions: dict) -> tuple[dict, list[str]]:
    """The space narrowed to the data, and a line for each narrowing; raises when
    nothing is left."""
    logs.route_warnings()  # the choices are fitted here, before any job routes them
    if not _applies(config, list(distributions)):
        return distributions, []
    key = (to_yaml(config.dataset, resolve=True), tuple(config.hydra.overrides.task),
           repr(sorted(distributions.items())))
    if key not in _NARROWED:
        series = dataset.load_series(config.dataset)
        narrowed, dropped = distributions, []
        for narrow in (_narrow_preprocess, _narrow_window):
            narrowed, what = narrow(config, narrowed, series)
            dropped += [what] if what else []
        _NARROWED[key] = narrowed, dropped
    return _NARROWED[key]


def _applies(config: DictConfig, searched_keys: list[str]) -> bool:
    """Whether there is work to do: a forecasting dataset that is not searched."""
    keys = [key.lstrip("+~") for key in searched_keys]
    return config.dataset.task == "forecasting" and \
        not any(key == "dataset" or key.startswith("dataset.") for key in keys)


def _narrow_preprocess(config: DictConfig, distributions: dict,
                       series: pd.Series) -> tuple[dict, str]:
    """The ``preprocess`` choices that can transform ``series``, and what went."""
    from optuna.distributions import CategoricalDistribution

    searched = distributions.get("preprocess")
    if not isinstance(searched, CategoricalDistribution):
        return distributions, ""
    options = [str(c) for c in searched.choices]
    kept, dropped = applicable_preprocessing(config, options, series)
    low = float(np.nanmin(np.asarray(series, dtype=float)))  # a panel's: over every series
    why = f" (its minimum is {low:g}; log, Box-Cox and multiplicative steps need a series > 0)" \
        if low <= 0 else ""
    reasons = _reasons(dropped)
    if not kept:
        raise BadInput("hydra.sweeper.params.preprocess", options,
                       f"no choice can transform dataset={_dataset(config)}{why}: {reasons}.",
                       "none, detrend, deseasonalize, difference (no log, Box-Cox or "
                       "multiplicative steps)")
    narrowed = CategoricalDistribution([c for c in searched.choices if str(c) in kept])
    return {**distributions, "preprocess": narrowed}, reasons + why if dropped else ""


def _narrow_window(config: DictConfig, distributions: dict, series: pd.Series) -> tuple[dict, str]:
    """``model.window_length`` up to the longest window the first backtest fold holds."""
    from optuna.distributions import IntDistribution

    searched = distributions.get("model.window_length")
    if not isinstance(searched, IntDistribution) or config.model.get("task") != "forecasting":
        return distributions, ""
    if dataset.is_panel(series):  # a series too short is named first
        forecast_evaluation.check_panel(series, config.dataset)
    else:
        forecast_evaluation.make_splitter(len(series), config.dataset)
    points = forecast_evaluation.first_training_points(dataset.shortest_length(series), config.dataset)
    horizon = int(config.dataset.horizon)
    # a searched strategy may draw direct, whose windows are shorter
    strategy = "direct" if "model.strategy" in distributions else str(config.model.strategy)
    longest = model.longest_window(strategy, points, horizon)
    if searched.high <= longest:
        return distributions, ""
    why = (f"the first backtest fold trains on {points} points, which holds windows up to "
           f"{longest} with the {strategy} strategy and horizon {horizon}")
    if searched.low > longest:
        raise BadInput("hydra.sweeper.params.model.window_length",
                       f"{searched.low}..{searched.high}", f"no window fits dataset={_dataset(config)}: {why}.",
                       f"windows from 1 to {longest}, or fewer backtest folds")
    high = searched.low + (longest - searched.low) // searched.step * searched.step
    narrowed = IntDistribution(searched.low, high, log=searched.log, step=searched.step)
    return ({**distributions, "model.window_length": narrowed},
            f"model.window_length above {high} ({why})")


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
