"""Optuna searches end to end (tssweep_optuna sweeper): resume, failures, pruning,
parallel trials, Pareto fronts and refused search spaces, on real SQLite studies."""

import os

import optuna
import pytest

from conftest import runs_of

pytestmark = pytest.mark.slow


def study_of(tmp_path, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/outputs/optuna.db")


def split(runs):
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def artifacts(client, run_id):
    return {item.path for item in client.list_artifacts(run_id)}


def test_a_search_resumes_to_n_trials_under_its_one_parent(train, client, tmp_path):
    train("-m", "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=4")
    study = study_of(tmp_path, "catboost_optuna-airline")
    assert [t.state.name for t in study.trials].count("COMPLETE") + \
        [t.state.name for t in study.trials].count("PRUNED") == 4
    (parent,), children = split(runs_of(client))
    assert len(children) == 4

    train("-m", "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=6")
    study = study_of(tmp_path, "catboost_optuna-airline")
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4, 5]
    (again,), children = split(runs_of(client))
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == [0, 1, 2, 3, 4, 5]
    assert {c.info.run_name for c in children} == {f"trial {n}" for n in range(6)}
    # the whole study is reported on the parent, after the resume too
    assert again.data.metrics["optuna.best_value"] == pytest.approx(study.best_value)
    assert again.data.tags["optuna.best_trial"] == str(study.best_trial.number)
    assert again.data.tags["optuna.best_params.preprocess"] == study.best_params["preprocess"]
    assert again.data.tags["optuna.study_name"] == "catboost_optuna-airline"
    assert {"trials.csv", "optimization_history.png", "param_importances.png",
            "optimization_results.yaml", "summary.md"} <= artifacts(client, parent.info.run_id)
    trials = client.download_artifacts(parent.info.run_id, "trials.csv", str(tmp_path))
    assert len(open(trials).read().strip().splitlines()) == 1 + 6


def test_a_failing_trial_fails_alone_and_the_search_completes(train, client, tmp_path):
    # the grid tries both: a log transform cannot apply to pbs, which holds zeros
    process = train("-m", "hydra/sweeper=tssweep_optuna", "hydra/sweeper/sampler=grid",
                    f"hydra.sweeper.storage=sqlite:///{tmp_path}/outputs/optuna.db",
                    "hydra.sweeper.study_name=failing", "dataset=pbs", "preprocess=choice(log,none)")
    assert process.returncode == 0
    states = {t.params["preprocess"]: t.state.name for t in study_of(tmp_path, "failing").trials}
    assert states == {"log": "FAIL", "none": "COMPLETE"}
    (parent,), children = split(runs_of(client))
    assert {c.data.params["preprocess.name"]: c.info.status for c in children} == \
        {"log": "FAILED", "none": "FINISHED"}
    assert parent.info.status == "FINISHED" and parent.data.metrics["optuna.trials_failed"] == 1


def test_too_many_failures_stop_the_search(train, client, tmp_path):
    process = train("-m", "hydra/sweeper=tssweep_optuna", "hydra/sweeper/sampler=grid",
                    f"hydra.sweeper.storage=sqlite:///{tmp_path}/outputs/optuna.db",
                    "hydra.sweeper.study_name=failing", "hydra.sweeper.max_failure_rate=0.2",
                    "dataset=pbs", "preprocess=choice(log,none)", check=False)
    assert process.returncode == 1
    assert "Search stopped: 1 of 2 trials failed" in process.stderr
    (parent,), _ = split(runs_of(client))
    assert parent.info.status == "FAILED"


def test_hopeless_trials_are_pruned_fold_by_fold(train, client, tmp_path):
    # learning rates down to 1e-7 leave CatBoost near its starting point: hopeless
    train("-m", "hydra/sweeper=tssweep_optuna", "hydra/sweeper/sampler=random",
          "hydra.sweeper.sampler.seed=2", "hydra.sweeper.n_trials=8",
          f"hydra.sweeper.storage=sqlite:///{tmp_path}/outputs/optuna.db",
          "hydra.sweeper.study_name=pruning", "hydra.sweeper.pruner.n_startup_trials=2",
          "hydra.sweeper.pruner.n_warmup_steps=0", "model.learning_rate=tag(log,interval(1e-7,0.3))")
    study = study_of(tmp_path, "pruning")
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned
    for trial in study.trials:  # every trial reported its running score per fold
        assert sorted(trial.intermediate_values) == list(range(len(trial.intermediate_values)))
    assert all(len(t.intermediate_values) < 5 for t in pruned)
    _, children = split(runs_of(client))
    killed = [c for c in children if c.info.status == "KILLED"]
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in killed) == [t.number for t in pruned]
    assert all(c.data.tags["pruned"].startswith("pruned after fold") for c in killed)


def test_parallel_trials_with_joblib_nest_and_share_the_cores(train, client, tmp_path):
    train("-m", "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=4",
          "cluster=joblib", "hydra.sweeper.n_jobs=2", "hydra.launcher.n_jobs=2",
          "model.thread_count=-1")
    (parent,), children = split(runs_of(client))
    assert len(children) == 4 and {c.info.status for c in children} <= {"FINISHED", "KILLED"}
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    threads = str(max(1, (os.cpu_count() or 1) // 2))
    assert {c.data.params["model.thread_count"] for c in children} == {threads}
    assert len(study_of(tmp_path, "catboost_optuna-airline").trials) == 4


def test_the_pareto_preset_yields_a_front(train, client, tmp_path):
    train("-m", "hparams_search=catboost_optuna_pareto", "hydra.sweeper.n_trials=4")
    study = study_of(tmp_path, "catboost_optuna_pareto-airline")
    assert study.metric_names == ["mase", "fit_seconds"] and study.best_trials
    (parent,), children = split(runs_of(client))
    assert len(children) == 4
    assert parent.data.metrics["optuna.pareto_size"] == len(study.best_trials)
    assert {"pareto_front.csv", "pareto_front.png"} <= artifacts(client, parent.info.run_id)


@pytest.mark.parametrize("override, fragment", [
    ("model.dept=int(interval(3,8))", "hydra.sweeper.params.model.dept='int(interval(3,8))': names no key"),
    ("preprocess=choice(log,logg)", "'logg': is not an option of the config group 'preprocess'"),
    ("model.depth=int(interval(8,3))", "hydra.sweeper.params.model.depth='int(interval(8,3))': is not a valid"),
    ("model.l2_leaf_reg=tag(log,interval(0,3.0))", "model.l2_leaf_reg='tag(log,interval(0,3.0))': is not a valid"),
    ("model.learning_rate=tag(log,interval(0,0.3))", "model.learning_rate=0.0: out of range. Allowed: a number in (0, 1]"),
    ("preprocess=choice()", "preprocess"),
    ("hydra.sweeper.storage=sqlite:////nonexistent/dir/optuna.db", "hydra.sweeper.storage="),
])
def test_a_bad_search_stops_before_any_trial(train, client, tmp_path, override, fragment):
    process = train("-m", "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=2", override,
                    check=False)
    assert process.returncode == 1
    assert fragment in process.stderr and "Traceback" not in process.stderr
    # refused by the callback: no run at all; by the sweeper: the parent alone, closed
    experiment = client.get_experiment_by_name("tssweep")
    runs = runs_of(client) if experiment else []
    assert [r.info.status for r in runs] in ([], ["FAILED"])
