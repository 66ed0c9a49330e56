"""The fitted pipelines in MLflow's model format: the one place that saves models."""

from __future__ import annotations

import atexit
import copy
import datetime
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import uuid
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.pyfunc import PythonModel
from mlflow.pyfunc import save_model as save_pyfunc_model
from mlflow.types import ColSpec, Schema

from tssweep import logs
from tssweep.tracking import packing, serving
from tssweep.tracking.store import Store

# sktime's own MLflow flavor, whose loader reads the pickled pipeline
SKTIME_FLAVOR = "mlflow_sktime"
# What a logged pipeline needs to be loaded again, pinned to what trained it; passing
# them spares MLflow's requirement inference, which costs over a second per model.
_MODEL_REQUIREMENTS = ("sktime", "catboost", "statsmodels", "scikit-learn", "pandas", "numpy",
                       "scipy")
# A folder where forecasters' model templates are kept between processes (src/train.py
# puts it under outputs/); unset, each process writes its own and removes it at exit.
TEMPLATES_ENV = "TSSWEEP_MODEL_TEMPLATES"


def save_forecaster(fitted: object, path: Path) -> None:
    """Save a fitted sktime forecaster (or one packed where it was fitted,
    :class:`tssweep.tracking.packing.PackedForecaster`) in MLflow's model format, as
    two flavors of one file.

    ``model.zip`` is the pipeline as sktime's own flavor writes it, so
    ``sktime.utils.mlflow_sktime.load_model`` loads it; the pyfunc face
    (:mod:`tssweep.tracking.serving`) forecasts the steps of a ``step`` column after
    the end of the data it was fitted on, which the signature and the input example
    (steps 1..h of its own horizon) say.

    All but the pipeline is the same for every model of one target and horizon, so it
    is written once (:func:`_forecaster_template`) and copied: MLflow's own writing
    checks each pinned requirement against the installed packages, 86 ms a model, the
    largest cost of a short job after its training.
    """
    packed = fitted if isinstance(fitted, packing.PackedForecaster) else packing.pack_forecaster(fitted)
    # a panel's example rows name a series when its regressors are asked per series
    example_series = packed.series[0] if packed.series is not None and packed.exog else None
    template, described = _forecaster_template(packed.target, packed.steps, packed.series is not None,
                                               packed.made_with_tssweep, packed.exog, example_series)
    shutil.copytree(template, path)
    packed.write(path / serving.PICKLED_MODEL)
    described = copy.deepcopy(described)
    described.model_uuid = uuid.uuid4().hex
    described.utc_time_created = str(datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None))
    described.model_size_bytes = sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
    described.save(str(path / "MLmodel"))


@lru_cache(maxsize=32)
def _forecaster_template(target: str, steps: int, panel: bool, with_package: bool,
                         exog: tuple[str, ...], example_series: str | None) -> tuple[Path, Model]:
    """A forecaster's model folder without its pipeline, and its MLmodel: both flavors,
    the signature of ``target`` (a panel's with its ``series``: optional in, first out;
    the regressors ``exog``, required in), the input example of ``steps`` steps (with
    placeholder regressors of 0.0, for ``example_series`` on a panel that has them),
    the environment files, and as the code :mod:`tssweep.tracking.serving` (alone,
    under its loader name), plus the tssweep package when the pipeline is made with it.

    MLflow's writing checks the pinned requirements against every installed package's
    files, 0.75 s a process. So a template is kept in :data:`TEMPLATES_ENV`'s folder,
    named by a digest of everything it is made of (these arguments, the Python and
    package versions, the loader's source, the package's when it travels), and written
    again only when one of them changes.
    """
    kept = os.environ.get(TEMPLATES_ENV)
    if kept:
        folder = Path(kept) / _template_digest((target, steps, panel, exog, example_series), with_package)
        if not (folder / "model" / "MLmodel").is_file():
            Path(kept).mkdir(parents=True, exist_ok=True)
            writing = Path(tempfile.mkdtemp(prefix=".writing-", dir=kept))
            try:  # whole or not at all; a parallel job that wrote it first wins
                _write_template(writing, target, steps, panel, with_package, exog, example_series)
                writing.rename(folder)
            except OSError:
                if not (folder / "model" / "MLmodel").is_file():
                    raise
            finally:
                shutil.rmtree(writing, ignore_errors=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix="tssweep-model-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _write_template(folder, target, steps, panel, with_package, exog, example_series)
    return folder / "model", Model.load(str(folder / "model" / "MLmodel"))


def _template_digest(arguments: tuple, with_package: bool) -> str:
    """What a template is made of, as a folder name: its other ``arguments``, Python's
    and the pinned packages' versions (MLflow's among them), and the source files it
    copies (the loader; the whole package ``with_package``)."""
    sources = [Path(serving.__file__)]
    if with_package:
        import tssweep

        sources += sorted(Path(tssweep.__file__).parent.rglob("*.py"))
    digest = hashlib.sha256(repr((arguments, with_package, sys.version, version("mlflow"),
                                  _pinned(_MODEL_REQUIREMENTS))).encode())
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()[:20]


def _write_template(folder: Path, target: str, steps: int, panel: bool, with_package: bool,
                    exog: tuple[str, ...], example_series: str | None) -> None:
    """Write the template described in :func:`_forecaster_template` into ``folder``
    (its ``model`` folder)."""
    import tssweep

    loader = folder / f"{serving.LOADER_MODULE}.py"
    shutil.copyfile(serving.__file__, loader)
    series_in = [ColSpec("string", serving.SERIES, required=False)] if panel else []
    series_out = [ColSpec("string", serving.SERIES)] if panel else []
    signature = ModelSignature(
        inputs=Schema([ColSpec("long", serving.STEP), *series_in, *(ColSpec("double", name) for name in exog)]),
        outputs=Schema([*series_out, ColSpec("string", serving.PERIOD), ColSpec("long", serving.STEP),
                        ColSpec("double", target)]))
    described = Model()
    described.add_flavor(SKTIME_FLAVOR, pickled_model=serving.PICKLED_MODEL,
                         sktime_version=version("sktime"), serialization_format="pickle",
                         code="code")
    code = [loader, Path(tssweep.__file__).parent] if with_package else [loader]
    _quietly_save(folder / "model", code=code, loader_module=serving.LOADER_MODULE, mlflow_model=described,
                  signature=signature, input_example=_input_example(steps, exog, example_series))


def _input_example(steps: int, exog: tuple[str, ...], series: str | None) -> pd.DataFrame:
    """Steps 1..``steps``, and for a model with regressors a placeholder 0.0 of each
    (for one series of a panel, named in its ``series`` column)."""
    example = pd.DataFrame({serving.STEP: np.arange(1, steps + 1)})
    if series is not None:
        example[serving.SERIES] = series
    for name in exog:
        example[name] = 0.0
    return example


def save_classifier(fitted: object, path: Path, labels: np.ndarray) -> None:
    """Save a fitted tssweep classifier (preprocessing + model) as an MLflow pyfunc model.

    ``mlflow.pyfunc.load_model("runs:/<run_id>/model").predict(X)`` takes sktime's
    nested DataFrame of series and returns labels; the tssweep package travels with
    the model, so loading needs only the pinned requirements. The signature gives the
    labels' type (``labels``, predicted ones); series in cells have no MLflow type,
    so the input has no schema and no example.
    """
    import tssweep

    with logs.without_schema_hints():
        signature = ModelSignature(inputs=None, outputs=infer_signature(pd.DataFrame({"label": labels})).inputs)
        _quietly_save(path, code=[Path(tssweep.__file__).parent], python_model=_ClassifierModel(fitted),
                      signature=signature)


def _quietly_save(path: Path, code: list[Path], **how) -> None:
    """``mlflow.pyfunc.save_model`` with ``code`` as the model's code (a forecaster's
    loader; the tssweep package a classifier, or a global forecaster, is made of) and
    the pinned requirements."""
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)  # its per-model notice that pickles are code
    try:
        save_pyfunc_model(str(path), code_paths=[str(part) for part in code],
                          pip_requirements=_pinned(_MODEL_REQUIREMENTS), **how)
    finally:
        pyfunc_log.setLevel(level)


def log_model(store: Store, run_id: str, path: Path, name: str = "model",
              tags: dict[str, str] | None = None, params: dict[str, str] | None = None) -> str:
    """Log the model saved at ``path`` as a LoggedModel of the run (named ``model``, so
    ``runs:/<run_id>/model`` finds it), and return its id (``models:/<id>``)."""
    client = store.client
    model = client.create_logged_model(store.experiment_id, name=name, source_run_id=run_id,
                                       tags=tags, params=params)
    try:
        client.log_model_artifacts(model.model_id, str(path))
    except BaseException:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    return model.model_id


@lru_cache(maxsize=None)
def _pinned(packages: tuple[str, ...]) -> list[str]:
    pins = []
    for package in packages:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


class _ClassifierModel(PythonModel):
    """pyfunc face of a fitted classifier: ``predict`` returns labels."""

    # Series of any shape go in, which no MLflow type hint describes; without this, MLflow
    # asks for type hints on stderr at every import (its ChatModel opts out the same way).
    _skip_type_hint_validation = True

    def __init__(self, fitted: object):
        self.fitted = fitted

    def predict(self, context, model_input, params=None):
        return self.fitted.predict(model_input)
