"""The ``preprocess`` config group: what the data go through before the model.

``conf/preprocess/<name>.yaml`` lists sktime transformers under ``steps`` (in order)
and the ``tasks`` it serves. For forecasting they are target transforms inside a
``TransformedTargetForecaster``: the model learns on the transformed series and its
forecasts are inverse-transformed back to the original scale before anything is
scored. For classification they turn each series into features (``output:
features``), or leave the series as they are (``raw``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sktime.forecasting.base import BaseForecaster
from sktime.forecasting.compose import TransformedTargetForecaster

from tssweep.errors import BadInput, instantiate


def build_transformers(preprocess_cfg: DictConfig) -> list[tuple[str, object]]:
    """Instantiate ``preprocess_cfg.steps`` into named, unfitted sktime transformers."""
    return [(name, instantiate(node, _convert_="all")) for name, node in preprocess_cfg.steps.items()]


def feature_transformer(preprocess_cfg: DictConfig):
    """The configured steps as one sktime panel transformer (a chain when several), or
    None for ``raw``: the series go to the model as they are."""
    transformers = [transformer for _, transformer in build_transformers(preprocess_cfg)]
    if not transformers:
        return None
    chain = transformers[0]
    for transformer in transformers[1:]:
        chain = chain * transformer
    return chain


def minirocket(num_kernels: int, random_state: int, multivariate: bool, equal_length: bool):
    """The MiniRocket variant the data need: univariate, multivariate, or unequal length.

    Unequal-length series shorter than MiniRocket's 9-point kernels are padded with 0.
    """
    from sktime.transformations.rocket import (
        MiniRocket,
        MiniRocketMultivariate,
        MiniRocketMultivariateVariable,
    )

    if not equal_length:
        return MiniRocketMultivariateVariable(num_kernels=num_kernels, random_state=random_state,
                                              pad_value_short_series=0.0)
    variant = MiniRocketMultivariate if multivariate else MiniRocket
    return variant(num_kernels=num_kernels, random_state=random_state)


def wrap_forecaster(preprocess_cfg: DictConfig, forecaster: BaseForecaster) -> BaseForecaster:
    """The forecaster behind the configured target transforms (itself when there are none)."""
    transformers = build_transformers(preprocess_cfg)
    if not transformers:
        return forecaster
    return TransformedTargetForecaster(steps=[*transformers, ("forecaster", forecaster)])


def check_applicable(preprocess_cfg: DictConfig, series: pd.Series, option: str) -> None:
    """Fit the transforms once on ``series`` and fail early if they break it.

    A log or Box-Cox transform of a series with zeros or negatives, or a multiplicative
    decomposition of one with zeros, gives infinities or NaNs (or raises) deep inside
    training; checked here it becomes one message naming the preprocessing and the
    offending values, before any model is fitted. ``option`` is the group option
    chosen (``log``), for the message.
    """
    broken = breaking_step(preprocess_cfg, series)
    if broken is not None:
        step, reason = broken
        low = float(np.nanmin(np.asarray(series, dtype=float)))  # a series, or a panel's every one
        needs_positive = " It needs a strictly positive series." if low <= 0 else ""
        raise BadInput(
            "preprocess", option,
            f"step {step!r} cannot transform this series ({reason}; its minimum is {low:g}).{needs_positive}",
            "a preprocessing without log, Box-Cox or multiplicative steps, e.g. none, detrend,"
            " deseasonalize, difference",
        )


def breaking_step(preprocess_cfg: DictConfig, series: pd.Series) -> tuple[str, str] | None:
    """The first step that cannot transform ``series``, with why; None if all can."""
    transformed = series
    for name, transformer in build_transformers(preprocess_cfg):
        try:
            with np.errstate(all="ignore"):  # the infinities are reported, once
                transformed = transformer.fit_transform(transformed)
        except Exception as err:  # whatever the transformer raises, the data is the cause
            return name, f"{type(err).__name__}: {err}"
        if not np.isfinite(np.asarray(transformed, dtype=float)).all():
            return name, "it produced infinite or missing values"
    return None
