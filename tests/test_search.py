"""Optuna searches end to end (tssweep_optuna sweeper): resume, failures, pruning,
parallel trials, Pareto fronts and refused search spaces, on real SQLite studies."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from conftest import FAST, ROOT, runs_of, store_left_alone

pytestmark = pytest.mark.slow


def study_of(tmp_path, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/outputs/optuna.db")


def split(runs):
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def artifacts(client, run_id):
    return {item.path for item in client.list_artifacts(run_id)}


def ran(study):
    """The trials that count: discarded repeats and interrupted trials left out."""
    return [t for t in study.trials if "duplicate_of" not in t.user_attrs
            and "interrupted" not in t.user_attrs]


def settings(trials):
    return [tuple(sorted(t.params.items())) for t in trials]


def test_a_search_resumes_to_n_trials_never_repeating_a_setting(train, client, tmp_path):
    first = train("-m", "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=4")
    # nothing raw on the terminal: not sktime's notice from the space's check on the data
    assert "Warning" not in first.stderr, first.stderr[-3000:]
    study = study_of(tmp_path, "catboost_optuna-airline")
    assert len(ran(study)) == 4 and {t.state.name for t in ran(study)} <= {"COMPLETE", "PRUNED"}
    (parent,), children = split(runs_of(client))
    assert len(children) == 4

    train("-m", "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=9")
    study = study_of(tmp_path, "catboost_optuna-airline")
    trials = ran(study)
    assert len(trials) == 9 and len(set(settings(trials))) == 9  # nine distinct settings
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    (again,), children = split(runs_of(client))
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    numbers = sorted(t.number for t in trials)
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == numbers
    assert {c.info.run_name for c in children} == {f"trial {n}" for n in numbers}
    # the children's logged params are distinct settings too, not just the trial records
    logged = {tuple(c.data.params[k] for k in ("preprocess.name", "model.depth", "model.learning_rate",
                                                "model.l2_leaf_reg", "model.window_length"))
              for c in children}
    assert len(logged) == 9
    # the whole study is reported on the parent, after the resume too
    assert again.data.metrics["optuna.best_value"] == pytest.approx(study.best_value)
    assert again.data.tags["optuna.best_trial"] == str(study.best_trial.number)
    assert again.data.tags["optuna.best_params.preprocess"] == study.best_params["preprocess"]
    assert again.data.tags["optuna.study_name"] == "catboost_optuna-airline"
    # ... with the setup that gives its values their meaning
    assert again.data.tags["study.dataset.horizon"] == "12"
    assert again.data.tags["study.optimized_metric"] == "mase"
    assert again.data.tags["study.data.fingerprint"] == children[0].data.tags["data.fingerprint"]
    assert {"trials.csv", "optimization_history.png", "param_importances.png",
            "optimization_results.yaml", "summary.md"} <= artifacts(client, parent.info.run_id)
    trials_csv = client.download_artifacts(parent.info.run_id, "trials.csv", str(tmp_path))
    assert len(open(trials_csv).read().strip().splitlines()) == 1 + len(study.trials)


def test_trial_0_is_the_config_as_it_stands(train, client, tmp_path):
    train("-m", "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=2", "dataset=lynx")
    first = study_of(tmp_path, "catboost_optuna-lynx").trials[0]
    # lynx's window follows its 10-year cycle; FAST's command-line depth is fixed, not searched
    assert first.params == {"preprocess": "none", "model.learning_rate": 0.1,
                            "model.l2_leaf_reg": 3.0, "model.window_length": 10}
    assert first.user_attrs["model.depth"] == "4" and first.user_attrs["from_config"] is True
    _, children = split(runs_of(client))
    (child,) = [c for c in children if c.data.tags["optuna.trial_number"] == "0"]
    assert child.data.params["model.window_length"] == "10" and child.data.params["preprocess.name"] == "none"
    assert child.data.metrics["mase"] == pytest.approx(first.value)


def test_the_same_command_on_fresh_studies_gives_the_same_trials(train, tmp_path):
    for name in ("first", "second"):
        train("-m", "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=5",
              f"hydra.sweeper.study_name={name}")
    first, second = (ran(study_of(tmp_path, name)) for name in ("first", "second"))
    assert settings(first) == settings(second) and len(set(settings(first))) == 5
    assert [t.value for t in first] == pytest.approx([t.value for t in second])


def test_two_processes_on_one_study_run_n_trials_all_distinct(tmp_path, tracking_uri, client):
    command = [sys.executable, str(ROOT / "src" / "train.py"), "-m", *FAST,
               "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=8",
               "hydra.sweeper.study_name=shared", f"paths.output_dir={tmp_path}/outputs"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    processes = [subprocess.Popen([*command, f"hydra.sweep.dir={tmp_path}/sweep-{n}"], cwd=tmp_path,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for n in (1, 2)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert all("Launching 1 jobs locally" in output for output in outputs)  # both took trials
    # the one that joined a study holding trials drew from a stream of its own
    assert sum("Sampler seeded with" in output for output in outputs) == 1
    trials = ran(study_of(tmp_path, "shared"))
    assert len(trials) == 8 and len(set(settings(trials))) == 8
    (parent,), children = split(runs_of(client))
    assert parent.info.status == "FINISHED"
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == \
        sorted(t.number for t in trials)


def test_a_process_interrupted_while_another_searches_leaves_the_parent_open(tmp_path, tracking_uri, client):
    command = [sys.executable, str(ROOT / "src" / "train.py"), "-m", *FAST, "model.iterations=1000",
               "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=8",
               "hydra.sweeper.study_name=shared", f"paths.output_dir={tmp_path}/outputs"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}

    def start(n):
        return subprocess.Popen([*command, f"hydra.sweep.dir={tmp_path}/sweep-{n}"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first, second = start(1), start(2)
    deadline = time.monotonic() + 120
    while not ((tmp_path / "sweep-1" / "0").is_dir() and (tmp_path / "sweep-2" / "0").is_dir()):
        assert first.poll() is None and second.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)  # until both run a trial
    first.send_signal(signal.SIGINT)
    output = first.communicate(timeout=60)[0]
    assert first.returncode == 130, output[-5000:]
    assert second.poll() is None, "the second search ended before the first was interrupted"
    (parent,), _ = split(runs_of(client))
    assert parent.info.status == "RUNNING"  # the second process still searches under it
    assert second.wait(timeout=600) == 0, second.communicate()[0][-3000:]
    (parent,), children = split(runs_of(client))
    assert parent.info.status == "FINISHED"
    trials = ran(study_of(tmp_path, "shared"))
    assert len(trials) == 8 and len(set(settings(trials))) == 8
    # the child in flight, if the signal did not land between two jobs
    assert parent.data.metrics["n_interrupted"] == sum("interrupted" in c.data.tags for c in children)


def test_a_changed_setup_is_refused_on_resume_before_any_run(train, client, tmp_path):
    train("-m", "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=2")
    (parent,), _ = split(runs_of(client))
    process = train("-m", "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=4",
                    "dataset.horizon=6", check=False)
    assert process.returncode == 1 and "Traceback" not in process.stderr
    assert "hydra.sweeper.study_name='catboost_optuna-airline'" in process.stderr
    assert "dataset.horizon: the study has 12, this run 6" in process.stderr
    assert "hydra.sweeper.study_name=catboost_optuna-airline-2" in process.stderr
    assert len(study_of(tmp_path, "catboost_optuna-airline").trials) == 2  # no new trial
    runs = runs_of(client)  # no new run, and the study's parent as it was
    assert len(runs) == 3 and client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_a_changed_csv_file_is_another_setup(train, client, tmp_path):
    def write(offset):
        (tmp_path / "sales.csv").write_text("month,sales\n" + "".join(
            f"{2015 + i // 12}-{i % 12 + 1:02d},{100 + i + offset * (i % 12)}\n" for i in range(72)))
    csv = ["dataset=csv", "dataset.path=sales.csv", "dataset.time_column=month",
           "dataset.target=sales", "dataset.freq=M", "hparams_search=catboost_optuna"]
    write(0)
    train("-m", *csv, "hydra.sweeper.n_trials=2")
    write(3)  # the same file, new figures
    process = train("-m", *csv, "hydra.sweeper.n_trials=4", check=False)
    assert process.returncode == 1 and "data.fingerprint: the study has" in process.stderr
    assert len(study_of(tmp_path, "catboost_optuna-csv").trials) == 2 and len(runs_of(client)) == 3


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


def test_too_many_failures_stop_the_search_in_one_message(train, client, tmp_path):
    process = train("-m", "hydra/sweeper=tssweep_optuna", "hydra/sweeper/sampler=grid",
                    f"hydra.sweeper.storage=sqlite:///{tmp_path}/outputs/optuna.db",
                    "hydra.sweeper.study_name=failing", "hydra.sweeper.max_failure_rate=0.2",
                    "dataset=pbs", "preprocess=choice(log,none)", check=False)
    assert process.returncode == 1
    assert "Search stopped: 1 of 2 trials failed" in process.stderr
    assert "Last error: BadInput: preprocess='log': step 'log' cannot transform" in process.stderr
    assert "Traceback" not in process.stderr
    (parent,), _ = split(runs_of(client))
    assert parent.info.status == "FAILED"
    full = train("-m", "hydra/sweeper=tssweep_optuna", "hydra/sweeper/sampler=grid",
                 f"hydra.sweeper.storage=sqlite:///{tmp_path}/outputs/optuna.db",
                 "hydra.sweeper.study_name=failing-2", "hydra.sweeper.max_failure_rate=0.2",
                 "dataset=pbs", "preprocess=choice(log,none)", check=False,
                 env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1 and "Traceback" in full.stderr and "SearchStopped" in full.stderr


@pytest.mark.parametrize("dataset, task", [("pbs", "forecasting"), ("unit_test", "classification")])
def test_the_default_preset_runs_on_the_dataset_as_it_stands(train, client, tmp_path, dataset, task):
    process = train("-m", "hparams_search=catboost_optuna", f"dataset={dataset}", "hydra.sweeper.n_trials=6")
    study = study_of(tmp_path, f"catboost_optuna-{dataset}")
    assert len(study.trials) == 6 and "FAIL" not in {t.state.name for t in study.trials}
    preprocessings = {t.params["preprocess"] for t in study.trials}
    if task == "forecasting":  # pbs holds zeros: no log or Box-Cox step was drawn
        assert "Left out of the search space, as they cannot work on dataset=pbs" in process.stdout
        assert "preprocess=log " in process.stdout and "preprocess=boxcox " in process.stdout
        assert not preprocessings & {"log", "boxcox", "log_deseasonalize_detrend"}
        assert all("model.window_length" in t.params for t in study.trials)
    else:  # the classification space: feature preprocessings, no window length
        assert preprocessings <= {"summary", "catch22", "minirocket"}
        assert not any("model.window_length" in t.params for t in study.trials)
        assert study.directions == [optuna.study.StudyDirection.MAXIMIZE]
    _, children = split(runs_of(client))
    assert {c.info.status for c in children} <= {"FINISHED", "KILLED"} and len(children) == 6


def test_windows_the_data_cannot_hold_are_left_out(train, client, tmp_path):
    process = train("-m", "hparams_search=catboost_optuna", "dataset=shampoo_sales",
                    "hydra/sweeper/sampler=random", "hydra.sweeper.n_trials=8")
    assert "model.window_length above 22 (the first backtest fold trains on 24 points" in process.stdout
    study = study_of(tmp_path, "catboost_optuna-shampoo_sales")
    assert len(study.trials) == 8 and "FAIL" not in {t.state.name for t in study.trials}
    assert max(t.params["model.window_length"] for t in study.trials) <= 22
    process = train("-m", "hparams_search=catboost_optuna", "dataset=shampoo_sales",
                    "model.window_length=int(interval(23,30))", "hydra.sweeper.study_name=long", check=False)
    assert process.returncode == 1 and "no window fits dataset=shampoo_sales" in process.stderr
    assert len(runs_of(client)) == 9  # the first search's parent and children, nothing more


def test_no_choice_left_for_the_data_stops_the_search(train, client, tmp_path):
    process = train("-m", "hparams_search=catboost_optuna", "dataset=pbs",
                    "preprocess=choice(log,boxcox)", check=False)
    assert process.returncode == 1 and "Traceback" not in process.stderr
    assert "hydra.sweeper.params.preprocess=['log', 'boxcox']: no choice can transform dataset=pbs" \
        in process.stderr
    # before anything exists: no study, no run
    assert not (tmp_path / "outputs" / "optuna.db").exists()
    assert store_left_alone(client.tracking_uri)


@pytest.mark.parametrize("overrides, metric, direction", [
    (["hparams_search=catboost_optuna"], "mase", "MINIMIZE"),
    (["hparams_search=catboost_optuna", "optimized_metric=rmse"], "rmse", "MINIMIZE"),
    (["hparams_search=catboost_optuna", "dataset=unit_test", "optimized_metric=cv_log_loss"],
     "cv_log_loss", "MINIMIZE"),
    (["hparams_search=catboost_optuna", "dataset=unit_test", "optimized_metric=cv_f1_macro"],
     "cv_f1_macro", "MAXIMIZE"),
    (["hydra/sweeper=tssweep_optuna", "dataset=unit_test", "preprocess=choice(summary,catch22)"],
     "cv_accuracy", "MAXIMIZE"),
])
def test_the_metric_sets_the_direction(train, client, tmp_path, overrides, metric, direction):
    storage = f"hydra.sweeper.storage=sqlite:///{tmp_path}/outputs/optuna.db"
    train("-m", *overrides, storage, "hydra.sweeper.n_trials=2", "hydra.sweeper.study_name=direction")
    study = study_of(tmp_path, "direction")
    assert [d.name for d in study.directions] == [direction] and study.metric_names == [metric]
    (parent,), _ = split(runs_of(client))
    best = max if direction == "MAXIMIZE" else min
    assert parent.data.metrics[f"best_{metric}"] == pytest.approx(best(t.value for t in ran(study)))


def test_a_direction_against_the_metric_is_refused_before_any_run(train, client, tmp_path):
    process = train("-m", "hparams_search=catboost_optuna", "dataset=unit_test",
                    "hydra.sweeper.direction=minimize", check=False)
    assert process.returncode == 1 and "Traceback" not in process.stderr
    assert "hydra.sweeper.direction='minimize': contradicts the metric: cv_accuracy is to maximize" \
        in process.stderr
    assert store_left_alone(client.tracking_uri)
    assert not (tmp_path / "outputs" / "optuna.db").exists()


def test_an_exhausted_space_ends_the_search_and_says_so(train, client, tmp_path):
    process = train("-m", "hydra/sweeper=tssweep_optuna", "hydra.sweeper.n_trials=6",
                    f"hydra.sweeper.storage=sqlite:///{tmp_path}/outputs/optuna.db",
                    "hydra.sweeper.study_name=small", "preprocess=choice(none,detrend,difference)")
    assert "Search space exhausted: all 3 settings have been tried" in process.stdout
    trials = ran(study_of(tmp_path, "small"))
    assert sorted(t.params["preprocess"] for t in trials) == ["detrend", "difference", "none"]
    (parent,), children = split(runs_of(client))
    assert parent.info.status == "FINISHED" and len(children) == 3
    # resuming it finds nothing left to do: no new trial, no new child
    train("-m", "hydra/sweeper=tssweep_optuna", "hydra.sweeper.n_trials=6",
          f"hydra.sweeper.storage=sqlite:///{tmp_path}/outputs/optuna.db",
          "hydra.sweeper.study_name=small", "preprocess=choice(none,detrend,difference)")
    assert len(ran(study_of(tmp_path, "small"))) == 3 and len(split(runs_of(client))[1]) == 3


def test_an_in_memory_study_runs(train, client, tmp_path):
    process = train("-m", "hydra/sweeper=tssweep_optuna", "hydra.sweeper.storage=null",
                    "hydra.sweeper.n_trials=3", "preprocess=choice(none,detrend,difference)")
    assert "the study lives in memory, so this search cannot be resumed or shared" in process.stdout
    (parent,), children = split(runs_of(client))
    assert parent.info.status == "FINISHED" and len(children) == 3
    assert sorted(c.data.params["preprocess.name"] for c in children) == ["detrend", "difference", "none"]
    assert not (tmp_path / "outputs" / "optuna.db").exists()


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
    (parent,), _ = split(runs_of(client))
    assert parent.data.metrics["n_pruned"] == len(pruned) and parent.data.metrics["n_interrupted"] == 0


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
    ("preprocess=choice(log,logg)", "preprocess='logg': no such option. Did you mean log?"),
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
    # refused before any run: no experiment, no run, no trial
    assert store_left_alone(client.tracking_uri)
    db = tmp_path / "outputs" / "optuna.db"
    assert not db.exists() or not optuna.get_all_study_summaries(f"sqlite:///{db}")
