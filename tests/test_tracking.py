"""The tracking module against real SQLite stores: where runs and artifacts go, and that
every run ends with its true status."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf
from sktime.datasets import load_airline
from sktime.forecasting.naive import NaiveForecaster
from sktime.utils import mlflow_sktime

from tssweep import tracking


def tracking_cfg(tmp_path: Path, uri: str | None = None):
    return OmegaConf.create({"uri": uri or f"sqlite:///{tmp_path}/store/mlflow.db",
                             "artifact_location": str(tmp_path / "artifacts"),
                             "experiment": "tssweep"})


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.PARENT_RUN_ENV, raising=False)
    return tracking.open_store(tracking_cfg(tmp_path))


@pytest.fixture
def where(store, tmp_path):
    """Where ``store`` is, as a job is told (``tracking.job_run`` opens the same store)."""
    return tracking.where(tracking_cfg(tmp_path))


def test_store_and_artifacts_land_where_configured(store, tmp_path):
    assert (tmp_path / "store" / "mlflow.db").is_file()
    experiment = store.client.get_experiment(store.experiment_id)
    assert experiment.artifact_location == (tmp_path / "artifacts").as_uri()
    again = tracking.open_store(tracking_cfg(tmp_path))
    assert again.experiment_id == store.experiment_id


def test_a_store_is_waited_for_only_while_another_process_builds_it(store, tmp_path, monkeypatch):
    import sqlite3

    from tssweep.tracking import store as store_module

    file = tmp_path / "store" / "mlflow.db"
    (head,) = sqlite3.connect(file).execute("SELECT version_num FROM alembic_version").fetchone()

    def revise(to: str) -> None:
        with sqlite3.connect(file) as db:
            db.execute("UPDATE alembic_version SET version_num = ?", (to,))

    def never(seconds):
        raise AssertionError("waited")

    # a store at MLflow's schema, just written to: no wait
    monkeypatch.setattr(store_module.time, "sleep", never)
    store_module._await_schema(file)
    # an older schema left alone for a while: not waited for (MLflow upgrades or refuses it)
    revise("0a8213491aaa")
    os.utime(file, (time.time() - 60, time.time() - 60))
    store_module._await_schema(file)
    # the same, written to a moment ago (another process's migrations): waited for until
    # they reach MLflow's schema
    os.utime(file)
    waits = []

    def migrate_on(seconds):
        waits.append(seconds)
        if len(waits) == 3:
            revise(head)

    monkeypatch.setattr(store_module.time, "sleep", migrate_on)
    store_module._await_schema(file)
    assert len(waits) == 3


def test_the_environment_uri_wins(tmp_path, monkeypatch):
    env_uri = f"sqlite:///{tmp_path}/from_env.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env_uri)
    store = tracking.open_store(tracking_cfg(tmp_path))
    assert store.uri == env_uri and (tmp_path / "from_env.db").is_file()
    assert not (tmp_path / "store").exists()


def test_flatten_gives_dotted_leaves():
    cfg = OmegaConf.create({"model": {"depth": 6, "steps": {"log": {"_target_": "x.Y"}}},
                            "seed": 1, "lags": [1, 2], "alias": "${seed}"})
    assert tracking.flatten(cfg) == {"model.depth": "6", "model.steps.log._target_": "x.Y",
                                     "seed": "1", "lags": "[1, 2]", "alias": "1"}


def status(store, run_id):
    return store.client.get_run(run_id).info.status


def test_a_job_run_ends_finished_failed_or_killed(store, where, tmp_path):
    with tracking.job_run(where, [], {}, None, "fine") as run:
        run.log(params={"p": 1}, metrics={"m": 0.5}, step_metrics={"fold_m": [1.0, 2.0, 3.0]})
    assert status(store, run.run_id) == "FINISHED"
    history = store.client.get_metric_history(run.run_id, "fold_m")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 2.0), (2, 3.0)]

    with pytest.raises(ZeroDivisionError):
        with tracking.job_run(where, [], {}, None, "broken") as broken:
            1 / 0
    assert status(store, broken.run_id) == "FAILED"
    assert store.client.get_run(broken.run_id).data.tags["error"].startswith("ZeroDivisionError")
    trace = Path(store.client.download_artifacts(broken.run_id, "traceback.txt", str(tmp_path)))
    assert "1 / 0" in trace.read_text()

    with pytest.raises(KeyboardInterrupt):
        with tracking.job_run(where, [], {}, None, "stopped") as stopped:
            raise KeyboardInterrupt
    assert status(store, stopped.run_id) == "KILLED"


def test_log_batches_past_mlflows_limits(store, where):
    with tracking.job_run(where, [], {}, None, "wide") as run:
        run.log(params={f"p{i}": i for i in range(250)}, tags={f"t{i}": i for i in range(150)})
    data = store.client.get_run(run.run_id).data
    assert len(data.params) == 250 and sum(key[0] == "t" and key[1:].isdigit() for key in data.tags) == 150


def test_children_logging_the_same_new_dataset_at_once_all_get_it(store):
    # parallel children (joblib, Ray) log the same data: MLflow's find-or-create of the
    # dataset's row races, and without a retry some of them failed on its unique key
    import threading

    frame = pd.DataFrame({"time": ["1949-01", "1949-02"], "y": [112.0, 118.0]})
    runs = [tracking.TrackedRun(store, store.client.create_run(store.experiment_id).info.run_id)
            for _ in range(6 * 8)]
    errors = []

    def log(run, digest):
        try:
            run.log_datasets([(frame, digest, "training")], "airline", targets="y")
        except Exception as err:
            errors.append(err)

    for round_ in range(8):  # each round a dataset none of them has created yet
        threads = [threading.Thread(target=log, args=(run, f"digest{round_}"))
                   for run in runs[6 * round_:6 * round_ + 6]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    digests = [store.client.get_run(run.run_id).inputs.dataset_inputs[0].dataset.digest for run in runs]
    assert digests == [f"digest{i // 6}" for i in range(48)]


def test_children_find_their_parent_from_the_env_or_by_sweep_dir(store, where, monkeypatch):
    parent = tracking.start_parent(store, "/sweeps/one", "sweep", ["preprocess"], {})
    with tracking.job_run(where, ["preprocess=log", "seed=3"], {}, "/sweeps/one", "x") as local:
        pass
    assert local.name == "log"  # by the swept key's value alone
    # a job on another machine has no such environment variable
    monkeypatch.delenv(tracking.PARENT_RUN_ENV)
    tracking.start_parent(store, "/sweeps/other", "other sweep", [], {})
    monkeypatch.delenv(tracking.PARENT_RUN_ENV)
    with tracking.job_run(where, ["preprocess=none"], {}, "/sweeps/one", "x") as remote:
        pass
    assert [child.info.run_id for child in tracking.child_runs(store, parent)] == \
        [local.run_id, remote.run_id]
    tracking.finish_parent(store, parent, RunStatus.to_string(RunStatus.FINISHED))
    assert status(store, parent) == "FINISHED"


def _slowly_logged(run, seconds, folder):
    """A run's completion as the writer process does it: slow, from another process."""
    time.sleep(seconds)
    (Path(folder) / "note.txt").write_text("made after the training")
    run.log(params={"completed_by": os.getpid()}, metrics={"mase": 0.5})
    run.log_artifacts(Path(folder))


def _failing(run):
    raise ValueError("no space left on the artifact store")


def _sweep_with_a_writer(store, where, tmp_path):
    """A parent, and the writer a sweep's callback starts for it."""
    from tssweep.tracking import writer

    background = writer.start(where)
    parent = background.call(_parent_of, where, str(tmp_path / "sweep"))
    background.sweep = (parent, store.experiment_id, ())
    return background, parent


def _threads_and_warm_up():
    """In the writer: its threads' names, and whether its warm-up is done: every module
    imported, the git context of the datasets' source made, the job figure drawn."""
    import threading

    from tssweep import plots
    from tssweep.tracking import runs, writer

    modules = {step.partition(":")[0] for step in writer._WARM_UP}
    done = (all(name in sys.modules for name in modules) and runs._code_source.cache_info().currsize == 1
            and plots._job_figure.cache_info().currsize == 1)
    return [thread.name for thread in threading.enumerate()], done


def _parent_of(where, sweep_dir):
    return tracking.start_parent(tracking.open_store(where), sweep_dir, "sweep", [], {})


def test_the_writer_writes_runs_in_order_and_all_of_them_even_when_stopped_at_once(store, where, tmp_path):
    from tssweep.tracking import writer

    background, parent = _sweep_with_a_writer(store, where, tmp_path)
    sweep_dir = str(tmp_path / "sweep")
    try:
        assert writer.active(where) is background
        for name, seconds in (("first", 1.0), ("second", 0.0)):
            (tmp_path / name).mkdir()
            with tracking.job_run(where, [], {"kind": name}, sweep_dir, name) as run:
                run.log(params={"seed": 1})
                run.complete(_slowly_logged, seconds, str(tmp_path / name))
        # the first is still being completed (a second's sleep): none is FINISHED yet
        assert "FINISHED" not in {run.info.status for name, run in runs_named(store).items() if name != "sweep"}
        with tracking.job_run(where, [], {}, sweep_dir, "third") as run:
            run.complete(_failing)
        with pytest.raises(KeyboardInterrupt):
            with tracking.job_run(where, [], {}, sweep_dir, "fourth") as run:
                raise KeyboardInterrupt("received SIGINT")
        with pytest.raises(RuntimeError):
            with tracking.job_run(where, [], {}, sweep_dir, "fifth") as run:
                raise RuntimeError("the training diverged")
    finally:
        failed = background.stop()  # as the sweep's way out after Ctrl-C: drains first
    assert writer.active(where) is None
    assert failed == ["third: ValueError: no space left on the artifact store"]
    runs = runs_named(store)
    assert {name: run.info.status for name, run in runs.items()} == {
        "sweep": "RUNNING", "first": "FINISHED", "second": "FINISHED", "third": "FAILED", "fourth": "KILLED",
        "fifth": "FAILED"}
    ends = [runs[name].info.end_time for name in ("first", "second", "third", "fourth", "fifth")]
    assert ends == sorted(ends)  # in the order asked
    for name in ("first", "second"):
        run = runs[name]
        assert run.data.metrics == {"mase": 0.5} and run.data.params["seed"] == "1"
        assert run.data.params["completed_by"] != str(os.getpid()) and run.data.tags["kind"] == name
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert [a.path for a in store.client.list_artifacts(run.info.run_id)] == ["note.txt"]
    assert runs["third"].data.tags["error"] == "ValueError: no space left on the artifact store"
    assert runs["fourth"].data.tags["interrupted"] == "received SIGINT"
    assert runs["fifth"].data.tags["error"] == "RuntimeError: the training diverged"
    for name in ("third", "fifth"):
        trace = store.client.download_artifacts(runs[name].info.run_id, "traceback.txt", str(tmp_path))
        assert "Traceback" in Path(trace).read_text()
    assert background.stop() == []  # once is enough


def _refusing(where):
    from tssweep.errors import BadInput

    raise BadInput("tracking.uri", where.uri, "no store there.")


def _breaking(where):
    raise OSError("disk full")


def test_the_writer_answers_calls_in_order_with_their_results_and_their_errors(store, where, tmp_path):
    from tssweep.tracking import writer

    background, parent = _sweep_with_a_writer(store, where, tmp_path)
    try:
        # the parent the call made is the store's, made by another process
        (made,) = [run for run in store.client.search_runs([store.experiment_id])]
        assert made.info.run_id == parent and made.data.tags["tssweep.owners"].split("/")[1] == str(
            background._process.pid)
        with pytest.raises(writer.CallRefused, match=r"tracking.uri='sqlite:.*': no store there."):
            background.call(_refusing, where)
        with pytest.raises(writer.CallFailed, match=r"OSError: disk full(.|\n)*Traceback"):
            background.call(_breaking, where)
        assert background.call(_parent_of, where, str(tmp_path / "again")) != parent  # still serving
    finally:
        background.stop()
    # once it is gone, a call is done here
    assert writer.call(_parent_of, where, str(tmp_path / "here")) not in (parent, None)


def test_a_sweeps_own_process_imports_neither_mlflow_nor_optuna_nor_matplotlib():
    # its jobs train; the writer logs them, and only a search's jobs report to Optuna
    code = ("import sys; import tssweep.job, tssweep.callbacks, tssweep.tracking.writer; "
            "print(sorted(m for m in ('mlflow', 'optuna', 'matplotlib') if m in sys.modules))")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "[]"


def test_a_writer_forked_before_its_store_is_known_serves_the_store_it_is_given(store, where, tmp_path):
    from tssweep.tracking import writer

    # what this process made already would come with the fork: the writer's own warm-up
    # must make them (another test may have drawn both kinds of job figure here)
    from tssweep import plots
    from tssweep.tracking import runs

    plots._job_figure.cache_clear()
    runs._code_source.cache_clear()
    # forked as src/train.py forks it for a sweep, before Hydra has composed the config
    writer.prefork()
    spare = writer._spare
    background = writer.start(where)
    try:
        assert background is spare and writer._spare is None and writer.active(where) is background
        parent = background.call(_parent_of, where, str(tmp_path / "sweep"))
        (made,) = store.client.search_runs([store.experiment_id])
        assert made.info.run_id == parent
        assert made.data.tags["tssweep.owners"].split("/")[1] == str(background._process.pid) != str(os.getpid())
        # its warm-up imports, then what it is asked, in one thread: a second one importing
        # beside it made a classification sweep's writer meet half-made sklearn modules
        deadline = time.monotonic() + 60
        while (state := background.call(_threads_and_warm_up)) != (["MainThread"], True):
            assert state[0] == ["MainThread"] and time.monotonic() < deadline, state
            time.sleep(0.2)  # idle, the writer imports what it will need
    finally:
        assert background.stop() == []

    # one never given a store (a refused command's) is ended at once, having made nothing
    writer.prefork()
    unused = writer._spare
    writer._spare = None
    started = time.monotonic()
    assert unused.alive() and unused.stop() == []
    assert not unused.alive() and time.monotonic() - started < 5
    assert [run.info.run_id for run in store.client.search_runs([store.experiment_id])] == [parent]


def test_jobs_write_their_own_runs_once_the_writer_is_gone(store, where, tmp_path):
    from tssweep.tracking import writer

    background, parent = _sweep_with_a_writer(store, where, tmp_path)
    sweep_dir = str(tmp_path / "sweep")
    with tracking.job_run(where, [], {}, sweep_dir, "handed") as run:
        run.log(params={"seed": 1})
    with pytest.raises(writer.CallFailed) as lost:
        with tracking.job_run(where, [], {}, sweep_dir, "in flight") as run:
            os.kill(background._process.pid, signal.SIGKILL)  # as the OOM killer would
            background._process.join(timeout=10)
            run.log(params={"seed": 3})
    # the job in flight says how the writer ended, alone: not under a broken pipe, and
    # its run's closing (sent to no one) is no error on top of it
    assert str(lost.value) == ("in flight: the writer process ended before the run's log could be sent "
                               "(killed by SIGKILL); the run is closed by the next command")
    assert lost.value.__suppress_context__
    assert writer.active(where) is None
    with tracking.job_run(where, [], {}, sweep_dir, "alone") as run:
        run.log(params={"seed": 2})
    alone = runs_named(store)["alone"]
    assert alone.info.status == "FINISHED" and alone.data.tags["mlflow.parentRunId"] == parent
    (said,) = background.stop()
    assert said.startswith("the writer process ended early (killed by SIGKILL)")


def runs_named(store):
    return {run.info.run_name: run for run in store.client.search_runs([store.experiment_id])}


def test_a_saved_forecaster_loads_back_through_both_flavors(tmp_path):
    y = load_airline()
    fitted = NaiveForecaster(sp=12).fit(y, fh=np.arange(1, 4))
    tracking.save_forecaster(fitted, tmp_path / "model")
    requirements = (tmp_path / "model" / "requirements.txt").read_text()
    assert "catboost==" in requirements and "statsmodels==" in requirements
    loaded = mlflow_sktime.load_model(str(tmp_path / "model"))
    assert loaded.predict().equals(fitted.predict())
    # the pyfunc face: steps after the end of the data, any subset, in the order asked
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    answer = model.predict(pd.DataFrame({"step": [3, 1]}))
    assert answer.columns.tolist() == ["period", "step", "Number of airline passengers"]
    assert answer["period"].tolist() == ["1961-03", "1961-01"] and answer["step"].tolist() == [3, 1]
    assert answer["Number of airline passengers"].tolist() == fitted.predict().iloc[[2, 0]].tolist()
    assert model.metadata.signature.inputs.input_names() == ["step"]
    for bad, said in (([0], "whole number >= 1"), ([-2, 1], "whole number >= 1"), ([], "no rows")):
        with pytest.raises(MlflowException, match=said):
            model.predict(pd.DataFrame({"step": pd.Series(bad, dtype="int64")}))
    with pytest.raises(MlflowException, match="missing inputs \\['step'\\]"):
        model.predict(pd.DataFrame({"steps": [1]}))


def test_a_saved_forecaster_serves_without_tssweep(tmp_path):
    # its code folder is its loader alone: a Python where tssweep cannot be imported
    # loads and forecasts, and the folder is ten files, not a copy of the package
    y = load_airline()
    fitted = NaiveForecaster(sp=12).fit(y, fh=np.arange(1, 4))
    tracking.save_forecaster(fitted, tmp_path / "model")
    files = sorted(str(f.relative_to(tmp_path / "model")) for f in (tmp_path / "model").rglob("*") if f.is_file())
    assert files == ["MLmodel", "code/tssweep_serving.py", "conda.yaml", "input_example.json", "model.zip",
                     "python_env.yaml", "requirements.txt", "serving_input_example.json"]
    script = ("import sys; sys.modules['tssweep'] = None\n"
              "import mlflow.pyfunc, pandas as pd\n"
              f"model = mlflow.pyfunc.load_model({str(tmp_path / 'model')!r})\n"
              "print(model.predict(pd.DataFrame({'step': [1, 3]})).to_json(orient='records'))")
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    served = shown.stdout.strip().splitlines()[-1]
    expected = fitted.predict().iloc[[0, 2]].tolist()
    assert json.loads(served) == [{"period": "1961-01", "step": 1, "Number of airline passengers": expected[0]},
                                  {"period": "1961-03", "step": 3, "Number of airline passengers": expected[1]}]


def test_a_kept_model_template_is_written_once_and_serves_other_processes(tmp_path, monkeypatch):
    # src/train.py keeps templates under outputs/: the first process writes one per
    # kind of model; a later process copies it, never calling MLflow's writing (made to
    # fail there), and its model is the one MLflow writes, bar its id, time and size
    from tssweep.tracking import models

    kept = tmp_path / "templates"
    monkeypatch.setenv(models.TEMPLATES_ENV, str(kept))
    models._forecaster_template.cache_clear()
    y = load_airline()
    fitted = NaiveForecaster(sp=12).fit(y, fh=np.arange(1, 4))
    tracking.save_forecaster(fitted, tmp_path / "first")
    assert len(list(kept.iterdir())) == 1  # one template, no leftovers
    script = ("import sys, numpy as np\n"
              "from pathlib import Path\n"
              "from sktime.datasets import load_airline\n"
              "from sktime.forecasting.naive import NaiveForecaster\n"
              "from tssweep.tracking import models\n"
              "models.save_pyfunc_model = None\n"
              "y = load_airline()\n"
              "for steps, name in ((3, 'second'), (6, 'third')):\n"
              "    fitted = NaiveForecaster(sp=12).fit(y, fh=np.arange(1, steps + 1))\n"
              "    try:\n"
              "        models.save_forecaster(fitted, Path(sys.argv[1]) / name)\n"
              "    except TypeError:\n"
              "        print('wrote', name)\n")
    shown = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                           env={**os.environ, models.TEMPLATES_ENV: str(kept)})
    assert shown.returncode == 0, shown.stderr
    # 3 steps were kept; 6 steps is another template, which needs MLflow's writing, and
    # whose failure leaves nothing behind
    assert shown.stdout.split() == ["wrote", "third"]
    assert len(list(kept.iterdir())) == 1
    monkeypatch.delenv(models.TEMPLATES_ENV)
    models._forecaster_template.cache_clear()
    tracking.save_forecaster(fitted, tmp_path / "alone")

    def described(folder):
        text = (folder / "MLmodel").read_text().splitlines()
        return [line for line in text if not line.startswith(("model_uuid", "utc_time_created", "model_size"))]

    for folder in ("first", "second"):
        files = sorted(str(f.relative_to(tmp_path / folder)) for f in (tmp_path / folder).rglob("*") if f.is_file())
        assert files == sorted(str(f.relative_to(tmp_path / "alone")) for f in (tmp_path / "alone").rglob("*")
                               if f.is_file())
        assert described(tmp_path / folder) == described(tmp_path / "alone")
        for name in ("requirements.txt", "conda.yaml", "python_env.yaml", "input_example.json"):
            assert (tmp_path / folder / name).read_text() == (tmp_path / "alone" / name).read_text()
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "second"))
    assert loaded.predict(pd.DataFrame({"step": [2]}))["step"].tolist() == [2]


def test_source_tags_name_the_commit():
    tags = tracking.source_tags(str(Path(__file__).parents[1]))
    assert len(tags["git.commit"]) == 40 and tags["git.dirty"] in {"true", "false"}
