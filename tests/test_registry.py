"""The sweep's winner in the Model Registry, champion or challenger; src/predict.py and
the same model served over REST, against a real SQLite store and registry."""

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from omegaconf import OmegaConf

from conftest import ROOT, free_port, modules_hook, runs_of, wait_for_health
from tssweep import tracking
from tssweep.errors import BadInput
from tssweep.tracking import registry

pytestmark = pytest.mark.slow

NAME = "tssweep-airline"


def versions(client: MlflowClient, name: str = NAME) -> dict[int, object]:
    return {int(v.version): v for v in client.search_model_versions(f"name = '{name}'")}


def champion(client: MlflowClient, name: str = NAME) -> int:
    return int(client.get_model_version_by_alias(name, "champion").version)


def parents(client: MlflowClient) -> list:
    return [run for run in runs_of(client) if "mlflow.parentRunId" not in run.data.tags]


def best_child(client: MlflowClient, parent) -> object:
    children = [run for run in runs_of(client) if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return min(children, key=lambda run: run.data.metrics["mase"])


def written(process) -> list[Path]:
    return [Path(line) for line in process.stdout.split() if line.endswith((".csv", ".png"))]


def test_champion_then_challenger_then_not_comparable(train, client, predict, tmp_path):
    # the first sweep's winner is version 1, the champion; no child logs a model of its own
    train("-m", "preprocess=none,detrend", "tracking.log_models=none")
    (first,) = parents(client)
    winner = best_child(client, first)
    assert winner.data.params["preprocess.name"] == "detrend"
    (v1,) = versions(client).values()
    assert champion(client) == 1
    assert v1.tags[registry.SOURCE_RUN_TAG] == winner.info.run_id
    assert v1.tags[registry.PARENT_RUN_TAG] == first.info.run_id == v1.run_id
    assert v1.tags["data.fingerprint"] == winner.data.tags["data.fingerprint"]
    assert float(v1.tags[registry.SCORE_TAG]) == winner.data.metrics["mase"]
    assert v1.tags[registry.METRIC_TAG] == "mase" and v1.tags["dataset.horizon"] == "12"
    assert "preprocess=detrend" in v1.tags[registry.OVERRIDES_TAG]
    # refitted on the whole series, holdout included, and logged on the parent
    assert v1.tags["data.fitted_on"] == "144"
    (output,) = first.outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    assert logged.name == "winner" and v1.source == logged.artifact_location
    assert logged.params["preprocess.name"] == "detrend" and logged.params["model.depth"] == "4"
    files = {Path(item.path).name for item in client.list_logged_model_artifacts(output.model_id)}
    assert {"MLmodel", "model.zip", "config.yaml"} <= files
    children = [run for run in runs_of(client) if run.data.tags.get("mlflow.parentRunId")]
    assert len(children) == 2 and not any(run.outputs.model_outputs for run in children)
    assert first.data.tags["tssweep.registered"] == f"{NAME}/1@champion"
    assert f"[{NAME} version 1](http://127.0.0.1:5000/#/models/{NAME}/versions/1)" in \
        first.data.tags["mlflow.note.content"]

    # a worse sweep on the same data and evaluation: version 2, challenger, champion kept
    train("-m", "preprocess=none,log")
    second = parents(client)[-1]
    assert best_child(client, second).data.metrics["mase"] > winner.data.metrics["mase"]
    assert set(versions(client)) == {1, 2} and champion(client) == 1
    assert int(client.get_model_version_by_alias(NAME, "challenger").version) == 2
    note = second.data.tags["mlflow.note.content"]
    assert "is the **challenger**: does not beat the champion on the same data and evaluation" in note
    assert second.data.tags["tssweep.registered"] == f"{NAME}/2@challenger"
    summary = next((tmp_path / "outputs" / "multiruns").glob("*/summary/summary.md"), None)
    assert summary is not None

    # another horizon is another evaluation: never compared, whatever its score
    train("-m", "preprocess=none,detrend", "dataset.horizon=6", "dataset.backtest.step=6")
    third = parents(client)[-1]
    assert set(versions(client)) == {1, 2, 3} and champion(client) == 1
    assert int(client.get_model_version_by_alias(NAME, "challenger").version) == 3
    note = third.data.tags["mlflow.note.content"]
    assert "not comparable with the champion (version 1)" in note and "dataset.horizon 12 -> 6" in note

    # predict.py: the champion's 12 months after December 1960, through its pyfunc
    process = predict()
    table, figure = written(process)
    forecast = pd.read_csv(table)
    assert forecast.columns[0] == "period" and forecast.columns[-1] == "Number of airline passengers"
    assert forecast["period"].tolist() == [f"1961-{month:02d}" for month in range(1, 13)]
    assert forecast["Number of airline passengers"].between(300, 800).all()
    assert figure.stat().st_size > 10_000
    # the challenger on its own horizon, and a longer one than it was fitted for
    six = pd.read_csv(written(predict(f"model=models:/{NAME}@challenger"))[0])
    assert six["period"].tolist() == [f"1961-{month:02d}" for month in range(1, 7)]
    longer = pd.read_csv(written(predict(f"model=models:/{NAME}/3", "horizon=18"))[0])
    assert longer["step"].tolist() == list(range(1, 19))
    assert np.allclose(longer["Number of airline passengers"][:6], six["Number of airline passengers"])
    # nothing entered the store
    assert len(runs_of(client)) == 9 and len(versions(client)) == 3

    # the same model served over REST answers the same numbers, for any subset of steps
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{NAME}@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": client.tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true",
             "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    try:
        wait_for_health(f"http://127.0.0.1:{port}", server, "mlflow models serve", path="/ping")
        served = invoke(port, [{"step": 1}, {"step": 2}])
        assert [row["period"] for row in served] == ["1961-01", "1961-02"]
        assert [row["Number of airline passengers"] for row in served] == \
            forecast["Number of airline passengers"][:2].tolist()
        subset = invoke(port, [{"step": 12}, {"step": 5}])
        assert [row["step"] for row in subset] == [12, 5]
        assert [row["Number of airline passengers"] for row in subset] == \
            forecast["Number of airline passengers"].iloc[[11, 4]].tolist()
        with pytest.raises(urllib.error.HTTPError) as refused:
            invoke(port, [{"step": 0}])
        assert refused.value.code == 400 and "step must be a whole number >= 1" in refused.value.read().decode()
    finally:
        os.killpg(server.pid, 15)
        server.communicate(timeout=30)


def invoke(port: int, records: list[dict]) -> list[dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=json.dumps({"dataframe_records": records}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["predictions"]


def test_bad_models_get_one_message_and_leave_the_store_alone(train, client, predict, tmp_path):
    train("-m", "preprocess=none,detrend", "dataset=lynx", "tracking.registry.name=lynx-years")
    child = next(run for run in runs_of(client) if run.data.tags.get("mlflow.parentRunId"))
    before = (len(runs_of(client)), len(versions(client, "lynx-years")))
    # each form of URI checked against the store, each mistake named
    store = tracking.connect(OmegaConf.create({"uri": client.tracking_uri, "experiment": "tssweep"}))
    uris = {
        "models:/tssweep-airline@champion": "model='models:/tssweep-airline@champion': no registered "
                                             "model 'tssweep-airline' in this store",
        "models:/lynx-years/7": "'lynx-years' has no version 7.",
        "models:/lynx-years/latest": "'latest' is not a version number",
        "models:/lynx-years": "names a model but no version or alias",
        "runs:/0123abc/model": "no run '0123abc' in this store",
        "m-0123abc": "model='m-0123abc': no logged model 'm-0123abc' in this store",
        "lynx-years": "model='lynx-years': not a model URI. Allowed: models:/<name>@<alias>",
    }
    for uri, said in uris.items():
        with pytest.raises(BadInput, match=re.escape(said)):
            registry.model_uri(store, uri)
    assert registry.model_uri(store, "models:/lynx-years/1") == "models:/lynx-years/1"
    # as the terminal shows them: exit 1, one message, no traceback
    cases = {
        "model=models:/lynx-years@gold":
            "'lynx-years' has no version with the alias 'gold'. Allowed: models:/lynx-years@champion.",
        "horizon=0": "horizon=0: must be a whole number of steps >= 1",
        "data=series.csv": "is a forecaster without regressors: it forecasts after the series it was fitted on",
        "modle=x": "there is no key modle at the top of the config. Did you mean model?",
    }
    for override, said in cases.items():
        extra = [] if override.startswith(("model=", "modle")) else ["model=models:/lynx-years@champion"]
        process = predict(override, *extra, check=False)
        assert process.returncode == 1, (override, process.stderr)
        assert said in process.stderr and "Traceback" not in process.stderr, (override, process.stderr)
        assert "Error executing job" not in process.stderr and "HYDRA_FULL_ERROR" not in process.stderr
    assert (len(runs_of(client)), len(versions(client, "lynx-years"))) == before
    # a run's own model and a logged model's id load too; the child's was fitted without its holdout
    by_run = pd.read_csv(written(predict(f"model=runs:/{child.info.run_id}/model"))[0])
    assert str(by_run["period"].iloc[0]) == "1925"  # lynx ends in 1934; its holdout is 10 years
    (output,) = parents(client)[0].outputs.model_outputs
    logged = output.model_id
    assert len(pd.read_csv(written(predict(f"model={logged}"))[0])) == 10
    # no store at all
    missing = predict("model=m-1", check=False, store=f"sqlite:///{tmp_path}/none.db")
    assert missing.returncode == 1 and "MLFLOW_TRACKING_URI='sqlite:///" in missing.stderr
    assert "no store there yet" in missing.stderr
    assert not (tmp_path / "none.db").exists()
    # a bad horizon is named first, before the store or the model is looked at
    for horizon, shown in (("0", "0"), ("-3", "-3"), ("2.5", "2.5"), ("true", "True"), ("abc", "'abc'")):
        refused = predict(f"horizon={horizon}", "model=m-1", check=False, store=f"sqlite:///{tmp_path}/none.db")
        assert refused.returncode == 1 and f"horizon={shown}: must be a whole number of steps >= 1. " \
            "Allowed: 1, 2, ..., or null for the model's own horizon." in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr and not (tmp_path / "none.db").exists()


def test_the_store_named_by_the_config_alone_registers_and_predicts(tmp_path):
    # as `make sweep` runs: no MLFLOW_TRACKING_URI, the store is tracking.uri; MLflow's
    # own resolution of models:/ URIs would look in ./mlflow.db instead
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    store = f"sqlite:///{tmp_path}/own.db"

    def run(script: str, *args: str, **more: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "src" / script), *args, f"tracking.uri={store}",
                               f"paths.output_dir={tmp_path}/outputs"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env={**env, "MLFLOW_DISABLE_TELEMETRY": "true", **more},
                              check=True)

    run("train.py", "-m", "preprocess=none,detrend", "model.iterations=30", "model.depth=4")
    client = MlflowClient(tracking_uri=store)
    assert champion(client) == 1
    (parent,) = parents(client)
    child = best_child(client, parent)
    periods = None
    # an alias (a version, as models:/<name>/1 is), a logged model's id, a run's model
    for model in (f"models:/{NAME}@champion", parent.outputs.model_outputs[0].model_id,
                  f"runs:/{child.info.run_id}/model"):
        forecast = pd.read_csv(written(run("predict.py", f"model={model}"))[0])
        periods = periods or forecast["period"].tolist()
        assert len(forecast) == 12
    assert periods[0] == "1961-01"
    assert forecast["period"].iloc[0] == "1960-01"  # the child's own model: fitted without its holdout

    # the same sweep again (a second `make sweep`): the same winner, scored the same, is
    # the champion it already is, neither refitted nor registered a second time
    again = run("train.py", "-m", "preprocess=none,detrend", "model.iterations=30", "model.depth=4",
                **modules_hook(tmp_path / "outputs"))
    second = parents(client)[-1]
    assert second.info.run_id != parent.info.run_id
    assert best_child(client, second).data.metrics["mase"] == child.data.metrics["mase"]
    assert set(versions(client)) == {1} and champion(client) == 1
    assert not second.outputs.model_outputs  # no refit logged on it
    assert second.data.tags["tssweep.registered"] == f"{NAME}/1@champion"
    assert (f"is the **champion**: the same model as version 1 (the same config, mase "
            f"{child.data.metrics['mase']:.4f} on the same data and evaluation, from {child.info.run_name})"
            in second.data.tags["mlflow.note.content"])
    assert "Registered tssweep-airline" not in again.stderr
    # what the writer found came back to the sweep's process as plain data: no mlflow there
    assert "mlflow" not in (tmp_path / "outputs" / "sweep_modules.txt").read_text().split()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["outputs", "own.db"]


def test_a_version_is_the_same_model_only_for_the_same_config_data_evaluation_and_score(tmp_path):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    store = tracking.Store(client, client.create_experiment("e", artifact_location=str(tmp_path / "a")),
                           client.tracking_uri)
    model = {"model.depth": "4", "preprocess.name": "detrend", "dataset.horizon": "12", "seed": "42"}

    def child(params: dict[str, str], score: float = 0.8, fingerprint: str = "d1"):
        run = client.create_run(store.experiment_id, tags={"data.fingerprint": fingerprint})
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        client.log_metric(run.info.run_id, "mase", score)
        client.set_terminated(run.info.run_id)
        return client.get_run(run.info.run_id)

    held = child({**model, "paths.output_dir": "/one", "tracking.log_models": "none"})
    client.create_registered_model(NAME)
    client.create_model_version(NAME, str(tmp_path / "m"), run_id=held.info.run_id, tags={
        registry.SOURCE_RUN_TAG: held.info.run_id, registry.METRIC_TAG: "mase",
        registry.SCORE_TAG: repr(0.8), "data.fingerprint": "d1", "dataset.horizon": "12"})
    client.set_registered_model_alias(NAME, "champion", "1")

    same = registry.already_registered(store, NAME, held, "mase")
    assert (same.version, same.alias) == (1, "champion") and "from the same run" in same.reason
    # elsewhere, tracked otherwise: the same model
    moved = registry.already_registered(
        store, NAME, child({**model, "paths.output_dir": "/two", "tracking.log_models": "all"}), "mase")
    assert (moved.version, moved.alias) == (1, "champion") and "the same model as version 1" in moved.reason
    # another model, score, data, horizon or metric: not held by any version
    for other in (child({**model, "model.depth": "6"}), child(model, score=0.81), child(model, fingerprint="d2"),
                  child({**model, "dataset.horizon": "6"}), child({k: v for k, v in model.items() if k != "seed"})):
        assert registry.already_registered(store, NAME, other, "mase") is None
    assert registry.already_registered(store, NAME, child(model), "smape") is None


def test_single_runs_register_only_when_asked_and_a_sweep_can_skip(train, client):
    train()
    train("-m", "preprocess=none,detrend", "tracking.registry.enabled=false")
    assert not client.search_registered_models()
    train("preprocess=detrend", "tracking.registry.single_runs=true")
    single = runs_of(client)[-1]
    (v1,) = versions(client).values()
    assert v1.tags[registry.SOURCE_RUN_TAG] == single.info.run_id == v1.run_id
    assert champion(client) == 1


def test_a_classifier_is_registered_and_labels_a_file(train, client, predict, tmp_path):
    from sktime.datasets import load_gunpoint

    train("-m", "dataset=gunpoint", "preprocess=raw,summary")
    name = "tssweep-gunpoint"
    version = client.get_model_version_by_alias(name, "champion")
    assert version.tags["data.fitted_on"] == "200"  # 50 train + 150 test series
    X, y = load_gunpoint(split="test", return_X_y=True)
    rows = pd.DataFrame([np.asarray(series, dtype=float) for series in X.iloc[:, 0]])
    rows.insert(0, "id", [f"s{i}" for i in range(len(rows))])
    rows.to_csv(tmp_path / "series.csv", index=False)
    labels = pd.read_csv(written(predict(f"model=models:/{name}@champion", "data=series.csv"))[0])
    assert len(labels) == 150
    # the test split was part of the refit: its labels are nearly all learnt
    assert (labels["label"].astype(str).to_numpy() == np.asarray(y).astype(str)).mean() > 0.9
    needs_file = predict(f"model=models:/{name}@champion", check=False)
    assert needs_file.returncode == 1 and "is a classifier: name the file of series to label" in needs_file.stderr


def scored(metric: str = "mase", score: float = 0.8, **changed: str) -> dict[str, str]:
    base = {registry.METRIC_TAG: metric, registry.SCORE_TAG: repr(score), "data.fingerprint": "d1",
            "dataset.horizon": "12", "dataset.backtest.folds": "5", "dataset.backtest.step": "12",
            "dataset.cv.folds": ""}
    return {**base, **{key.replace("__", "."): value for key, value in changed.items()}}


class Version:
    def __init__(self, tags: dict[str, str]):
        self.version, self.tags = "4", tags


@pytest.mark.parametrize("newcomer, holder, alias, said", [
    (scored(score=0.7), None, "champion", "the first champion"),
    (scored(score=0.7), scored(score=0.8), "champion", "beats the champion on the same data and evaluation (mase 0.7000 against 0.8000 for version 4)"),
    (scored(score=0.8), scored(score=0.8), "challenger", "does not beat the champion"),
    (scored(score=0.9), scored(score=0.8), "challenger", "does not beat the champion"),
    # accuracy: higher is better
    (scored("cv_accuracy", 0.95), scored("cv_accuracy", 0.9), "champion", "beats the champion"),
    (scored("cv_accuracy", 0.85), scored("cv_accuracy", 0.9), "challenger", "does not beat"),
    # better numbers on other data, another evaluation or metric are never compared
    (scored(score=0.1, data__fingerprint="d2"), scored(), "challenger", "scored on other data (data.fingerprint d1 -> d2)"),
    (scored(score=0.1, dataset__backtest__folds="3"), scored(), "challenger", "scored on another evaluation (dataset.backtest.folds 5 -> 3)"),
    (scored("smape", 0.1), scored(), "challenger", "scored on another metric"),
])
def test_champion_only_on_a_better_score_on_the_same_data_and_evaluation(newcomer, holder, alias, said):
    got, why = registry._standing(newcomer, Version(holder) if holder else None)
    assert got == alias and said in why
