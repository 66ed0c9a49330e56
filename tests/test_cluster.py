"""The scaled-out setup on one machine: the local stack (PostgreSQL, an MLflow server on
it, a Ray head in a private network namespace), started by the tests in a temporary
dir on free ports and stopped by them.

Starting the stack takes about 15 seconds, so one test brings it up and runs the steps
below against it in order (pytest-xdist 3.8 does not keep ``xdist_group`` tests on one
worker under pytest 9), and the last step stops it and checks that nothing is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from conftest import FAST, ROOT, free_port
from tssweep import stack as local_stack

pytestmark = pytest.mark.slow


def stack_command(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tssweep.stack", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def stack():
    # PostgreSQL runs as the postgres user when the tests run as root: a dir it can reach
    directory = Path(tempfile.mkdtemp(prefix="tssweep-stack-", dir="/tmp"))
    directory.chmod(0o755)
    env = {**os.environ, "TSSWEEP_STACK_DIR": str(directory), "TSSWEEP_STACK_CPUS": "2",
           "TSSWEEP_STACK_MLFLOW_PORT": str(free_port()), "TSSWEEP_STACK_PG_PORT": str(free_port()),
           "MLFLOW_TRACKING_URI": ""}
    started = stack_command(env, "up")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield Stack(env)
    finally:
        stopped = stack_command(env, "down")  # a no-op when the last test already stopped it
        if stopped.returncode == 0:
            shutil.rmtree(directory, ignore_errors=True)


class Stack:
    def __init__(self, env: dict[str, str]):
        self.env = env
        self.settings = local_stack.Stack(dir=Path(env["TSSWEEP_STACK_DIR"]),
                                          mlflow_port=int(env["TSSWEEP_STACK_MLFLOW_PORT"]),
                                          pg_port=int(env["TSSWEEP_STACK_PG_PORT"]))
        self.uri = self.settings.mlflow_uri
        self.client = MlflowClient(tracking_uri=self.uri)

    def train(self, *args: str, inside: bool = True, store: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """``python src/train.py ARGS`` against the stack's server (or ``store``); ``inside``
        the namespace (where Ray is) through ``python -m tssweep.stack exec``."""
        store = store or ("tracking=server", f"tracking.uri={self.uri}")
        command = [sys.executable, str(ROOT / "src" / "train.py"), "-m", *FAST, *args, *store,
                   "tracking.experiment=cluster", f"hydra.sweep.dir={tempfile.mkdtemp(dir=self.settings.dir)}"]
        if inside:
            command = [sys.executable, "-m", "tssweep.stack", "exec", "--", *command]
        return subprocess.run(command, env=self.env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=600)

    def runs(self, parent_id: str | None = None, experiment: str = "cluster") -> list:
        experiment = self.client.get_experiment_by_name(experiment)
        if experiment is None:
            return []
        where = f"tags.`mlflow.parentRunId` = '{parent_id}'" if parent_id else ""
        return list(self.client.search_runs([experiment.experiment_id], filter_string=where))

    def parent_of(self, process: subprocess.CompletedProcess):
        run_id = process.stdout.split("MLflow parent run ")[1].split()[0]
        return self.client.get_run(run_id)


def the_stack_listens_on_loopback_only(stack):
    assert local_stack.listeners_outside_loopback(stack.settings) == []
    state = local_stack.read_state(stack.settings)
    # Ray lives in a namespace whose only interface is loopback
    interfaces = Path(f"/proc/{state.netns_pid}/net/dev").read_text().splitlines()[2:]
    assert [line.split(":")[0].strip() for line in interfaces] == ["lo"]
    names = {Path(f"/proc/{pid}/comm").read_text().strip()
             for pid in local_stack.namespace_pids(state)}
    assert {"gcs_server", "raylet"} <= names
    # and nothing of Ray is outside it
    outside = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
               if pid not in local_stack.namespace_pids(state) and Path(f"/proc/{pid}/comm").exists()
               and os.getpgid(pid) in state.groups.values()}
    assert not outside & {"gcs_server", "raylet"}


def a_grid_sweep_on_ray_nests_under_one_parent(stack):
    done = stack.train("cluster=ray", "preprocess=none,log,detrend,deseasonalize")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "Ray is launching 4 jobs" in done.stdout
    parent = stack.parent_of(done)
    children = stack.runs(parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["tssweep.role"] == "parent"
    assert sorted(c.data.params["preprocess.name"] for c in children) == \
        ["deseasonalize", "detrend", "log", "none"]
    assert {c.info.status for c in children} == {"FINISHED"}
    # ran as Ray tasks: one reserved CPU each, hence one CatBoost thread
    assert {c.data.params["model.thread_count"] for c in children} == {"1"}
    assert "forecast.png" in {a.path for a in stack.client.list_artifacts(children[0].info.run_id)}
    assert parent.data.metrics["n_finished"] == 4 and "best_mase" in parent.data.metrics


def a_failed_job_on_ray_is_a_failed_child_and_the_parent_is_closed(stack):
    # a log transform cannot apply to pbs, which holds zeros
    done = stack.train("cluster=ray", "dataset=pbs", "preprocess=none,log")
    assert done.returncode == 1, done.stdout[-4000:]
    parent = stack.parent_of(done)
    children = {c.data.params["preprocess.name"]: c for c in stack.runs(parent.info.run_id)}
    assert {name: c.info.status for name, c in children.items()} == {"none": "FINISHED", "log": "FAILED"}
    assert "traceback.txt" in {a.path for a in stack.client.list_artifacts(children["log"].info.run_id)}
    assert parent.info.status == "FAILED" and parent.data.metrics["n_failed"] == 1


def a_second_node_takes_jobs_and_sqlite_is_refused(stack):
    # a second Ray node, on this machine but inside the namespace: a two-node cluster
    joined = subprocess.run([sys.executable, "-m", "tssweep.stack", "exec", "--", "ray", "start",
                             f"--address={stack.settings.ray_address}", "--num-cpus=1",
                             f"--temp-dir={stack.settings.ray_temp}", "--disable-usage-stats"],
                            env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    refused = stack.train("cluster=ray", "preprocess=none,log",
                          store=("tracking=local", f"tracking.uri=sqlite:///{stack.settings.dir}/local.db"))
    assert refused.returncode == 1
    assert "the Ray cluster has 2 nodes" in refused.stdout and "Traceback" not in refused.stdout
    assert not (stack.settings.dir / "local.db").exists()  # refused before any run
    done = stack.train("cluster=ray", "preprocess=none,log,detrend")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "2 node(s), 3.0 CPUs" in done.stdout
    children = stack.runs(stack.parent_of(done).info.run_id)
    assert len(children) == 3 and {c.info.status for c in children} == {"FINISHED"}


def an_interrupted_sweep_on_ray_closes_every_run(stack):
    command = [sys.executable, "-m", "tssweep.stack", "exec", "--", sys.executable,
               str(ROOT / "src" / "train.py"), "-m", "cluster=ray", "model.iterations=3000",
               "preprocess=none,log,detrend,deseasonalize", "tracking=server",
               f"tracking.uri={stack.uri}", "tracking.experiment=interrupted",
               f"hydra.sweep.dir={tempfile.mkdtemp(dir=stack.settings.dir)}"]
    sweep = subprocess.Popen(command, env=stack.env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not [r for r in stack.runs(experiment="interrupted") if r.data.tags.get("tssweep.role") == "child"]:
        assert sweep.poll() is None and time.monotonic() < deadline, "no child run started"
        time.sleep(0.5)
    sweep.send_signal(signal.SIGINT)
    output = sweep.communicate(timeout=120)[0]
    assert sweep.returncode == 130, output[-3000:]
    time.sleep(2)  # the cancelled tasks close their runs as they stop
    runs = stack.runs(experiment="interrupted")
    assert "RUNNING" not in {r.info.status for r in runs}
    (parent,) = [r for r in runs if r.data.tags.get("tssweep.role") == "parent"]
    assert parent.info.status == "KILLED"
    assert "KILLED" in {r.info.status for r in runs if r.data.tags.get("tssweep.role") == "child"}


def two_search_processes_share_one_postgres_study(stack):
    storage = stack.settings.pg_url("optuna")
    search = ["hparams_search=catboost_optuna", f"hydra.sweeper.storage={storage}",
              "hydra.sweeper.study_name=shared", "hydra.sweeper.n_trials=8"]
    commands = [[sys.executable, str(ROOT / "src" / "train.py"), "-m", *FAST, *search,
                 "tracking=server", f"tracking.uri={stack.uri}", "tracking.experiment=cluster",
                 f"hydra.sweep.dir={stack.settings.dir}/search-{n}"] for n in (1, 2)]
    processes = [subprocess.Popen(c, env=stack.env, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for c in commands]
    errors = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], errors[0][-3000:] + errors[1][-3000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = [t for t in study.trials if "duplicate_of" not in t.user_attrs]  # repeats never ran
    assert len(trials) == 8 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 8  # eight distinct settings
    # both processes ran trials, all under one parent
    assert all("Launching 1 jobs locally" in e for e in errors)
    parents = [r for r in stack.runs() if r.data.tags.get("tssweep.study", "").startswith("shared @")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = stack.runs(parents[0].info.run_id)
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == \
        sorted(t.number for t in trials)


def stack_down_stops_exactly_what_it_started(stack):
    state = local_stack.read_state(stack.settings)
    inside = local_stack.namespace_pids(state)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                 start_new_session=True)
    try:
        stopped = stack_command(stack.env, "down")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert not [pid for pid in inside if local_stack.alive(pid)]
        for pgid in state.groups.values():
            assert not local_stack.group_alive(pgid)
        for port in (stack.settings.mlflow_port, stack.settings.pg_port):
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", port)) != 0
        assert not (stack.settings.dir / "state.json").exists()
        assert bystander.poll() is None  # not one of the stack's: still running
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait()


def test_the_local_stack_end_to_end(stack):
    the_stack_listens_on_loopback_only(stack)
    a_grid_sweep_on_ray_nests_under_one_parent(stack)
    a_failed_job_on_ray_is_a_failed_child_and_the_parent_is_closed(stack)
    an_interrupted_sweep_on_ray_closes_every_run(stack)
    a_second_node_takes_jobs_and_sqlite_is_refused(stack)
    two_search_processes_share_one_postgres_study(stack)
    stack_down_stops_exactly_what_it_started(stack)


def test_cluster_ray_with_no_cluster_there_stops_before_any_run(train, client):
    process = train("-m", "cluster=ray", "preprocess=none,log", check=False,
                    env={"RAY_ADDRESS": f"127.0.0.1:{free_port()}"})
    assert process.returncode == 1
    assert "hydra.launcher.ray.init.address=" in process.stderr and "no Ray cluster answers" in process.stderr
    assert "Traceback" not in process.stderr
    experiment = client.get_experiment_by_name("tssweep")
    assert experiment is None or not client.search_runs([experiment.experiment_id])
