"""What an Optuna study's values mean, so that a resume cannot mix in another setup's.

A trial's value (a backtest mase, a cross-validated accuracy) means something only with
the fixed part of the config behind it: the task, the data, the horizon and the folds,
the metric. The first sweep on a study stores that identity in the study's user
attributes (``tssweep.identity``, Optuna's own place for it) when it creates the study;
every later sweep on it (a resume, or another process sharing it) must bring the same
identity, or it stops before any MLflow run or trial exists, naming the keys that
differ. The sweep callback runs the check and shows the identity on the parent run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from omegaconf import DictConfig, OmegaConf

from tssweep import shared_study
from tssweep.errors import BadInput
from tssweep.redact import redact_uri

log = logging.getLogger(__name__)

IDENTITY_ATTR = "tssweep.identity"
# the config keys that give a value its meaning, by task, besides the task, the data
# and the metric; keys the sweep varies are left out
_KEYS = {
    "forecasting": ("dataset.target", "dataset.horizon", "dataset.seasonal_period",
                    "dataset.backtest.folds", "dataset.backtest.step"),
    # the seed draws the stratified cross-validation folds
    "classification": ("dataset.cv.folds", "seed"),
}


def of_sweep(config: DictConfig, swept_keys: Iterable[str]) -> dict[str, str]:
    """The identity of the sweep's config: ``{key: value}`` as strings.

    The data are loaded once to fingerprint them, as each job does (``data.fingerprint``
    on its run): a different CSV file, or the same file changed, is a different setup.
    """
    from tssweep import dataset

    swept = {key.lstrip("+~") for key in swept_keys}
    task_cfg = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    task = str(task_cfg.dataset.task)
    metric = task_cfg.optimized_metric
    metric = OmegaConf.to_container(metric, resolve=True) if OmegaConf.is_config(metric) else metric
    identity = {"dataset.task": task,
                "dataset": str(config.hydra.runtime.choices.get("dataset")),
                "optimized_metric": metric if isinstance(metric, str) else ",".join(metric)}
    for key in _KEYS.get(task, ()):
        value = OmegaConf.select(task_cfg, key, default=None)
        if value is not None:
            identity[key] = str(value)
    if not any(key == "dataset" or key.startswith("dataset.") for key in swept):
        if task == "classification":
            X_train, y_train, _, _ = dataset.load_panel(task_cfg.dataset)
            identity["data.fingerprint"] = dataset.fingerprint(X_train, y_train)
        else:
            identity["data.fingerprint"] = dataset.fingerprint(dataset.load_series(task_cfg.dataset))
    return {key: value for key, value in identity.items() if key not in swept}


def check_study(storage: str, study_name: str, identity: dict[str, str],
                directions: Sequence[str]) -> None:
    """Create the study with ``identity``, or refuse a study that holds another one.

    Under the study's lock, so two processes starting one study agree on it.
    """
    import optuna

    with shared_study.lock(storage, study_name):
        try:
            opened = shared_study.open_storage(storage)
            try:
                study = optuna.load_study(study_name=study_name, storage=opened)
            except KeyError:  # a new study: it takes this sweep's identity
                study = optuna.create_study(study_name=study_name, storage=opened,
                                            directions=list(directions))
                study.set_user_attr(IDENTITY_ATTR, identity)
                return
        except BadInput:
            raise
        except Exception as err:  # SQLAlchemy and driver errors
            raise BadInput("hydra.sweeper.storage", redact_uri(storage),
                           f"cannot be opened ({type(err).__name__}: {str(err).splitlines()[0]}).",
                           "an Optuna storage URL such as sqlite:///outputs/optuna.db") from None
        stored = study.user_attrs.get(IDENTITY_ATTR)
        if stored is None:  # made before identities were kept, or by another tool
            log.warning("Study %s holds no record of its setup; it is taken to be this run's.",
                        study_name)
            study.set_user_attr(IDENTITY_ATTR, identity)
            stored = identity
        differ = [key for key in sorted(set(stored) | set(identity)) if stored.get(key) != identity.get(key)]
        if differ:
            shown = "; ".join(f"{key}: the study has {stored.get(key, '(unset)')}, this run "
                              f"{identity.get(key, '(unset)')}" for key in differ)
            raise BadInput("hydra.sweeper.study_name", study_name,
                           f"this study holds values of another setup ({shown}), which cannot "
                           "be compared with this run's.",
                           f"a new study for this setup, e.g. hydra.sweeper.study_name="
                           f"{study_name}-2, or the study's own settings")
        stored_directions = [d.name.lower() for d in study.directions]
        if stored_directions != list(directions):
            raise BadInput("hydra.sweeper.direction", list(directions),
                           f"study {study_name!r} was created to {stored_directions}.",
                           "the study's directions, or a new hydra.sweeper.study_name")
