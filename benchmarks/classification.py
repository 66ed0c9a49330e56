"""CatBoost with each preprocessing on three UCR datasets, next to published accuracies.

Runs ``python src/train.py -m dataset=gunpoint,italy_power_demand,arrow_head
preprocess=raw,summary,catch22,minirocket`` with the default config (one sweep, into a
temporary store), plus ``model=knn_dtw preprocess=raw`` as the in-house baseline, and
prints each job's test accuracy and seconds beside the default-split test accuracies
published for 1-NN DTW (UCR archive 2018), MiniRocket and Catch22 + random forest
(Middlehurst et al. 2024, "Bake off redux"). The goals: CatBoost on MiniRocket beats
1-NN DTW everywhere and is within 3 points of MiniRocket; on catch22 within 3 points of
Catch22 + random forest.

    .venv/bin/python benchmarks/classification.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("gunpoint", "italy_power_demand", "arrow_head")
PUBLISHED = {  # dataset: (1-NN DTW full window, MiniRocket, Catch22 + random forest)
    "gunpoint": (0.907, 0.993, 0.967),
    "italy_power_demand": (0.950, 0.963, 0.896),
    "arrow_head": (0.703, 0.863, 0.726),
}


def sweep(folder: str, *overrides: str) -> None:
    subprocess.run([sys.executable, "src/train.py", "-m", f"dataset={','.join(DATASETS)}",
                    *overrides, f"paths.output_dir={folder}/outputs"], cwd=ROOT, check=True,
                   capture_output=True, text=True,
                   env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
                        "MLFLOW_DISABLE_TELEMETRY": "true"})


def main() -> None:
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as folder:
        sweep(folder, "preprocess=raw,summary,catch22,minirocket")
        sweep(folder, "model=knn_dtw", "preprocess=raw")
        client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")
        experiment = client.get_experiment_by_name("tssweep")
        runs = client.search_runs([experiment.experiment_id], "tags.`tssweep.role` = 'child'")

    results = {(r.data.params["dataset.name"], r.data.params["model.name"], r.data.params["preprocess.name"]):
               (r.data.metrics.get("test_accuracy"), (r.info.end_time - r.info.start_time) / 1000)
               for r in runs}
    print("Test accuracy on the official split (seconds per job: cross-validation + final fit)\n")
    print(f"{'dataset':20s} {'model + preprocess':24s} {'accuracy':>8s} {'seconds':>8s}   published")
    for name in DATASETS:
        dtw, minirocket, catch22 = PUBLISHED[name]
        reference = {"minirocket": f"MiniRocket {minirocket:.3f}", "catch22": f"Catch22+RF {catch22:.3f}",
                     "raw": f"1-NN DTW {dtw:.3f}"}
        for model, option in [("catboost", p) for p in ("raw", "summary", "catch22", "minirocket")] + \
                [("knn_dtw", "raw")]:
            accuracy, seconds = results[(name, model, option)]
            published = reference.get(option, "") if model == "catboost" or option == "raw" else ""
            print(f"{name:20s} {model + ' + ' + option:24s} {accuracy:8.3f} {seconds:8.1f}   {published}")
        print()
    for name in DATASETS:
        dtw, minirocket, catch22 = PUBLISHED[name]
        rocket = results[(name, "catboost", "minirocket")][0]
        c22 = results[(name, "catboost", "catch22")][0]
        print(f"{name}: minirocket {rocket - minirocket:+.3f} vs MiniRocket, {rocket - dtw:+.3f} vs 1-NN DTW; "
              f"catch22 {c22 - catch22:+.3f} vs Catch22+RF")


if __name__ == "__main__":
    main()
