"""Time-series classification: the shipped UCR/UEA datasets, feature preprocessing,
CatBoostClassifier and the 1-NN DTW baseline, cross-validated and then tested."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier
from sktime.classification.distance_based import KNeighborsTimeSeriesClassifier
from sktime.transformations.rocket import MiniRocket, MiniRocketMultivariate, MiniRocketMultivariateVariable

from conftest import CONF, runs_of
from tssweep import checks, classification_evaluation
from tssweep.dataset import load_panel
from tssweep.errors import BadInput
from tssweep.model import build_model, fit_to_width
from tssweep.preprocess import feature_transformer

TINY = ("model.iterations=20", "model.depth=3")


@pytest.mark.parametrize("name, channels, equal", [
    ("unit_test", 1, True), ("basic_motions", 6, True), ("japanese_vowels", 12, False)])
def test_datasets_give_their_official_split(compose_cfg, name, channels, equal):
    X_train, y_train, X_test, y_test = load_panel(compose_cfg(f"dataset={name}").dataset)
    assert X_train.shape[1] == X_test.shape[1] == channels
    assert len(X_train) == len(y_train) and len(X_test) == len(y_test)
    lengths = {len(cell) for cell in X_train.iloc[:, 0]}
    assert (len(lengths) == 1) == equal


@pytest.mark.parametrize("name, variant", [
    ("gunpoint", MiniRocket), ("basic_motions", MiniRocketMultivariate),
    ("japanese_vowels", MiniRocketMultivariateVariable)])
def test_minirocket_follows_the_data(compose_cfg, name, variant):
    transformer = feature_transformer(compose_cfg(f"dataset={name}", "preprocess=minirocket").preprocess)
    assert type(transformer) is variant and transformer.random_state == 42


def test_one_model_group_builds_a_classifier_or_a_regressor(compose_cfg):
    assert isinstance(build_model(compose_cfg("dataset=gunpoint", "preprocess=catch22").model),
                      CatBoostClassifier)
    assert isinstance(build_model(compose_cfg("dataset=gunpoint", "model=knn_dtw",
                                              "preprocess=raw").model),
                      KNeighborsTimeSeriesClassifier)
    wide = fit_to_width(CatBoostClassifier(), 10_000).get_params()
    assert wide["rsm"] == 0.01 and wide["border_count"] == 32
    assert fit_to_width(CatBoostClassifier(rsm=0.5), 10_000).get_params()["rsm"] == 0.5
    assert "rsm" not in fit_to_width(CatBoostClassifier(), 22).get_params()


@pytest.mark.parametrize("preprocess, model, n_features", [
    ("catch22", "catboost", 22), ("raw", "catboost", 24), ("raw", "knn_dtw", 1)])
def test_cross_validation_then_test_split(compose_cfg, preprocess, model, n_features):
    cfg = compose_cfg("dataset=unit_test", f"preprocess={preprocess}", f"model={model}",
                      *(TINY if model == "catboost" else ()))
    X, y, X_test, y_test = load_panel(cfg.dataset)
    folds_seen = []
    result = classification_evaluation.evaluate_classifier(feature_transformer(cfg.preprocess), build_model(cfg.model),
                                     X, y, X_test, y_test, folds=4, seed=0,
                                     after_fold=lambda fold, scores: folds_seen.append(scores))
    assert len(result.fold_scores) == len(folds_seen) == 4
    assert set(folds_seen[0]) == {f"cv_{m}" for m in classification_evaluation.METRICS}
    for name in ("accuracy", "balanced_accuracy", "f1_macro"):
        assert 0 <= result.cv_scores[f"cv_{name}"] <= 1 and 0 <= result.test_scores[f"test_{name}"] <= 1
    assert result.test_scores["test_accuracy"] == pytest.approx(np.mean(result.test_predictions == y_test))
    assert result.n_features == n_features and result.fit_seconds > 0
    assert result.test_scores["test_accuracy"] > 0.55  # Chinatown is easy: better than chance
    # each train series scored once, out of fold: the verdict's per-series losses
    points = result.cv_points
    assert points["series"].tolist() == list(range(len(y)))
    assert (1 - points.groupby("fold")["accuracy"].mean()).tolist() == pytest.approx(
        result.fold_scores["accuracy"].tolist())
    assert points.groupby("fold")["log_loss"].mean().tolist() == pytest.approx(
        result.fold_scores["log_loss"].tolist(), rel=1e-6)


@pytest.mark.parametrize("preprocess", ["catch22", "summary"])
def test_series_features_made_once_give_the_scores_of_features_made_per_fold(compose_cfg, preprocess):
    cfg = compose_cfg("dataset=unit_test", f"preprocess={preprocess}", *TINY)
    X, y, X_test, y_test = load_panel(cfg.dataset)
    transformer = feature_transformer(cfg.preprocess)
    transformed, inside = [], []  # the number of series each transform is given (not sktime's own calls)
    transform = type(transformer).transform

    def counted(self, X, y=None):
        if not inside:
            transformed.append(len(X))
        inside.append(True)
        try:
            return transform(self, X, y)
        finally:
            inside.pop()

    per_fold = transformer.clone().set_tags(**{"scitype:instancewise": False})  # as if series mixed
    expected = classification_evaluation.evaluate_classifier(per_fold, build_model(cfg.model),
                                                             X, y, X_test, y_test, folds=4, seed=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(transformer), "transform", counted)
        once = classification_evaluation.evaluate_classifier(transformer, build_model(cfg.model),
                                                             X, y, X_test, y_test, folds=4, seed=0)
    assert sorted(transformed) == sorted([len(X), len(X_test)])  # each series once, not once per fold
    pd.testing.assert_frame_equal(once.cv_points, expected.cv_points)
    assert once.cv_scores == expected.cv_scores and once.test_scores == expected.test_scores
    assert (once.test_predictions == expected.test_predictions).all()
    # the model that is kept still turns series into features itself
    assert (once.fitted.predict(X_test) == expected.fitted.predict(X_test)).all()
    assert once.transform_seconds > 0


def test_too_many_folds_for_the_smallest_class(compose_cfg):
    cfg = compose_cfg("dataset=unit_test", "preprocess=catch22", *TINY)
    X, y, X_test, y_test = load_panel(cfg.dataset)
    with pytest.raises(BadInput, match="dataset.cv.folds=11: the smallest class"):
        classification_evaluation.evaluate_classifier(None, build_model(cfg.model), X, y, X_test, y_test, folds=11, seed=0)


@pytest.mark.parametrize("overrides, fragment", [
    (["dataset=gunpoint", "preprocess=deseasonalize"],
     "preprocess='deseasonalize': does not apply to dataset=gunpoint, a classification dataset. "
     "Allowed: catch22, minirocket, raw, summary"),
    (["dataset=gunpoint", "preprocess=catch22", "model=naive"], "Allowed: catboost, knn_dtw"),
    (["dataset=airline", "preprocess=minirocket"], "Allowed: boxcox, deseasonalize, detrend"),
    (["dataset=gunpoint", "preprocess=minirocket", "model=knn_dtw"],
     "turns the series into features, but model=knn_dtw compares the series themselves. Allowed: raw"),
    (["dataset=japanese_vowels", "preprocess=raw"], "has series of unequal lengths"),
    (["dataset=csv", "dataset.path=x.csv", "dataset.time_column=t", "dataset.target=y", "dataset.freq=M",
      "dataset.task=classification"], "classification from a CSV file is not supported yet"),
])
def test_task_mismatches_are_named(compose_cfg, overrides, fragment):
    cfg = compose_cfg(*overrides)
    choices = {group: option.split("=")[1] for option in overrides
               for group in ("dataset", "preprocess", "model") if option.startswith(f"{group}=")}
    with pytest.raises(BadInput) as raised:
        checks.check_task(cfg, {"model": "catboost", "preprocess": "none", **choices}, CONF)
    assert fragment in str(raised.value)


@pytest.mark.slow
def test_a_classification_run_and_sweep_end_to_end(train, client, tracking_uri, monkeypatch,
                                                    tmp_path):
    alone = train("dataset=unit_test", "preprocess=catch22")
    (single,) = runs_of(client)
    # the logged model classifies series as the run reported
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    import mlflow.pyfunc
    from sktime.datasets import load_unit_test

    X_test, y_test = load_unit_test(split="test", return_X_y=True)
    model = mlflow.pyfunc.load_model(f"runs:/{single.info.run_id}/model", dst_path=str(tmp_path))
    predictions = model.predict(X_test)
    assert np.mean(np.asarray(predictions) == y_test) == pytest.approx(single.data.metrics["test_accuracy"])
    metrics = single.data.metrics
    for name in ("cv_accuracy", "cv_balanced_accuracy", "cv_f1_macro", "test_accuracy"):
        assert 0 <= metrics[name] <= 1
    assert metrics["n_features"] == 22 and metrics["transform_seconds"] > 0 and "cv_log_loss" in metrics
    assert {a.path for a in client.list_artifacts(single.info.run_id)} >= {
        "confusion_matrix.png", "cv_folds.csv", "config.yaml"}
    (output,) = single.outputs.model_outputs
    assert client.get_logged_model(output.model_id).source_run_id == single.info.run_id
    contexts = sorted(tag.value for item in single.inputs.dataset_inputs for tag in item.tags)
    assert contexts == ["test", "train"]
    assert single.data.params["model.border_count"] == "254"  # 22 catch22 features: CatBoost's default
    assert [m.step for m in client.get_metric_history(single.info.run_id, "fold_cv_accuracy")] == [0, 1, 2, 3, 4]

    swept = train("-m", "dataset=gunpoint", "preprocess=summary,minirocket")
    # no hints of MLflow's about a model's input schema, which has no example on purpose
    assert "Warning" not in alone.stderr + swept.stderr, (alone.stderr + swept.stderr)[-3000:]
    runs = runs_of(client)
    parent = [r for r in runs if r.data.tags.get("tssweep.role") == "parent"][0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.data.params["preprocess.name"] for c in children) == ["minirocket", "summary"]
    best = max(children, key=lambda c: c.data.metrics["cv_accuracy"])  # accuracy: higher wins
    assert parent.data.tags["best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_cv_accuracy"] == pytest.approx(best.data.metrics["cv_accuracy"])
    assert parent.info.status == "FINISHED"
    assert sorted(c.info.run_name for c in children) == ["minirocket", "summary"]
    assert parent.info.run_name == "gunpoint · preprocess ×2"

    # the summary in the task's words: cross-validation, the test split's own column
    folder = client.download_artifacts(parent.info.run_id, "", str(tmp_path / "parent"))
    text = (Path(folder) / "summary.md").read_text()
    assert text.startswith("# Sweep summary, ranked by cross-validation `cv_accuracy`")
    assert "backtest" not in text
    table = pd.read_csv(Path(folder) / "children.csv")
    assert "test_cv_accuracy" not in table
    assert table.set_index("run_name")["test_accuracy"].to_dict() == pytest.approx(
        {c.info.run_name: c.data.metrics["test_accuracy"] for c in children})
