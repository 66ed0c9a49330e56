"""Shared fixtures: composed configs, a real SQLite MLflow store per test, and a runner
for ``src/train.py`` and ``src/predict.py`` as users run them (subprocesses), pointed
at that store."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# Small CatBoost so end-to-end runs take seconds; the code path is the real one.
FAST = ["model.iterations=30", "model.depth=4"]


@pytest.fixture
def compose_cfg(tmp_path, monkeypatch):
    """Compose ``conf/`` with overrides, as Hydra would for a job (no run dir, no callback)."""
    monkeypatch.setenv("TSSWEEP_ROOT", str(ROOT))

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("config", overrides=[f"paths.output_dir={tmp_path}/outputs", *overrides])
    return _compose


@pytest.fixture
def tracking_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/mlflow.db"


class StoreClient:
    """The :class:`MlflowClient` of a test's store, made when first used: making one
    creates a SQLite store's schema, which a command under test should find absent
    (as on a user's first run), and which a refused command must not leave."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self._client: MlflowClient | None = None

    def __getattr__(self, name: str):
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return getattr(self._client, name)


@pytest.fixture
def client(tracking_uri) -> MlflowClient:
    return StoreClient(tracking_uri)


def store_left_alone(tracking_uri: str) -> bool:
    """Whether a refused command left the SQLite store at ``tracking_uri`` as it found
    it when there was none: not created at all."""
    return not Path(tracking_uri.removeprefix("sqlite:///")).exists()


@pytest.fixture
def train(tmp_path, tracking_uri):
    """Run ``python src/train.py ARGS`` against the test's store; return the process."""
    def _train(*args: str, env: dict[str, str] | None = None, check: bool = True):
        process = subprocess.run(
            [sys.executable, str(ROOT / "src" / "train.py"), *command_line(args),
             f"paths.output_dir={tmp_path}/outputs"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
            env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
                 "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})})
        if check and process.returncode != 0:  # all of stderr: a writer's lines come first
            raise AssertionError(f"train.py {' '.join(args)} exited {process.returncode}:\n"
                                 f"{process.stderr}")
        return process
    return _train


@pytest.fixture
def predict(tmp_path, tracking_uri):
    """Run ``python src/predict.py ARGS`` against the test's store; return the process."""
    def _predict(*args: str, check: bool = True, store: str = tracking_uri):
        process = subprocess.run(
            [sys.executable, str(ROOT / "src" / "predict.py"), *args, f"paths.output_dir={tmp_path}/outputs"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
            env={**os.environ, "MLFLOW_TRACKING_URI": store, "MLFLOW_DISABLE_TELEMETRY": "true"})
        if check and process.returncode != 0:
            raise AssertionError(f"predict.py {' '.join(args)} exited {process.returncode}:\n"
                                 f"{process.stderr}")
        return process
    return _predict


# a sitecustomize that writes down, one module a line, what a sweep's writer process
# had imported when it ended (WRITER_MODULES) and what the sweep's own process had
# (SWEEP_MODULES, at its exit; the writer is forked from it)
_MODULES_HOOK = """\
import atexit, os, sys
from tssweep.tracking import writer
serve, sweep = writer._serve, os.getpid()
def _written(variable):
    with open(os.environ[variable], 'w') as out:
        out.write('\\n'.join(sorted(sys.modules)))
def recorded(*args):
    try:
        serve(*args)
    finally:
        _written('WRITER_MODULES')
writer._serve = recorded
atexit.register(lambda: os.getpid() == sweep and _written('SWEEP_MODULES'))
"""


def modules_hook(tmp_path: Path) -> dict[str, str]:
    """The environment of a command whose processes' modules are written down into
    ``tmp_path``'s writer_modules.txt and sweep_modules.txt (see ``_MODULES_HOOK``)."""
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_MODULES_HOOK)
    return {"PYTHONPATH": str(hook), "WRITER_MODULES": str(tmp_path / "writer_modules.txt"),
            "SWEEP_MODULES": str(tmp_path / "sweep_modules.txt")}


def command_line(args) -> list[str]:
    """``-m`` first, then FAST (for CatBoost only), then the test's own overrides, which
    win over FAST."""
    flags = [a for a in args if a in ("-m", "--multirun")]
    overrides = [a for a in args if a not in flags]
    catboost = not any(a.startswith("model=") and "catboost" not in a for a in overrides)
    return [*flags, *(FAST if catboost else []), *overrides]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def runs_of(client: MlflowClient, experiment: str = "tssweep") -> list:
    """Every run in the experiment, oldest first."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"experiment {experiment!r} was not created"
    return list(client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"]))


def wait_for_health(uri, process, what, path="/health"):
    """Until the server at ``uri`` answers ``path``; fail if ``process`` ends or 90 s pass."""
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{uri}{path}", timeout=2).close()
            return
        except OSError:
            assert process.poll() is None, f"{what} ended: {process.communicate()[-1]}"[-2000:]
            assert time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.5)


@contextlib.contextmanager
def mlflow_command(verb: str, *args: str, port: int, cwd=None):
    """``mlflow <verb>`` (server or ui) on 127.0.0.1:``port`` with one worker and no job
    consumers (they would start 7 more processes no test needs); its URI while it runs,
    stopped (its whole process group) at the end."""
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), verb, *args,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
             "MLFLOW_DISABLE_TELEMETRY": "true"})
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(uri, process, f"mlflow {verb}")
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
