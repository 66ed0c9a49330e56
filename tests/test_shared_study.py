"""One study, several processes: who still searches it, and the lock around it, on a
real SQLite study."""

import time

import optuna
import pytest

from tssweep import shared_study


@pytest.fixture
def study(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    return storage, optuna.create_study(study_name="shared", storage=storage)


def test_the_last_process_to_stop_is_the_one_that_closes(study):
    storage, opened = study
    assert shared_study.other_searches(storage, "shared") == 0
    shared_study.mark_search(opened, done=False)  # this process: never counted as "other"
    assert shared_study.other_searches(storage, "shared") == 0
    opened.set_user_attr(f"{shared_study.SEARCH_ATTR_PREFIX}elsewhere-1", {"beat": time.time(), "done": False})
    assert shared_study.other_searches(storage, "shared") == 1  # even between two of its batches
    opened.set_user_attr(f"{shared_study.SEARCH_ATTR_PREFIX}elsewhere-1", {"beat": time.time(), "done": True})
    assert shared_study.other_searches(storage, "shared") == 0


def test_a_process_killed_outright_stops_counting_after_the_grace_period(study):
    storage, opened = study
    stale = time.time() - shared_study.GRACE_SECONDS - 1
    opened.set_user_attr(f"{shared_study.SEARCH_ATTR_PREFIX}killed-2", {"beat": stale, "done": False})
    assert shared_study.other_searches(storage, "shared") == 0
    opened.ask()  # a trial RUNNING in some process still counts
    assert shared_study.other_searches(storage, "shared") == 1


def test_no_study_or_no_storage_means_nobody_else(tmp_path):
    assert shared_study.other_searches(f"sqlite:///{tmp_path}/none.db", "absent") == 0


def test_a_sqlite_lock_makes_the_databases_folder_but_not_its_parents(tmp_path):
    with shared_study.lock(f"sqlite:///{tmp_path}/outputs/optuna.db", "s"):
        assert (tmp_path / "outputs" / "optuna.db.lock").is_file()
    with shared_study.lock(f"sqlite:///{tmp_path}/missing/deeper/optuna.db", "s"):
        assert not (tmp_path / "missing").exists()
