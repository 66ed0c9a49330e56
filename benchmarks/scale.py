"""Where the jobs run and where the runs go: the same sweep on each launcher and store.

The same 8-job sweep (``seed=range(0,8)``, the default config: airline, CatBoost, full
backtest and holdout each) runs, each as a fresh ``python src/train.py -m`` process:

  (a) cluster=local   tracking=local   the default: one job after another, SQLite
  (b) cluster=joblib  tracking=local   this machine's cores, one job per core
  (c) cluster=local   tracking=server  one job after another, MLflow server on PostgreSQL
  (d) cluster=ray     tracking=server  Ray on the local stack, one CPU per job

Printed: wall time of each and its ratio to (a), measured here in this run. Then the
tracking latency per run, median over ``--runs`` runs: create a run, log 40 params and
10 metrics in one batch, close it, against the server and against SQLite.

The local stack (``python -m tssweep.stack``) is started in a temporary dir on free
ports for the measurement and stopped after it.

    .venv/bin/python benchmarks/scale.py [--jobs 8] [--repeats 1] [--runs 50] [OVERRIDE ...]

Overrides go to every sweep, e.g. ``model.thread_count=1`` (one CatBoost thread per job
everywhere, where the parallel launchers can show their speed-up).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPS = {
    "a": ("cluster=local", "tracking=local"),
    "b": ("cluster=joblib", "tracking=local"),
    "c": ("cluster=local", "tracking=server"),
    "d": ("cluster=ray", "tracking=server"),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sweep(setup: str, jobs: int, env: dict[str, str], work: Path, uri: str,
          overrides: list[str]) -> float:
    cluster, tracking = SETUPS[setup]
    store = [f"tracking.uri={uri}"] if tracking == "tracking=server" else \
        [f"tracking.uri=sqlite:///{work}/{setup}-{time.monotonic_ns()}.db",
         f"tracking.artifact_location={work}/artifacts"]
    command = [sys.executable, str(ROOT / "src" / "train.py"), "-m", f"seed=range(0,{jobs})",
               cluster, tracking, *store, *overrides, f"hydra.sweep.dir={tempfile.mkdtemp(dir=work)}"]
    if cluster == "cluster=ray":
        command = [sys.executable, "-m", "tssweep.stack", "exec", "--", *command]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{cluster} {tracking} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return seconds


def tracking_latency(uri: str, runs: int) -> float:
    """Median seconds for one run's round trip: create, one batch of 40 params and 10
    metrics, close."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=uri)
    name = f"latency-{time.monotonic_ns()}"
    experiment = client.create_experiment(name)
    timings = []
    with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints each closed run's URL
        for n in range(runs):
            start = time.perf_counter()
            run_id = client.create_run(experiment, run_name=f"run {n}").info.run_id
            now = int(time.time() * 1000)
            client.log_batch(run_id, params=[Param(f"p{i}", str(i)) for i in range(40)],
                             metrics=[Metric(f"m{i}", float(i), now, 0) for i in range(10)])
            client.set_terminated(run_id)
            timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("overrides", nargs="*", help="config overrides for every sweep")
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    work = Path(tempfile.mkdtemp(prefix="tssweep-bench-scale-", dir="/tmp"))
    work.chmod(0o755)  # PostgreSQL runs as its own user when this runs as root
    mlflow_port = free_port()
    env = {**os.environ, "TSSWEEP_STACK_DIR": str(work / "stack"), "MLFLOW_TRACKING_URI": "",
           "TSSWEEP_STACK_MLFLOW_PORT": str(mlflow_port), "TSSWEEP_STACK_PG_PORT": str(free_port()),
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    uri = f"http://127.0.0.1:{mlflow_port}"
    up = subprocess.run([sys.executable, "-m", "tssweep.stack", "up"], cwd=ROOT, env=env,
                        capture_output=True, text=True)
    if up.returncode:
        raise SystemExit(up.stdout + up.stderr)
    try:
        print(f"{args.jobs}-job sweep {' '.join(args.overrides)}, {os.cpu_count()} cores, "
              f"{args.repeats} round(s), interleaved; medians")
        seconds: dict[str, list[float]] = {setup: [] for setup in SETUPS}
        for _ in range(args.repeats):
            for setup in SETUPS:
                seconds[setup].append(sweep(setup, args.jobs, env, work, uri, args.overrides))
        base = statistics.median(seconds["a"])
        for setup, (cluster, tracking) in SETUPS.items():
            median = statistics.median(seconds[setup])
            print(f"  ({setup}) {cluster:15s} {tracking:16s} {median:7.1f} s   x{median / base:.2f} of (a)")
        server = tracking_latency(uri, args.runs)
        sqlite = tracking_latency(f"sqlite:///{work}/latency.db", args.runs)
        print(f"Tracking latency per run (median of {args.runs}): server on PostgreSQL "
              f"{server * 1000:.0f} ms, SQLite {sqlite * 1000:.0f} ms, x{server / sqlite:.2f}")
    finally:
        down = subprocess.run([sys.executable, "-m", "tssweep.stack", "down"], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        if down.returncode == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"The stack in {work} did not stop cleanly:\n{down.stderr}", file=sys.stderr)


if __name__ == "__main__":
    main()
