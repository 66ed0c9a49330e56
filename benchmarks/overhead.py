"""What Hydra and MLflow cost on top of the training itself.

The same N trainings of the default config (airline, no preprocessing, CatBoost; seeds
0..N-1; each a full backtest plus holdout fit) run

  (a) as a bare Python loop: sktime and CatBoost only, no Hydra, no MLflow;
  (b) as ``python src/train.py -m seed=range(0,N)``: one parent run, N children,
      every param, metric, plot and model logged to a SQLite store;

each as a fresh process, so imports count on both sides. Printed: wall times, the
ratio b/a on a fresh store and on a warm one (second sweep into the same store), and
the median per-job tracking overhead (a child's time in MLflow minus the same job's
training time in the bare loop). Timings are measured here, in this run, never
compared with numbers from elsewhere.

    .venv/bin/python benchmarks/overhead.py [--jobs 8] [--thread-count 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE_LOOP = """
import json, sys, time
from omegaconf import OmegaConf
from sktime.datasets import load_airline
from tssweep.forecast_evaluation import evaluate_forecaster
from tssweep.model import catboost

dataset = OmegaConf.load(sys.argv[2] + "/conf/dataset/airline.yaml")
model = OmegaConf.load(sys.argv[2] + "/conf/model/catboost.yaml")
thread_count = int(sys.argv[3]) if len(sys.argv) > 3 else model.thread_count
series = load_airline().astype(float)
seconds = []
for seed in range(int(sys.argv[1])):
    start = time.perf_counter()
    forecaster = catboost(
        task="forecasting", window_length=dataset.seasonal_period, strategy=model.strategy,
        rsm=None, border_count=None,
        iterations=model.iterations, depth=model.depth, learning_rate=model.learning_rate,
        l2_leaf_reg=model.l2_leaf_reg, seed=seed, thread_count=thread_count)
    evaluate_forecaster(forecaster, series, dataset)
    seconds.append(time.perf_counter() - start)
print(json.dumps(seconds))
"""


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})})
    return time.perf_counter() - start, done.stdout


def child_seconds(uri: str) -> list[float]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tssweep")
    runs = client.search_runs([experiment.experiment_id], "tags.`tssweep.role` = 'child'")
    return [(r.info.end_time - r.info.start_time) / 1000 for r in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--thread-count", type=int, default=None,
                        help="CatBoost threads on both sides (default: the config's)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of (a), fresh (b) and warm (b); medians are printed")
    args = parser.parse_args()
    jobs = args.jobs
    threads = [] if args.thread_count is None else [str(args.thread_count)]

    bare_walls, fresh_walls, warm_walls, bare_jobs, children = [], [], [], [], []
    for _ in range(args.repeats):  # interleaved, so a slow spell hits both sides
        wall, out = timed([sys.executable, "-c", BARE_LOOP, str(jobs), str(ROOT), *threads])
        bare_walls.append(wall)
        bare_jobs += json.loads(out.strip().splitlines()[-1])
        with tempfile.TemporaryDirectory() as folder:
            uri = f"sqlite:///{folder}/mlflow.db"
            sweep = [sys.executable, "src/train.py", "-m", f"seed=range(0,{jobs})",
                     f"paths.output_dir={folder}/outputs",
                     *[f"model.thread_count={t}" for t in threads]]
            env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
            fresh_walls.append(timed(sweep, env)[0])
            warm_walls.append(timed(sweep, env)[0])
            children += child_seconds(uri)

    bare, fresh, warm = (statistics.median(w) for w in (bare_walls, fresh_walls, warm_walls))
    bare_median = statistics.median(bare_jobs)
    overhead_ms = 1000 * (statistics.median(children) - bare_median)
    setting = f"thread_count={args.thread_count}" if threads else "default config"
    print(f"{jobs} trainings, {setting} (airline, CatBoost, seeds 0..{jobs - 1}); "
          f"medians of {args.repeats} rounds")
    print(f"  (a) bare loop, no Hydra, no MLflow   {bare:6.2f} s   (median job {bare_median:.3f} s)")
    print(f"  (b) sweep, fresh SQLite store        {fresh:6.2f} s   b/a = {fresh / bare:.2f}")
    print(f"  (b) sweep, warm SQLite store         {warm:6.2f} s   b/a = {warm / bare:.2f}")
    print(f"  median tracking overhead per job     {overhead_ms:6.0f} ms  "
          f"(child run {statistics.median(children):.3f} s vs bare job {bare_median:.3f} s)")
    print(f"  spread of b/a (warm) over rounds: "
          f"{min(w / b for w, b in zip(warm_walls, bare_walls)):.2f}-"
          f"{max(w / b for w, b in zip(warm_walls, bare_walls)):.2f}")


if __name__ == "__main__":
    main()
