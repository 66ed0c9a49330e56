"""What a user sees in MLflow's UI after a sweep, in a real browser: the parent run's note
links to a comparison of its children and to the runs table filtered to them, and both
pages show the children's names and scores as MLflow displays them.

Needs Debian's /usr/bin/chromium and tests/browser/node_modules (the install steps in
.ci/run); tests/browser/check_page.mjs drives the browser. With TSSWEEP_SCREENSHOTS=<dir>
the two screenshots are also copied there (how docs/ images are retaken).

What MLflow 3.17's UI honours (found with check_page.mjs against a real sweep):
- ``<ui>/#/compare-runs?runs=["<id>",...]&experiments=["<experiment id>"]`` works as is
  and percent-encoded (``urllib.parse.quote(json.dumps(ids), safe="")``); encoded is the
  form that survives Markdown and copying.
- ``<ui>/#/experiments/<id>/runs?searchFilter=<f>&orderByKey=metrics.%60mase%60&orderByAsc=true``
  (each value percent-encoded) filters and sorts, and
  ``searchFilter=tags.`mlflow.parentRunId` = '<parent id>'`` lists the children flat and
  leaves the parent out; but the table's columns are UI state, not in the URL: a fresh
  browser shows no metric column, sorted by it or not (only "Sort: mase" says so).
- A metric column from a link alone: an experiment tag ``mlflow.sharedViewState.<key>``
  whose value is the JSON of the view, e.g. ``{"searchFilter": ..., "orderByKey":
  "metrics.`mase`", "orderByAsc": true, "selectedColumns": ["metrics.`mase`"],
  "columnOrder": ["metrics.`mase`"], "columnWidths": {"metrics.`mase`": 180}}``, opened
  by ``<ui>/#/experiments/<id>/runs?viewStateShareKey=<key>`` (no other parameter: with a
  searchFilter etc. in the URL the shared view is ignored). The page says "You're viewing
  a shared view"; columnWidths applies only with columnOrder (else the value is cut off
  with an ellipsis).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import ROOT, free_port, mlflow_command

pytestmark = pytest.mark.slow

BROWSER = ROOT / "tests" / "browser"
CHROMIUM = Path("/usr/bin/chromium")


def test_the_parents_links_show_its_children_and_their_scores(tmp_path, train, tracking_uri):
    require_browser()
    port = free_port()
    ui_url = f"http://127.0.0.1:{port}"
    train("-m", "preprocess=none,log,detrend", f"tracking.uri={tracking_uri}",
          f"tracking.ui_url={ui_url}", f"hydra.sweep.dir={tmp_path}/sweep",
          "model.iterations=20", "dataset.backtest.folds=2")

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.get_experiment_by_name("tssweep").experiment_id
    (parent,) = client.search_runs([experiment_id], "tags.`tssweep.role` = 'parent'")
    children = client.search_runs([experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 3
    tags = parent.data.tags
    compare, table = tags["tssweep.link.compare"], tags["tssweep.link.table"]
    assert compare.startswith(f"{ui_url}/#/compare-runs?"), compare
    assert table.startswith(f"{ui_url}/#/experiments/{experiment_id}/runs?"), table
    # the note is the parent's Description in the UI: both links and the verdict
    summary = (tmp_path / "sweep" / "summary" / "summary.md").read_text()
    verdict = next(line for line in summary.splitlines() if "**Is it real?**" in line)
    note = tags["mlflow.note.content"]
    assert compare in note and table in note and verdict.removeprefix("- ") in note, note

    version = client.get_model_version_by_alias("tssweep-airline", "champion")
    assert f"[tssweep-airline version 1]({ui_url}/#/models/tssweep-airline/versions/1)" in note
    names = [run.info.run_name for run in children]
    scores = [run.data.metrics[tags["optimized_metric"]] for run in children]
    # as `make ui` serves it; no line per request: the browser makes hundreds
    with mlflow_command("ui", "--backend-store-uri", tracking_uri, "--uvicorn-opts", "--no-access-log", port=port):
        screenshots = {
            # the run ids too: a short name ("log") could be a parameter's value there
            "compare-runs.png": check_page(compare, tmp_path / "compare-runs.png",
                                           *names, *map(format_metric, scores),
                                           *(run.info.run_id for run in children)),
            # the Dataset column: the training data's name and digest
            "runs-table.png": check_page(table, tmp_path / "runs-table.png",
                                         *names, *map(js_string, scores), *set(map(training_data, children)),
                                         f"!{parent.info.run_name}"),
            # the parent's page: its description rendered, the verdict and both links
            "parent-run.png": check_page(f"{ui_url}/#/experiments/{experiment_id}/runs/{parent.info.run_id}",
                                         tmp_path / "parent-run.png", parent.info.run_name,
                                         "Is it real?", "Compare the children side by side",
                                         "All children, best first"),
            # the winner in the Models pages: its version, alias, source run and description
            "registered-version.png": check_page(
                f"{ui_url}/#/models/tssweep-airline/versions/1", tmp_path / "registered-version.png",
                "Version 1", "@ champion", parent.info.run_name, version.description),
        }
    if os.environ.get("TSSWEEP_SCREENSHOTS"):
        out = Path(os.environ["TSSWEEP_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        for name, path in screenshots.items():
            shutil.copyfile(path, out / name)
            print(f"copied to {out / name}")


def training_data(run) -> str:
    """The runs table's Dataset cell of a run: ``airline (daeae18c9b99fe92)``."""
    (dataset,) = [item.dataset for item in run.inputs.dataset_inputs
                  if {(tag.key, tag.value) for tag in item.tags} >= {("mlflow.data.context", "training")}]
    return f"{dataset.name} ({dataset.digest})"


def require_browser():
    """Fail, never skip: a CI without the browser must not pass by checking nothing."""
    missing = [str(path) for path in (CHROMIUM, BROWSER / "node_modules" / "playwright-core")
               if not path.exists()] + ([] if shutil.which("node") else ["node (>= 20)"])
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run .ci/run's install steps (apt-get install "
                    "-y --no-install-recommends chromium; npm ci --prefix tests/browser)")


def check_page(url: str, screenshot: Path, *texts: str) -> Path:
    """Open ``url`` in Chromium until each text is visible (``!text``: must not be)."""
    done = subprocess.run(["node", str(BROWSER / "check_page.mjs"), url, str(screenshot), *texts],
                          capture_output=True, text=True, timeout=180)
    print(f"screenshot: {screenshot}")
    assert done.returncode == 0, f"{url}\n{done.stdout}{done.stderr[-6000:]}"
    return screenshot


# How MLflow's UI writes a number depends on the page:
# - the compare-runs page uses Utils.formatMetric (mlflow/server/js/src/common/utils/Utils.tsx):
#   0 as "0", below 1e-3 x.toExponential(3), below 10 rounded to 3 decimals, below 100 to 2,
#   else to 1, with Math.round (halves up) and then JavaScript's String(): 1.0185537 -> "1.019",
#   29.3606 -> "29.36", 114.72 -> "114.7", 0.010265 -> "0.01", 2.0 -> "2";
# - the runs table shows String(x), all the digits: "1.0185537283788713" (cut off with an
#   ellipsis when the column is narrower than the text, which the page's text still holds).
def format_metric(x: float) -> str:
    """MLflow's Utils.formatMetric(x), as the compare-runs page shows a metric."""
    if x == 0:
        return "0"
    if abs(x) < 1e-3:  # toExponential(3): "1.235e-4", not Python's "1.235e-04"
        mantissa, exponent = f"{x:.3e}".split("e")
        return f"{mantissa}e{int(exponent):+d}"
    scale = 1000 if abs(x) < 10 else 100 if abs(x) < 100 else 10
    scaled = x * scale
    rounded = math.floor(scaled) + (scaled - math.floor(scaled) >= 0.5)  # Math.round
    return js_string(rounded / scale)


def js_string(x: float) -> str:
    """JavaScript's String(x): the shortest digits that read back as x (Python's repr has
    the same), written out from 1e-7 up to 1e21, with an exponent outside that range."""
    if x == 0:
        return "0"
    _, digit_tuple, exponent = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # x = 0.<digits> * 10**point
    if len(digits) <= point <= 21:
        text = digits + "0" * (point - len(digits))
    elif 0 < point <= 21:
        text = f"{digits[:point]}.{digits[point:]}"
    elif -6 < point <= 0:
        text = "0." + "0" * -point + digits
    else:
        text = f"{digits[0]}{'.' + digits[1:] if len(digits) > 1 else ''}e{point - 1:+d}"
    return ("-" if x < 0 else "") + text
