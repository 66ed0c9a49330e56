"""The same sweep against a real MLflow tracking server, started on 127.0.0.1 by the
test and stopped by it: nesting, metrics and artifacts come out as with SQLite."""

import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import free_port, mlflow_command, wait_for_health

pytestmark = pytest.mark.slow


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    with mlflow_command("server", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
                        "--artifacts-destination", str(tmp_path / "server-artifacts"),
                        port=port, cwd=tmp_path) as uri:
        yield uri
    with socket.socket() as check:  # stopped: nothing listens on its port any more
        assert check.connect_ex(("127.0.0.1", port)) != 0


def test_a_sweep_against_a_tracking_server(train, mlflow_server):
    # MLFLOW_TRACKING_URI empty: the config's tracking.uri applies
    train("-m", "preprocess=none,log", "tracking=server", f"tracking.uri={mlflow_server}",
          env={"MLFLOW_TRACKING_URI": ""})
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("tssweep")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("tssweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert parent.data.params == {} and "best_mase" in parent.data.metrics
    child = children[0]
    assert len(client.get_metric_history(child.info.run_id, "fold_mase")) == 5
    # artifacts went through the server to its artifact store
    assert {"forecast.png", "config.yaml"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
    (output,) = child.outputs.model_outputs  # the model, a LoggedModel stored by the server
    assert {"MLmodel", "requirements.txt"} <= {a.path for a in client.list_logged_model_artifacts(output.model_id)}
    assert "summary.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert child.data.params["tracking.uri"] == mlflow_server


def test_make_ui_is_one_lean_server_on_loopback(tmp_path, train):
    train("preprocess=detrend")  # a store with one run to show
    port = free_port()
    ui = subprocess.Popen(["make", "-s", "-C", str(Path(__file__).resolve().parents[1]), "ui",
                           f"PORT={port}", f"STORE=sqlite:///{tmp_path}/mlflow.db"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(uri, ui, "make ui")
        for _ in range(10):  # the runs page and the calls it makes
            urllib.request.urlopen(f"{uri}/", timeout=5).close()
            urllib.request.urlopen(f"{uri}/ajax-api/2.0/mlflow/experiments/search?max_results=10",
                                   timeout=5).close()
        group = subprocess.run(["pgrep", "-g", str(os.getpgid(ui.pid)), "-a"],
                               capture_output=True, text=True).stdout.splitlines()
        servers = [line for line in group if "mlflow" in line and " make " not in f" {line} "]
        # the mlflow command and its one uvicorn server: no job consumers, no extra workers
        assert len(servers) == 2 and sum("-m uvicorn" in line for line in servers) == 1, group
        with socket.socket() as probe:  # loopback only
            assert probe.connect_ex(("127.0.0.1", port)) == 0
    finally:
        os.killpg(os.getpgid(ui.pid), signal.SIGTERM)
        output = ui.communicate(timeout=30)[0]
    assert "GET /" not in output and len(output.splitlines()) < 20, output
