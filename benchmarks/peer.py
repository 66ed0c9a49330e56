"""tssweep against what a careful user would write by hand, on the same trainings.

The same N trainings of the default config (airline, no preprocessing, CatBoost; seeds
0..N-1; each five backtest folds plus the holdout refit, through the same
``evaluate_forecaster``) run three ways, each a fresh process, so imports count:

  bare        sktime and CatBoost in a loop: no Hydra, no MLflow;
  hand        the loop plus plain MLflow: one parent with N nested children
              (``start_run(nested=True)``), one ``log_batch`` of params, scores and
              per-fold metrics each, and the fitted pipeline pickled as an artifact;
  tssweep     ``python src/train.py -m seed=range(0,N)``: everything tssweep logs (the
              config, plots, per-fold tables, a loadable model, the verdict, the
              registered winner).

Both tracked sides write to a fresh SQLite store (its schema created in the run, as a
new user's first command does), then run a second time into their now warm store: the
hand-written loop on a warm store is the floor of what tracking these trainings in
MLflow costs. Rounds are interleaved, so a slow spell of the machine hits every side;
medians are printed, with the ratios the issue sets as targets (tssweep <= 1.0 x hand
on a fresh store, <= 1.15 x bare on a warm one). Everything is measured here, in this
run.

    .venv/bin/python benchmarks/peer.py [--jobs 8] [--repeats 3] [--before /path/to/older/checkout]

``--before`` adds tssweep from another checkout (``git worktree add /tmp/old <commit>``)
as a fifth side, run in the same rounds: a before-and-after of a change, measured together.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the trainings both loops run: the default config's dataset and model
SETUP = """
import sys, time
from omegaconf import OmegaConf
from sktime.datasets import load_airline
from tssweep.forecast_evaluation import evaluate_forecaster
from tssweep.model import catboost

jobs, root = int(sys.argv[1]), sys.argv[2]
dataset = OmegaConf.load(root + "/conf/dataset/airline.yaml")
settings = OmegaConf.load(root + "/conf/model/catboost.yaml")
series = load_airline().astype(float)
params = dict(task="forecasting", window_length=dataset.seasonal_period, strategy=settings.strategy,
              rsm=None, border_count=None, iterations=settings.iterations, depth=settings.depth,
              learning_rate=settings.learning_rate, l2_leaf_reg=settings.l2_leaf_reg,
              thread_count=settings.thread_count)
"""

BARE = SETUP + """
for seed in range(jobs):
    evaluate_forecaster(catboost(seed=seed, **params), series, dataset)
"""

HAND = SETUP + """
import os, pickle, tempfile
import mlflow
from mlflow.entities import Metric, Param

mlflow.set_tracking_uri(sys.argv[3])
client = mlflow.MlflowClient()
# artifacts beside the store, in the benchmark's temp folder: not ./mlruns
client.get_experiment_by_name("hand") or client.create_experiment("hand", artifact_location=sys.argv[4])
mlflow.set_experiment("hand")
with mlflow.start_run(run_name="seed sweep"):
    for seed in range(jobs):
        with mlflow.start_run(run_name=f"seed={seed}", nested=True) as run:
            scores = evaluate_forecaster(catboost(seed=seed, **params), series, dataset)
            now = int(time.time() * 1000)
            metrics = [Metric(k, v, now, 0) for k, v in {**scores.backtest_scores, **scores.test_scores}.items()]
            metrics += [Metric(f"fold_{name}", float(value), now, fold)
                        for name in scores.backtest_scores
                        for fold, value in enumerate(scores.fold_scores[name])]
            client.log_batch(run.info.run_id, metrics=metrics,
                             params=[Param(k, str(v)) for k, v in {**params, "seed": seed}.items()])
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "pipeline.pkl")
                with open(path, "wb") as file:
                    pickle.dump(scores.fitted, file)
                mlflow.log_artifact(path)
"""


def timed(command: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True,
                   env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})})
    return time.perf_counter() - start


def tssweep_sides(tree: Path, jobs: str) -> tuple[float, float]:
    """``src/train.py -m seed=range(0,jobs)`` of the checkout ``tree``: on a fresh store,
    then again on the same, now warm, store."""
    with tempfile.TemporaryDirectory() as folder:
        sweep = [sys.executable, str(tree / "src" / "train.py"), "-m", f"seed=range(0,{jobs})",
                 f"paths.output_dir={folder}/outputs"]
        env = {"MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db"}
        return timed(sweep, env, tree), timed(sweep, env, tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians are printed")
    parser.add_argument("--before", type=Path, help="another checkout of tssweep, measured alongside")
    args = parser.parse_args()
    jobs = str(args.jobs)

    walls: dict[str, list[float]] = {"bare": [], "hand": [], "hand warm": [], "tssweep": [], "tssweep warm": [],
                                     "before warm": []}
    for _ in range(args.repeats):
        walls["bare"].append(timed([sys.executable, "-c", BARE, jobs, str(ROOT)]))
        with tempfile.TemporaryDirectory() as folder:
            hand = [sys.executable, "-c", HAND, jobs, str(ROOT), f"sqlite:///{folder}/mlflow.db",
                    Path(folder, "artifacts").as_uri()]
            walls["hand"].append(timed(hand, cwd=Path(folder)))
            walls["hand warm"].append(timed(hand, cwd=Path(folder)))
        fresh, warm = tssweep_sides(ROOT, jobs)
        walls["tssweep"].append(fresh)
        walls["tssweep warm"].append(warm)
        if args.before:
            walls["before warm"].append(tssweep_sides(args.before.resolve(), jobs)[1])

    median = {side: statistics.median(values) for side, values in walls.items() if values}
    print(f"{jobs} trainings of the default config (airline, CatBoost, 5 folds + holdout); "
          f"medians of {args.repeats} interleaved rounds, each side a fresh process")
    print("  side                                   wall     / bare   / hand")
    for side, label in (("bare", "bare loop (no tracking)"), ("hand", "hand-written MLflow, fresh store"),
                        ("hand warm", "hand-written MLflow, warm store"),
                        ("tssweep", "tssweep, fresh store"), ("tssweep warm", "tssweep, warm store"),
                        ("before warm", "--before checkout, warm store")):
        if side not in median:
            continue
        print(f"  {label:<36} {median[side]:6.2f} s   {median[side] / median['bare']:5.2f}   "
              f"{median[side] / median['hand']:5.2f}")
    fresh_vs_hand = median["tssweep"] / median["hand"]
    warm_vs_bare = median["tssweep warm"] / median["bare"]
    print(f"  targets: tssweep / hand <= 1.00 (now {fresh_vs_hand:.2f}: "
          f"{'met' if fresh_vs_hand <= 1.0 else 'not met'}); tssweep warm / bare <= 1.15 "
          f"(now {warm_vs_bare:.2f}: {'met' if warm_vs_bare <= 1.15 else 'not met'})")


if __name__ == "__main__":
    main()
