"""Many series at once, end to end: a sweep over pooling on the bundled panel gives one
parent, a child per pooling with each series' scores, a verdict over every series'
points, and a registered winner that forecasts every series (src/predict.py and its
pyfunc)."""

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from conftest import runs_of

pytestmark = pytest.mark.slow

STATES = ["Australian Capital Territory", "New South Wales", "Northern Territory", "Queensland",
          "South Australia", "Tasmania", "Victoria", "Western Australia"]


def test_pooling_sweep_on_a_panel_scores_every_series_and_forecasts_them_all(train, client, predict, tmp_path):
    train("-m", "dataset=aus_accommodation", "model.pooling=local,global")
    runs = runs_of(client)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert sorted(run.data.params["model.pooling"] for run in children) == ["global", "local"]
    for child in children:
        assert child.data.tags["data.series"] == "8" and child.data.tags["data.length"] == "592"
        folder = client.download_artifacts(child.info.run_id, "", str(tmp_path / child.info.run_id))
        scores = pd.read_csv(f"{folder}/series_scores.csv", index_col="series")
        assert scores.index.tolist() == STATES and (scores["points"] == 74).all()
        # what the run optimises and reports is the mean over the series
        assert child.data.metrics["mase"] == pytest.approx(scores["mase"].mean())
        assert child.data.metrics["test_mase"] == pytest.approx(scores["test_mase"].mean())
        points = pd.read_csv(f"{folder}/backtest_points.csv")
        assert len(points) == 3 * 8 * 8 and points.groupby(["fold", "series"]).size().eq(8).all()
    local, global_ = sorted(children, key=lambda run: run.data.params["model.pooling"] != "local")
    assert local.data.metrics["mase"] != global_.data.metrics["mase"]

    summary = next((tmp_path / "outputs" / "multiruns").glob("*/summary/summary.md")).read_text()
    assert "pooling=local" in summary and "pooling=global" in summary
    assert "over 192 points" in summary  # the verdict stacks 3 folds x 8 series x 8 steps

    # the winner, refitted on every series, forecasts each of them
    predict("model=models:/tssweep-aus_accommodation@champion")
    forecast = pd.read_csv(next((tmp_path / "outputs" / "predictions").glob("*/forecast.csv")))
    assert forecast.columns.tolist() == ["series", "period", "step", "Takings"]
    assert forecast["series"].unique().tolist() == STATES
    assert forecast.groupby("series")["step"].apply(list).eq([list(range(1, 9))] * 8).all()
    assert forecast["period"].iloc[:8].tolist() == ["2016Q3", "2016Q4"] + [f"{y}Q{q}" for y in (2017,) for q in (1, 2, 3, 4)] + ["2018Q1", "2018Q2"]
    champion = client.get_model_version_by_alias("tssweep-aus_accommodation", "champion")
    model = mlflow.pyfunc.load_model(champion.source)  # the version's files, in the test's store
    asked = model.predict(pd.DataFrame({"series": ["Victoria", "Tasmania"], "step": [2, 1]}))
    assert asked[["series", "period", "step"]].values.tolist() == [["Victoria", "2016Q4", 2], ["Tasmania", "2016Q3", 1]]
    expected = forecast.set_index(["series", "step"])["Takings"]
    assert asked["Takings"].tolist() == pytest.approx([expected["Victoria", 2], expected["Tasmania", 1]])
    with pytest.raises(Exception, match="no series 'Atlantis'"):
        model.predict(pd.DataFrame({"series": ["Atlantis"], "step": [1]}))


def test_regressors_known_for_the_horizon_from_training_to_a_forecast_of_the_future(train, client, predict, tmp_path):
    train("dataset=aus_accommodation", "dataset.exog_columns=[CPI]", "model.pooling=global",
          "tracking.registry.single_runs=true")
    (run,) = runs_of(client)
    assert run.info.status == "FINISHED" and run.data.params["dataset.exog_columns"] == "['CPI']"
    folder = client.download_artifacts(run.info.run_id, "", str(tmp_path / "run"))
    importance = pd.read_csv(f"{folder}/feature_importance.csv", index_col="feature")["importance"]
    assert {"CPI", "series", "lag_1"} <= set(importance.index) and importance["CPI"] > 0

    # the future needs the regressors' future: without them, one message
    refused = predict("model=models:/tssweep-aus_accommodation@champion", check=False)
    assert refused.returncode == 1 and "forecasts with CPI, known for the forecast horizon" in refused.stderr
    # within the CPI the model saw (67 to 109): trees do not extrapolate
    future = pd.DataFrame([{"step": step, "series": state, "CPI": 75.0 + step} for state in STATES for step in (1, 2, 3)])
    (tmp_path / "cpi.csv").write_text(future.to_csv(index=False))
    predict("model=models:/tssweep-aus_accommodation@champion", f"data={tmp_path / 'cpi.csv'}")
    forecast = pd.read_csv(next((tmp_path / "outputs" / "predictions").glob("*/forecast.csv")))
    assert len(forecast) == 24 and forecast["series"].unique().tolist() == STATES
    assert forecast.loc[forecast["series"] == "Victoria", "period"].tolist() == ["2016Q3", "2016Q4", "2017Q1"]
    # the same model, other CPI values: other forecasts (the regressor is used)
    model = mlflow.pyfunc.load_model(client.get_model_version_by_alias("tssweep-aus_accommodation", "champion").source)
    higher = model.predict(future.assign(CPI=future["CPI"] + 30))
    assert not np.allclose(higher["Takings"].to_numpy(), forecast["Takings"].to_numpy())
    with pytest.raises(Exception, match="missing inputs"):
        model.predict(future.drop(columns="CPI"))
