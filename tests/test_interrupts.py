"""Ctrl-C and SIGTERM are never lost, wherever in Python code they land."""

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

LOST_IN_A_FINALISER = """
import os, signal, sys, time
sys.path.insert(0, {src!r})
from tssweep import interrupts
interrupts.install()

class Finalised:
    def __del__(self):  # Python ignores what a finaliser raises, and prints it
        os.kill(os.getpid(), signal.{name})
        time.sleep(0.01)

try:
    item = Finalised()
    del item
    time.sleep(2)
    print("lost")
except KeyboardInterrupt as err:
    print("interrupted:", err, interrupts.signal_name())
"""


def test_a_signal_that_lands_in_a_finaliser_is_delivered_again():
    # as SQLAlchemy's registry cleanup once swallowed a search's Ctrl-C
    for name in ("SIGINT", "SIGTERM"):
        done = subprocess.run([sys.executable, "-c", LOST_IN_A_FINALISER.format(src=str(ROOT / "src"), name=name)],
                              capture_output=True, text=True, timeout=30)
        assert done.stdout.strip() == f"interrupted: received {name} {name}", done.stdout + done.stderr
        assert "Exception ignored" not in done.stderr


def _what_the_script_saw(script: str, folder: Path) -> dict:
    """Run ``script`` (its ``src`` and ``folder`` filled in) in a fresh process, which
    must exit 0; the JSON it printed last."""
    done = subprocess.run([sys.executable, "-c", script.format(src=str(ROOT / "src"), folder=str(folder))],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# a sweep's callback as on_multirun_start leaves it (its parent open, its writer
# started), and its close with Ctrl-C somewhere in it; the scripts below add the job
A_SWEEPS_CLOSE = """
import json, os, signal, sys, threading, time
from pathlib import Path
sys.path.insert(0, {src!r})
from omegaconf import OmegaConf
from tssweep import callbacks, interrupts, tracking
from tssweep.tracking import dashboard, writer

def a_sweep(registry):
    cfg = OmegaConf.create({{"uri": "sqlite:///{folder}/mlflow.db", "artifact_location": "{folder}/artifacts",
                            "experiment": "tssweep", "registry": {{"enabled": registry}}}})
    store = tracking.open_store(cfg)
    callback = callbacks.MlflowSweepCallback()
    callback._where, callback._tracking_cfg, callback._metric = tracking.where(cfg), cfg, "mase"
    callback._sweep_dir = "{folder}/sweep"
    callback._parent_id = tracking.start_parent(store, callback._sweep_dir, "sweep", ["seed"], {{}})
    callback._writer = writer.start(callback._where)
    callback._writer.sweep = (callback._parent_id, store.experiment_id, ("seed",))
    return store, callback

def closed(store, callback):
    \"\"\"The close's interrupt, how long it took, and the runs by role, after it.\"\"\"
    interrupts.install()
    started = time.monotonic()
    try:
        callback._close(completed=True)
        raised = False
    except KeyboardInterrupt as err:
        raised = str(err)
    runs = {{r.data.tags.get("tssweep.role"): r for r in store.client.search_runs([store.experiment_id])}}
    return raised, time.monotonic() - started, runs
"""

CTRL_C_IN_THE_LAST_FLUSH = A_SWEEPS_CLOSE + """
def slowly_scored(run, seconds):
    time.sleep(seconds)
    run.log(metrics={{"mase": 0.5}})

store, callback = a_sweep(registry=False)
with tracking.job_run(callback._where, ["seed=1"], {{}}, callback._sweep_dir, "x") as run:
    run.complete(slowly_scored, 1.5)
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()  # while the writer completes it
raised, waited, runs = closed(store, callback)
print(json.dumps({{"raised": raised, "waited": waited, "parent": runs["parent"].info.status,
                  "child": runs["child"].info.status, "child_mase": runs["child"].data.metrics.get("mase")}}))
"""


def test_ctrl_c_during_a_sweeps_last_flush_still_completes_the_children_and_closes_the_parent(tmp_path):
    # the signal lands while the callback waits for the writer at the sweep's end: the
    # writer still completes the child it was handed, the parent is closed as KILLED,
    # and the interrupt goes on to the command (exit 130)
    seen = _what_the_script_saw(CTRL_C_IN_THE_LAST_FLUSH, tmp_path)
    assert seen["raised"] == "received SIGINT"
    assert seen["child"] == "FINISHED" and seen["child_mase"] == 0.5 and seen["waited"] >= 1.0
    assert seen["parent"] == "KILLED"


HELD = """
import json, os, signal, sys
sys.path.insert(0, {src!r})
from tssweep import interrupts

interrupts.install()
seen = []
try:
    with interrupts.held():
        os.kill(os.getpid(), signal.SIGTERM)
        seen.append("after the signal")  # the block goes on
        with interrupts.held():  # an inner block does not raise it either
            pass
        seen.append("after the inner block")
except KeyboardInterrupt as err:
    seen.append(str(err))
try:  # raised over nothing else: another exception of the block stands
    with interrupts.held():
        raise ValueError("the block's own error")
except ValueError as err:
    seen.append(str(err))
print(json.dumps(seen))
"""


def test_a_signal_inside_a_held_block_interrupts_at_its_end():
    assert _what_the_script_saw(HELD, ROOT) == [
        "after the signal", "after the inner block", "received SIGTERM", "the block's own error"]


CTRL_C_DURING_THE_REFIT = A_SWEEPS_CLOSE + """
def scored(run, folder):
    run.log(metrics={{"mase": 0.5}})
    run.log_artifacts(folder)

def refitted_slowly(cfg):  # the winner's refit, in the sweep's process, while the writer summarises
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C now, taken by the main thread
    time.sleep(1.5)
    return RuntimeError(f"refit of seed={{cfg.seed}} stopped here")

callbacks._refit = refitted_slowly
store, callback = a_sweep(registry=True)
job = Path("{folder}/job")
job.mkdir()
(job / "config.yaml").write_text("seed: 1\\n")
with tracking.job_run(callback._where, ["seed=1"], {{}}, callback._sweep_dir, "seed=1") as run:
    run.log(params={{"seed": 1, "dataset.name": "airline"}})
    run.complete(scored, job)
raised, waited, runs = closed(store, callback)
parent = runs["parent"]
print(json.dumps({{"raised": raised, "waited": waited, "parent": parent.info.status,
                  "note": parent.data.tags.get(dashboard.NOTE_TAG, ""), "best": parent.data.metrics.get("best_mase"),
                  "artifacts": sorted(a.path for a in store.client.list_artifacts(parent.info.run_id))}}))
"""


def test_ctrl_c_during_the_winners_refit_still_concludes_the_sweep_then_is_raised(tmp_path):
    # the sweep completed; the signal lands while this process refits the winner and the
    # writer makes the summary: both finish, the parent gets its summary and the refit's
    # outcome and is closed FINISHED, then the interrupt goes on to the command (exit 130)
    seen = _what_the_script_saw(CTRL_C_DURING_THE_REFIT, tmp_path)
    assert seen["raised"] == "received SIGINT" and seen["waited"] >= 1.5
    assert seen["parent"] == "FINISHED" and seen["best"] == 0.5
    assert "Not registered:** seed=1: RuntimeError: refit of seed=1 stopped here" in seen["note"]
    assert {"children.csv", "summary.md"} <= set(seen["artifacts"])


CTRL_C_DURING_A_CALL = """
import json, os, signal, sys, threading, time
sys.path.insert(0, {src!r})
from omegaconf import OmegaConf
from tssweep import interrupts, tracking
from tssweep.tracking import writer

def open_slowly(where, seconds):
    time.sleep(seconds)
    return tracking.start_parent(tracking.open_store(where), "{folder}/sweep", "sweep", [], {{}})

where = tracking.where(OmegaConf.create({{"uri": "sqlite:///{folder}/mlflow.db",
                                          "artifact_location": "{folder}/artifacts", "experiment": "tssweep"}}))
background = writer.start(where)
interrupts.install()
threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()  # while the writer opens it
started = time.monotonic()
try:
    background.call(open_slowly, where, 1.5)
    print(json.dumps({{"raised": False}}))
except writer.Interrupted as err:
    print(json.dumps({{"raised": str(err), "waited": time.monotonic() - started, "result": err.result,
                      "kind": type(err).__mro__[1].__name__}}))
background.stop()
"""


def test_ctrl_c_while_the_writer_opens_the_parent_is_raised_after_with_the_parent(tmp_path):
    # the callback waits for the writer to open the sweep's parent: Ctrl-C meanwhile
    # waits until the parent exists, and comes with its id, so that the way out closes
    # it (tssweep.callbacks: KILLED) instead of leaving it RUNNING
    seen = _what_the_script_saw(CTRL_C_DURING_A_CALL, tmp_path)
    assert seen["raised"] == "received SIGINT" and seen["kind"] == "KeyboardInterrupt"
    assert seen["waited"] >= 1.5
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,) = client.search_runs([client.get_experiment_by_name("tssweep").experiment_id])
    assert parent.info.run_id == seen["result"]


CANCELLED_WHILE_THE_RUN_IS_CREATED = """
import _thread, json, os, signal, sys
sys.path.insert(0, {src!r})
from omegaconf import OmegaConf
from tssweep import interrupts, tracking

routed = sys.argv[1] == "install"
if routed:  # a job of a local sweep: src/train.py routed the signals
    interrupts.install()
else:  # a Ray worker: Python's own SIGINT handler, which ray.cancel() triggers
    signal.signal(signal.SIGINT, signal.default_int_handler)
where = tracking.where(OmegaConf.create({{"uri": "sqlite:///{folder}/mlflow.db",
                                          "artifact_location": "{folder}/artifacts", "experiment": "tssweep"}}))
store = tracking.open_store(where)  # the one the job opens: a store is opened once per process
create_run = store.client.create_run

def created_then_interrupted(*args, **kwargs):
    made = create_run(*args, **kwargs)  # in the store now, its id not yet handed back
    if routed:
        os.kill(os.getpid(), signal.SIGINT)
    else:
        _thread.interrupt_main()  # what ray.cancel() does to a running task
    sum(range(10000))  # Python code runs on: where the signal lands
    return made

store.client.create_run = created_then_interrupted
seen = {{}}
try:
    with tracking.job_run(where, ["seed=1"], {{}}, None, "seed=1") as run:
        seen["body"] = "ran"
except KeyboardInterrupt as err:
    seen["raised"] = str(err)
seen["runs"] = [(r.info.status, r.data.tags.get(tracking.INTERRUPTED_TAG)) for r in
                store.client.search_runs([store.experiment_id])]
seen["handler"] = signal.getsignal(signal.SIGINT) in (signal.default_int_handler, interrupts._interrupt)
print(json.dumps(seen))
"""


def test_a_run_whose_creation_is_interrupted_is_closed_killed(tmp_path):
    # ray.cancel() of a task that is creating its run (a sweep cut short as its jobs
    # start) once left that run RUNNING for good: its id never came back. The interrupt
    # now comes once the run exists, which is closed KILLED, in a Ray worker as in a
    # local sweep; the worker's own handler is back afterwards.
    for how in ("ray", "install"):
        folder = tmp_path / how
        folder.mkdir()
        script = CANCELLED_WHILE_THE_RUN_IS_CREATED.format(src=str(ROOT / "src"), folder=str(folder))
        done = subprocess.run([sys.executable, "-c", script, how], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
        assert done.returncode == 0, done.stderr[-3000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert "body" not in seen, how  # the job does not start its training
        assert seen["raised"] == ("" if how == "ray" else "received SIGINT"), how
        assert seen["runs"] == [["KILLED", seen["raised"] or "interrupted"]], how
        assert seen["handler"], how
