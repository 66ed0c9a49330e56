"""What fold-level pruning saves on an Optuna search, and what it costs in quality.

The same seeded search (``hparams_search=catboost_optuna``, N trials, default dataset)
runs twice, each as ``python src/train.py -m`` in a fresh folder: once with the default
median pruner, once with ``hydra/sweeper/pruner=none``. Printed: wall time of each, the
ratio, how many trials were pruned, and the best backtest value each search found (and
that trial's holdout score, which neither search saw). Both runs are measured here, in
this run.

    .venv/bin/python benchmarks/pruning.py [--trials 40] [--dataset airline]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def search(folder: str, trials: int, dataset: str, pruner: str) -> dict:
    import optuna
    from mlflow import MlflowClient

    uri = f"sqlite:///{folder}/mlflow.db"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "src/train.py", "-m", "hparams_search=catboost_optuna",
         f"dataset={dataset}", f"hydra.sweeper.n_trials={trials}", f"hydra/sweeper/pruner={pruner}",
         f"paths.output_dir={folder}/outputs"],
        cwd=ROOT, check=True, capture_output=True, text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"})
    seconds = time.perf_counter() - start
    study = optuna.load_study(study_name=f"catboost_optuna-{dataset}",
                              storage=f"sqlite:///{folder}/outputs/optuna.db")
    states = [t.state.name for t in study.trials]
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tssweep")
    (best_run,) = client.search_runs(
        [experiment.experiment_id], f"tags.`optuna.trial_number` = '{study.best_trial.number}'")
    return {"seconds": seconds, "pruned": states.count("PRUNED"), "failed": states.count("FAIL"),
            "best": study.best_value, "best_test": best_run.data.metrics.get("test_mase"),
            "best_trial": study.best_trial.number}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--dataset", default="airline")
    args = parser.parse_args()

    results = {}
    for pruner in ("median", "none"):
        with tempfile.TemporaryDirectory() as folder:
            results[pruner] = search(folder, args.trials, args.dataset, pruner)

    on, off = results["median"], results["none"]
    print(f"{args.trials}-trial catboost_optuna search on {args.dataset} (TPE, seed 42)")
    for name, r in (("median pruner", on), ("no pruning", off)):
        print(f"  {name:14s} {r['seconds']:7.1f} s   pruned {r['pruned']:2d}  failed {r['failed']:2d}   "
              f"best mase {r['best']:.4f} (trial {r['best_trial']}, holdout test_mase {r['best_test']:.4f})")
    print(f"  wall time with pruning / without: {on['seconds'] / off['seconds']:.2f} "
          f"({100 * (1 - on['seconds'] / off['seconds']):.0f}% saved); "
          f"best value with / without: {on['best'] / off['best']:.3f}")


if __name__ == "__main__":
    main()
