"""A fitted forecaster as bytes, with what its model folder says about it: made where
it was fitted, saved where runs are written, which then needs neither sktime nor
CatBoost.

sktime saves an estimator as a zip of two pickles, ``_metadata`` (its class) and
``_obj`` (the estimator), which ``sktime.base.load`` reads, as sktime's MLflow flavor
and tssweep's pyfunc loader do (``model.zip`` of a model folder,
:func:`tssweep.tracking.models.save_forecaster`). :func:`pack_forecaster` makes both
(sktime's in-memory ``save()``) where the forecaster is fitted, which pickling it to
send it would cost anyway; :meth:`PackedForecaster.write` writes the zip. A sweep's writer process
(:mod:`tssweep.tracking.writer`) so never unpickles a pipeline, and never imports
what a pipeline is made of: about 1.8 s of CPU a sweep, on the core the training
shares with it.

No mlflow here: a sweep's own process packs.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tssweep.tracking import serving


@dataclass(frozen=True)
class PackedForecaster:
    """A fitted sktime forecaster pickled as sktime saves it, and what its MLmodel
    describes: the ``target``'s name, the ``steps`` ahead it was fitted for, a panel's
    ``series`` (None for one series), the regressors ``exog``, and whether its pickle
    holds an estimator of tssweep's own (``made_with_tssweep``: the package then
    travels with the model)."""

    pickled_class: bytes
    pickled: bytes
    target: str
    steps: int
    series: tuple[str, ...] | None
    exog: tuple[str, ...]
    made_with_tssweep: bool

    def write(self, path: Path) -> None:
        """Write the forecaster as sktime's ``save(path)`` does: ``path`` + ``.zip``."""
        with zipfile.ZipFile(path.with_name(path.name + ".zip"), "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("_metadata", self.pickled_class)
            archive.writestr("_obj", self.pickled)


def pack_forecaster(fitted) -> PackedForecaster:
    """``fitted`` (an sktime forecaster) as a :class:`PackedForecaster`."""
    face = serving.ForecastModel(fitted)
    series = face.series
    # sktime's own in-memory save: its class and its serialized self, as its zip holds them
    cls, serialized = fitted.save()
    return PackedForecaster(pickle.dumps(cls), serialized, face.target, face.fitted_steps,
                            None if series is None else tuple(series), tuple(face.exog),
                            _made_with_tssweep(fitted))


def _made_with_tssweep(fitted) -> bool:
    """Whether the pipeline holds an estimator of tssweep's own (global pooling's
    :class:`tssweep.model.GlobalReduction`), which its pickle needs to load."""
    parts = [fitted, *fitted.get_params(deep=True).values()]
    return any(type(part).__module__.startswith("tssweep.") for part in parts)
