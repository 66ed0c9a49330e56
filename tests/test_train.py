"""End to end: ``python src/train.py`` as users run it, checked in the MLflow store."""

import json
import re
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import pytest

from conftest import modules_hook, runs_of, store_left_alone

pytestmark = pytest.mark.slow


def artifact_names(client, run_id, path=""):
    return {Path(item.path).name for item in client.list_artifacts(run_id, path)}


def test_a_single_run_is_one_top_level_run_with_everything_logged(train, client, tmp_path,
                                                                 tracking_uri, monkeypatch,
                                                                 tmp_path_factory):
    process = train()
    (run,) = runs_of(client)
    assert run.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in run.data.tags
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["dataset.name"] == "airline" and params["preprocess.name"] == "none"
    assert params["model.name"] == "catboost" and params["model.depth"] == "4"
    # the store the run is in (MLFLOW_TRACKING_URI), not the config's default under outputs/
    assert params["tracking.uri"] == tracking_uri
    # the options' own declarations for the checks are not settings
    assert not {"model.tasks", "preprocess.tasks", "model.input", "preprocess.output"} & set(params)
    assert {"mase", "mae", "rmse", "smape", "test_mase", "fit_seconds", "predict_seconds"} <= set(metrics)
    assert len(tags["data.fingerprint"]) == 16 and len(tags["git.commit"]) == 40
    assert artifact_names(client, run.info.run_id) >= {
        "config.yaml", "forecast.png", "backtest_folds.csv", "feature_importance.csv"}
    # what CatBoost used, not the config's null (by data width): its defaults on 12 lags
    assert params["model.rsm"] == "1" and params["model.border_count"] == "254"
    # MLflow's own entities fill the table's Dataset and Models columns
    inputs = {tag.value: item.dataset for item in run.inputs.dataset_inputs for tag in item.tags
              if tag.key == "mlflow.data.context"}
    assert set(inputs) == {"training", "holdout"}
    assert {item.name for item in inputs.values()} == {"airline"}
    assert len({item.digest for item in inputs.values()}) == 2
    # both from the code that ran: the script, at its commit
    sources = [json.loads(item.source)["tags"] for item in inputs.values()]
    assert {item.source_type for item in inputs.values()} == {"code"}
    assert all(source["mlflow.source.name"].endswith("train.py") and
               source["mlflow.source.git.commit"] == tags["git.commit"] for source in sources)
    (output,) = run.outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    assert logged.source_run_id == run.info.run_id and logged.status.value == "READY"
    # the logged pipeline loads back through MLflow and forecasts the holdout's length
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model",
                                     dst_path=str(tmp_path_factory.mktemp("loaded")))
    forecast = model.predict(pd.DataFrame({"step": range(1, 13)}))
    assert forecast["period"].tolist() == [f"1960-{month:02d}" for month in range(1, 13)]
    assert model.metadata.signature.inputs.input_names() == ["step"]
    assert model.metadata.signature.outputs.input_names() == ["period", "step", "Number of airline passengers"]
    # a single run registers nothing unless asked
    assert not client.search_registered_models()
    assert f"backtest mase={metrics['mase']:.4f}" in process.stdout
    # nothing lands in the directory the command ran in
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db", "outputs"]


def test_a_sweep_is_one_parent_with_nested_children(train, client, tmp_path):
    process = train("-m", "preprocess=none,log", env=modules_hook(tmp_path))
    runs = runs_of(client)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.data.params["preprocess.name"] for c in children) == ["log", "none"]
    assert sorted(c.info.run_name for c in children) == ["log", "none"]
    for child in children:
        assert child.info.status == "FINISHED"
        history = client.get_metric_history(child.info.run_id, "fold_mase")
        assert [m.step for m in history] == [0, 1, 2, 3, 4]
        assert child.data.metrics["mase"] == pytest.approx(sum(m.value for m in history) / 5)
        assert "forecast.png" in artifact_names(client, child.info.run_id)

    assert parent.info.status == "FINISHED"
    best = min(children, key=lambda c: c.data.metrics["mase"])
    assert parent.data.tags["best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_mase"] == pytest.approx(best.data.metrics["mase"])
    assert parent.data.metrics["n_finished"] == 2 and parent.data.metrics["n_failed"] == 0
    assert "best_margin" in parent.data.metrics and parent.data.tags["verdict"]
    assert artifact_names(client, parent.info.run_id) == {
        "children.csv", "summary.md", "mase_by_child.png"}
    ranking = pd.read_csv(client.download_artifacts(parent.info.run_id, "children.csv", str(tmp_path)))
    assert ranking["run_id"].iloc[0] == best.info.run_id
    # the verdict, the registered winner and the links, printed as Hydra prints its own
    # lines (the writer that prints them was forked before Hydra set its logging up)
    verdict = re.search(r"\]\[HYDRA\] \n- \*\*Best:\*\* (\w+) with mase = ", process.stdout)
    assert verdict and verdict.group(1) == best.info.run_name
    assert f"({best.info.run_name}, refitted on all the data) is the **champion**" in process.stdout
    assert re.search(r"side by side: +http://127\.0\.0\.1:5000/#/compare-runs", process.stdout)
    # the writer logged every child and registered the winner without sktime or CatBoost:
    # the pipelines came to it packed
    imported = set((tmp_path / "writer_modules.txt").read_text().split())
    assert {"mlflow", "tssweep.records", "tssweep.tracking.registry"} <= imported
    assert not {name for name in imported if name.split(".")[0] in ("sktime", "catboost", "sklearn")}
    # and the sweep's own process trained, refitted the winner and closed without mlflow
    swept = set((tmp_path / "sweep_modules.txt").read_text().split())
    assert {"sktime", "catboost", "tssweep.records"} <= swept and "mlflow" not in swept


def test_a_failing_job_fails_alone_and_the_sweep_still_closes(train, client):
    # pbs holds zeros: the log transform cannot apply, the others run
    process = train("-m", "dataset=pbs", "preprocess=log,none,difference", check=False)
    assert process.returncode != 0
    output = process.stdout + process.stderr
    assert "preprocess='log'" in output and "strictly positive" in output
    runs = runs_of(client)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    statuses = {r.data.params.get("preprocess.name", r.info.run_name): r.info.status
                for r in runs if r is not parent}
    assert statuses == {"log": "FAILED", "none": "FINISHED", "difference": "FINISHED"}
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["n_failed"] == 1 and parent.data.metrics["n_finished"] == 2
    (failed,) = [r for r in runs if r.info.status == "FAILED" and r is not parent]
    assert "traceback.txt" in artifact_names(client, failed.info.run_id)
    assert "strictly positive" in failed.data.tags["error"]


def test_a_child_whose_logging_fails_after_its_training_fails_the_sweep(train, client, tmp_path):
    # the writer process completes each child after its training: here the model
    # template cannot be written (a file stands where its folder would go)
    blocked = tmp_path / "blocked"
    blocked.write_text("")
    process = train("-m", "seed=1,2", "model.iterations=20", check=False,
                    env={"TSSWEEP_MODEL_TEMPLATES": str(blocked / "templates")})
    assert process.returncode == 1
    assert (process.stdout + process.stderr).count("A child run failed after its training, and is FAILED") == 2
    runs = runs_of(client)
    (parent,) = [r for r in runs if r.data.tags.get("tssweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("tssweep.role") == "child"]
    assert [r.info.status for r in children] == ["FAILED", "FAILED"]
    for child in children:
        assert child.data.tags["error"].startswith(("NotADirectoryError", "FileExistsError"))
        assert "traceback.txt" in artifact_names(client, child.info.run_id)
        assert child.data.params["seed"] in {"1", "2"}  # logged before the training
    assert parent.info.status == "FAILED" and parent.data.metrics["n_failed"] == 2
    assert "tssweep.registered" not in parent.data.tags


def test_the_csv_dataset(train, client, tmp_path):
    months = pd.period_range("2015-01", periods=72, freq="M")
    sales = [100 + 2 * i + 10 * (i % 12 in (10, 11)) for i in range(72)]
    pd.DataFrame({"month": months.astype(str), "sales": sales}).to_csv(tmp_path / "my.csv", index=False)
    train("dataset=csv", "dataset.path=my.csv", "dataset.time_column=month",
          "dataset.target=sales", "dataset.freq=M")
    (run,) = runs_of(client)
    assert run.info.status == "FINISHED"
    # named after its file, in the params and the run's name
    assert run.data.params["dataset.name"] == "my" and run.data.params["dataset.target"] == "sales"
    assert run.info.run_name.startswith("my · ")
    assert run.data.metrics["test_mase"] >= 0


def test_an_unknown_option_stops_before_any_run(train, client):
    process = train("preprocess=logg", check=False)
    assert process.returncode != 0
    assert "preprocess='logg': no such option. Did you mean log?" in process.stderr
    assert "log_deseasonalize_detrend" in process.stderr  # the allowed options are listed
    assert store_left_alone(client.tracking_uri)


def test_an_optuna_sweep_on_sqlite_storage_runs_on_modern_optuna(train, client, tmp_path):
    """hydra-optuna-sweeper 1.3.0 is installed with --no-deps next to optuna>=4.5."""
    import optuna

    storage = f"sqlite:///{tmp_path}/optuna.db"
    train("-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.study_name=smoke",
          f"hydra.sweeper.storage={storage}", "hydra.sweeper.sampler.seed=1",
          "model.depth=choice(3,4)")
    study = optuna.load_study(study_name="smoke", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    runs = runs_of(client)
    assert len(runs) == 3 and sum("mlflow.parentRunId" in r.data.tags for r in runs) == 2
    values = sorted(t.value for t in study.trials)
    assert values == pytest.approx(sorted(r.data.metrics["mase"] for r in runs if "mlflow.parentRunId" in r.data.tags))


def test_user_errors_are_one_message_without_traceback_and_leave_no_run(train, client):
    process = train("dataset=csv", "dataset.path=absent.csv", check=False)
    assert process.returncode == 1
    assert "dataset.time_column='???': required but not given; also missing: dataset.target, " \
           "dataset.freq" in process.stderr
    assert "Traceback" not in process.stderr
    assert store_left_alone(client.tracking_uri)  # stopped before any run

    process = train("dataset=csv", "dataset.path=absent.csv", "dataset.time_column=month",
                    "dataset.target=sales", "dataset.freq=M", check=False)
    assert process.returncode == 1 and "Traceback" not in process.stderr
    assert "dataset.path='absent.csv': no such file" in process.stderr
    assert store_left_alone(client.tracking_uri)  # the data are checked before the run


def summary_of(client, parent, tmp_path):
    folder = Path(client.download_artifacts(parent.info.run_id, "", str(tmp_path / parent.info.run_id)))
    return (folder / "summary.md").read_text(), pd.read_csv(folder / "children.csv"), folder


def parent_of(client):
    (parent,) = [r for r in runs_of(client) if r.data.tags.get("tssweep.role") == "parent"]
    return parent


@pytest.mark.parametrize("sweep, real", [
    (["preprocess=none,detrend"], True),      # detrend's gain on airline's trend holds up
    (["seed=1,2,3"], False),                  # the same model three times: a null sweep
])
def test_the_verdict_is_a_model_confidence_set_on_the_backtest_points(train, client, tmp_path, sweep, real):
    train("-m", *sweep)
    parent = parent_of(client)
    text, table, _ = summary_of(client, parent, tmp_path)
    line = next(line for line in text.splitlines() if line.startswith("- **Is it real?** "))
    assert line.removeprefix("- **Is it real?** ").startswith("Real") is real, line
    assert "model confidence set over 60 points" in line  # 5 folds x 12 steps, shared by all
    assert set(table["in_best_set"]) <= {True, False} and table["mcs_p_value"].max() == 1.0
    assert parent.data.metrics["n_in_best_set"] == (1 if real else table["in_best_set"].sum())
    # each child's points are on the run, and their mean per fold is the fold's score
    child = client.get_run(table["run_id"].iloc[0])
    points = pd.read_csv(client.download_artifacts(child.info.run_id, "backtest_points.csv", str(tmp_path)))
    folds = [m.value for m in sorted(client.get_metric_history(child.info.run_id, "fold_mase"), key=lambda m: m.step)]
    assert points.groupby("fold")["mase"].mean().tolist() == pytest.approx(folds)


def test_a_sweep_over_three_datasets_ranks_the_options_across_them(train, client, tmp_path):
    train("-m", "dataset=unit_test,italy_power_demand,gunpoint", "preprocess=raw,summary")
    parent = parent_of(client)
    text, table, folder = summary_of(client, parent, tmp_path)
    assert text.startswith("# Sweep summary, ranked by cross-validation `cv_accuracy`")
    assert "## Across datasets" in text and "Average rank of each variant over 3 datasets" in text
    assert {"1. raw", "1. summary"} & {line.split(":")[0] for line in text.splitlines()}
    assert (folder / "critical_difference.png").stat().st_size > 5000
    # three groups, each its own verdict on its own series
    assert table["group"].nunique() == 3 and text.count("- **Is it real?**") == 3
    assert "across_datasets.best_variant" in parent.data.tags
    # each dataset's winner is its own registered model, each the first champion
    registered = {model.name: model.aliases for model in client.search_registered_models()}
    assert registered == {f"tssweep-{name}": {"champion": 1}
                          for name in ("unit_test", "italy_power_demand", "gunpoint")}
    assert parent.data.tags["tssweep.registered"].count("@champion") == 3


def test_two_horizons_are_two_groups_with_a_verdict_each(train, client, tmp_path):
    train("-m", "dataset.horizon=6,12", "preprocess=none,detrend", "dataset.backtest.folds=2")
    parent = parent_of(client)
    text, table, _ = summary_of(client, parent, tmp_path)
    assert "## airline (horizon 6" in text and "## airline (horizon 12" in text
    assert text.count("- **Is it real?**") == 2 and table.groupby("group")["rank"].max().tolist() == [2, 2]
    # each group's own metrics on the parent, under keys MLflow takes
    keys = {key for key in parent.data.metrics if key.endswith(".best_mase")}
    assert keys == {re.sub(r"[(),]", "", group) + ".best_mase" for group in table["group"].unique()}
