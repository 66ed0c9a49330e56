"""What a study's values mean: stored when the study is created, compared on resume."""

import optuna
import pytest

from tssweep.errors import BadInput
from tssweep.study_identity import IDENTITY_ATTR, check_study

AIRLINE = {"dataset.task": "forecasting", "dataset": "airline", "optimized_metric": "mase",
           "dataset.horizon": "12", "data.fingerprint": "87553b12a6318146"}


def test_a_new_study_takes_the_identity_and_the_same_one_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    check_study(storage, "s", AIRLINE, ["minimize"])
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.user_attrs[IDENTITY_ATTR] == AIRLINE and study.direction.name == "MINIMIZE"
    check_study(storage, "s", dict(AIRLINE), ["minimize"])  # a resume: nothing to say


def test_another_setup_is_refused_naming_every_key_that_differs(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    check_study(storage, "s", AIRLINE, ["minimize"])
    other = {**AIRLINE, "dataset.horizon": "6", "data.fingerprint": "0000", "dataset.target": "y"}
    with pytest.raises(BadInput) as refused:
        check_study(storage, "s", other, ["minimize"])
    message = str(refused.value)
    assert message.startswith("hydra.sweeper.study_name='s': this study holds values of another setup")
    assert "dataset.horizon: the study has 12, this run 6" in message
    assert "data.fingerprint: the study has 87553b12a6318146, this run 0000" in message
    assert "dataset.target: the study has (unset), this run y" in message
    assert "hydra.sweeper.study_name=s-2" in message
    with pytest.raises(BadInput, match="study 's' was created to \\['minimize'\\]"):
        check_study(storage, "s", AIRLINE, ["maximize"])


def test_a_study_from_before_identities_adopts_this_runs(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    optuna.create_study(study_name="old", storage=storage)
    check_study(storage, "old", AIRLINE, ["minimize"])
    assert optuna.load_study(study_name="old", storage=storage).user_attrs[IDENTITY_ATTR] == AIRLINE
