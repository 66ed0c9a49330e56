"""The Model Registry: a sweep's winner as a new version, named champion or challenger.

The winner, refitted on all the labelled data, is logged as a LoggedModel of the
sweep's parent (or of a single run that asked for it) and registered as a new version
of ``tracking.registry.name`` (``<experiment>-<dataset>`` by default, e.g.
``tssweep-airline``). Its tags say where it came from (the parent, the child whose
config won, its overrides), what it was scored on (the data fingerprint and the
evaluation settings, as :data:`tssweep.report.EVALUATION` names them) and its score.

The alias ``champion`` moves to the new version only when there is no champion yet, or
when it beats the champion on the same data, the same evaluation and the same metric;
otherwise the new version is the ``challenger``, and :class:`Registration` says why
(worse, or not comparable). Scores from different data or evaluations are never
compared. This module also turns what a user types as a model (``models:/<name>@<alias>``,
``models:/<name>/<version>``, ``runs:/<run id>/model``, ``m-<id>``) into a loaded model,
or into one message naming what does not exist.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from mlflow.exceptions import MlflowException
from omegaconf import DictConfig

from tssweep.bookkeeping import to_yaml
from tssweep.errors import BadInput
from tssweep.objectives import greater_is_better
from tssweep.records import Registration
from tssweep.report import EVALUATION
from tssweep.tracking import serving
from tssweep.tracking.models import log_model, save_classifier, save_forecaster
from tssweep.tracking.runs import scored_on
from tssweep.tracking.store import Store

CHAMPION, CHALLENGER = "champion", "challenger"
# the run whose config won: a sweep's child, or the single run itself
SOURCE_RUN_TAG = "tssweep.source_run"
PARENT_RUN_TAG = "tssweep.parent_run"
OVERRIDES_TAG = "tssweep.overrides"
METRIC_TAG = "tssweep.metric"
SCORE_TAG = "tssweep.score"
# what a champion and a newcomer must share to be compared: the metric, then the data
# and the evaluation settings
_COMPARED_ON = (METRIC_TAG, *EVALUATION)
LOGGED_NAME = "winner"
# params of a run that say where it ran and how it was tracked and reported, not what
# model it fitted: two runs that differ only in these fitted the same model
_NOT_THE_MODEL = ("paths.", "tracking.", "hydra.", "summary.", "cluster.")
URI_FORMS = ("models:/<name>@<alias>, models:/<name>/<version>, runs:/<run id>/model "
             "or m-<logged model id>")


def registered_name(tracking_cfg: DictConfig, dataset_name: str) -> str:
    """``tracking.registry.name``, or ``<experiment>-<dataset>``."""
    configured = tracking_cfg.registry.get("name")
    return str(configured) if configured else f"{tracking_cfg.experiment}-{dataset_name}"


def already_registered(store: Store, name: str, run, metric: str) -> Registration | None:
    """The version of ``name`` that holds the winner ``run`` already, or None: one
    registered from ``run`` itself (a resumed search whose best trial did not change),
    or from an earlier run of the same model (the same sweep run again): the same
    params but for where it ran and how it was tracked (:data:`_NOT_THE_MODEL`), and
    the same score of ``metric`` on the same data and evaluation. Such a winner is not
    refitted, nor registered again."""
    client = store.client
    score = run.data.metrics.get(metric)
    scored = _scored(run, metric) if score is not None else None
    try:
        found = client.search_model_versions(
            f"name = '{_quoted(name)}' and tags.`{SOURCE_RUN_TAG}` = '{run.info.run_id}'")
        same_score = client.search_model_versions(
            f"name = '{_quoted(name)}' and tags.`{SCORE_TAG}` = '{scored[SCORE_TAG]}'") if scored else []
    except MlflowException:  # no such model yet
        return None
    if found:
        return _holder(store, name, max(found, key=lambda v: int(v.version)),
                       "already registered from the same run; nothing new to compare")
    for version in sorted(same_score, key=lambda v: -int(v.version)):
        if any(version.tags.get(key) != value for key, value in scored.items()):
            continue
        try:
            source = client.get_run(version.tags[SOURCE_RUN_TAG])
        except (KeyError, MlflowException):  # its run deleted since: nothing to compare with
            continue
        if _the_model(source.data.params) == _the_model(run.data.params):
            return _holder(store, name, version,
                           f"the same model as version {version.version} (the same config, "
                           f"{metric} {float(score):.4f} on the same data and evaluation, from "
                           f"{source.info.run_name}); not registered again")
    return None


def _scored(run, metric: str) -> dict[str, str]:
    """What a version records of the score of ``run`` that it holds: the metric, the
    score, the data and the evaluation settings (the task's own)."""
    return {METRIC_TAG: metric, SCORE_TAG: repr(float(run.data.metrics[metric])),
            **{key: value for key, value in scored_on(run).items() if value}}


def _holder(store: Store, name: str, version, reason: str) -> Registration:
    """The existing ``version`` of ``name`` as a winner's registration."""
    alias = CHAMPION if _aliases(store, name).get(CHAMPION) == str(version.version) else CHALLENGER
    return Registration(name, int(version.version), alias, reason, _ui_path(name, version.version))


def _the_model(params: dict[str, str]) -> dict[str, str]:
    """A run's params that say what model it fitted: all but where it ran and how it was
    tracked and reported."""
    return {key: value for key, value in params.items() if not key.startswith(_NOT_THE_MODEL)}


def publish(store: Store, run_id: str, winner_run_id: str, final, config: DictConfig, name: str,
            metric: str, what: str) -> Registration:
    """Log ``final`` (the winner's pipeline refitted on all the labelled data) as a
    LoggedModel of ``run_id`` and register it under ``name``, champion or challenger.

    ``winner_run_id`` is the run whose config and score won, ``config`` that config
    (saved beside the model as ``config.yaml``; the LoggedModel's params are the
    winner's), ``what`` won (``sweep airline · preprocess ×4``, for the description);
    ``final`` has ``task``, ``fitted``, ``points`` (what it was fitted on) and, for
    classification, ``labels``.
    """
    winner = store.client.get_run(winner_run_id)
    fitted_on = "labelled series" if final.task == "classification" else "points"
    description = (f"Best of {what} by {metric} = {winner.data.metrics[metric]:.4f}, refitted on all "
                   f"{final.points} {fitted_on}.")

    tags = {SOURCE_RUN_TAG: winner.info.run_id, PARENT_RUN_TAG: run_id,
            OVERRIDES_TAG: winner.data.tags.get(OVERRIDES_TAG, ""),
            "data.fitted_on": str(final.points), "tssweep.task": final.task, **_scored(winner, metric)}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model"
        if final.task == "classification":
            save_classifier(final.fitted, path, final.labels)
        else:
            save_forecaster(final.fitted, path)
        (path / "config.yaml").write_text(to_yaml(config, resolve=True))
        model_id = log_model(store, run_id, path, name=LOGGED_NAME, tags=tags, params=winner.data.params)
    return register(store, name, model_id, run_id, tags, description)


def register(store: Store, name: str, model_id: str, run_id: str, tags: dict[str, str],
             description: str) -> Registration:
    """A new version of ``name`` from the LoggedModel ``model_id``, given the alias
    ``champion`` if it beats the current one on the same data and evaluation, else
    ``challenger``."""
    client = store.client
    try:
        client.create_registered_model(name, description="Sweep winners registered by tssweep; "
                                       "the alias champion is the best on its data and evaluation.")
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    champion = _by_alias(store, name, CHAMPION)
    # the LoggedModel's own location as the source: MLflow would resolve "models:/<id>"
    # through the global tracking URI, not this client's (the embedded store's
    # tracking.uri is not in the environment)
    version = client.create_model_version(name, client.get_logged_model(model_id).artifact_location,
                                          run_id=run_id, tags=tags, description=description,
                                          model_id=model_id)
    alias, reason = _standing(tags, champion)
    client.set_registered_model_alias(name, alias, version.version)
    return Registration(name, int(version.version), alias, reason, _ui_path(name, version.version))


def _standing(tags: dict[str, str], champion) -> tuple[str, str]:
    """(alias, why) of a newcomer with ``tags`` against the current ``champion``."""
    if champion is None:
        return CHAMPION, "the first champion"
    metric = tags[METRIC_TAG]
    theirs = champion.tags
    differs = [key for key in _COMPARED_ON if str(theirs.get(key, "")) != str(tags.get(key, ""))]
    if differs:
        what = ("another metric" if METRIC_TAG in differs else
                "other data" if "data.fingerprint" in differs else "another evaluation")
        details = ", ".join(f"{key} {theirs.get(key) or '-'} -> {tags.get(key) or '-'}" for key in differs)
        return CHALLENGER, (f"not comparable with the champion (version {champion.version}): "
                            f"scored on {what} ({details}), so it does not take the champion's place")
    new, old = float(tags[SCORE_TAG]), float(theirs[SCORE_TAG])
    higher = greater_is_better(metric)
    beats = (new > old if higher else new < old) and not math.isclose(new, old)
    shown = f"{metric} {new:.4f} against {old:.4f} for version {champion.version}"
    if beats:
        return CHAMPION, f"beats the champion on the same data and evaluation ({shown})"
    return CHALLENGER, f"does not beat the champion on the same data and evaluation ({shown})"


def _by_alias(store: Store, name: str, alias: str):
    try:
        return store.client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _aliases(store: Store, name: str) -> dict[str, str]:
    """alias -> version of a registered model."""
    return {alias: str(version) for alias, version in store.client.get_registered_model(name).aliases.items()}


def _ui_path(name: str, version) -> str:
    from urllib.parse import quote

    return f"/#/models/{quote(name, safe='')}/versions/{version}"


def _quoted(text: str) -> str:
    return text.replace("'", "\\'")


def model_uri(store: Store, text: str) -> str:
    """What the user typed as a model, checked against the store (see :func:`resolve`)."""
    return resolve(store, text)[0]


def resolve(store: Store, text: str) -> tuple[str, str]:
    """What the user typed as a model: ``(its URI, where its files are)``, asked of this
    store's client, or one :class:`BadInput` naming the model, version, alias, run or
    logged model that does not exist. (MLflow's own resolution of ``models:/`` URIs and
    of a run's LoggedModel goes through the global tracking URI, which the embedded
    store's ``tracking.uri`` is not.)"""
    client = store.client
    typed = str(text).strip()  # what messages show
    text = f"models:/{typed}" if typed.startswith("m-") else typed
    if text.startswith("runs:/"):
        run_id, _, name = text.removeprefix("runs:/").partition("/")
        try:
            run = client.get_run(run_id)
        except MlflowException:
            raise BadInput("model", typed, f"no run {run_id!r} in this store ({store.uri}).",
                           URI_FORMS) from None
        for output in run.outputs.model_outputs if run.outputs else []:
            logged = client.get_logged_model(output.model_id)
            if logged.name == (name or "model"):
                return text, logged.artifact_location
        raise BadInput("model", typed, f"run {run_id!r} logged no model (tracking.log_models=none?).",
                       URI_FORMS)
    if not text.startswith("models:/"):
        raise BadInput("model", typed, "not a model URI.", URI_FORMS)
    reference = text.removeprefix("models:/")
    if reference.startswith("m-"):
        try:
            return text, client.get_logged_model(reference).artifact_location
        except MlflowException:
            raise BadInput("model", typed, f"no logged model {reference!r} in this store ({store.uri}).",
                           URI_FORMS) from None
    name, alias, version = _split_reference(reference)
    try:
        client.get_registered_model(name)
    except MlflowException:
        names = sorted(model.name for model in client.search_registered_models())
        raise BadInput("model", typed, f"no registered model {name!r} in this store ({store.uri}).",
                       ", ".join(f"models:/{n}@champion" for n in names) or
                       "none yet: a sweep (-m) registers its winner") from None
    if alias is not None:
        found = _by_alias(store, name, alias)
        if found is None:
            aliases = sorted(_aliases(store, name))
            raise BadInput("model", typed, f"{name!r} has no version with the alias {alias!r}.",
                           ", ".join(f"models:/{name}@{a}" for a in aliases) or f"models:/{name}/<version>")
    else:
        try:
            found = client.get_model_version(name, version)
        except MlflowException:
            raise BadInput("model", typed, f"{name!r} has no version {version}.",
                           f"models:/{name}/<version> for an existing version, or models:/{name}@champion") from None
    # versions registered from "models:/m-..." before their source was the model's location
    return text, (resolve(store, found.source)[1] if found.source.startswith("models:/") else found.source)


def _split_reference(reference: str) -> tuple[str, str | None, str | None]:
    """``name@alias`` or ``name/version`` -> (name, alias, version)."""
    if "@" in reference:
        name, alias = reference.rsplit("@", 1)
        return name, alias, None
    if "/" in reference:
        name, version = reference.rsplit("/", 1)
        if version.isdigit():
            return name, None, version
        raise BadInput("model", f"models:/{reference}", f"{version!r} is not a version number.", URI_FORMS)
    raise BadInput("model", f"models:/{reference}", "names a model but no version or alias.",
                   f"models:/{reference}@champion or models:/{reference}/<version>")


def refusal(err: BaseException) -> str | None:
    """What a model's pyfunc refused in its input (the 400 of a served model: an
    MLflow INVALID_PARAMETER_VALUE), or None for any other error."""
    from mlflow.exceptions import MlflowException

    if isinstance(err, MlflowException) and err.error_code == "INVALID_PARAMETER_VALUE":
        return err.message
    return None


def load(store: Store, location: str, dst: Path):
    """The model whose files are at ``location`` (see :func:`resolve`), downloaded into
    ``dst`` and loaded as a pyfunc: ``(model, its raw face)``, the face a
    :class:`~tssweep.tracking.serving.ForecastModel` or the classifier's ``PythonModel``."""
    import mlflow.artifacts
    import mlflow.pyfunc

    local = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(dst), tracking_uri=store.uri)
    model = mlflow.pyfunc.load_model(local)
    # models logged before the loader stood alone name it by its package path
    if model.loader_module in (serving.LOADER_MODULE, serving.__name__):
        return model, serving.ForecastModel(model.get_raw_model())
    return model, model.unwrap_python_model()
