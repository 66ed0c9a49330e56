"""Links into MLflow's UI that open on a sweep's answer, and the parent's description.

MLflow's UI keeps its views in the URL's fragment, so a link can open the compare-runs
page of a sweep's children (parallel coordinates, metrics side by side) or the runs
table filtered to them and sorted best first, which also shows the sorted metric's
column. The parent's description (the ``mlflow.note.content`` tag, rendered as
markdown on its run page) holds the verdict and both links.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from omegaconf import DictConfig

# where `make ui` serves the embedded store
DEFAULT_UI = "http://127.0.0.1:5000"
NOTE_TAG = "mlflow.note.content"
COMPARE_TAG = "tssweep.link.compare"
TABLE_TAG = "tssweep.link.table"


def ui_url(tracking_cfg: DictConfig, store_uri: str) -> str:
    """The UI that shows this store: ``tracking.ui_url``, else the tracking server
    itself, else where ``make ui`` serves the embedded store."""
    configured = tracking_cfg.get("ui_url")
    if configured:
        return str(configured).rstrip("/")
    if store_uri.startswith(("http://", "https://")):
        return store_uri.rstrip("/")
    return DEFAULT_UI


def compare_link(ui: str, experiment_id: str, run_ids: list[str]) -> str:
    """MLflow's compare-runs page for ``run_ids``."""
    return (f"{ui}/#/compare-runs?runs={quote(json.dumps(run_ids, separators=(',', ':')))}"
            f"&experiments={quote(json.dumps([experiment_id]))}")


def table_link(ui: str, experiment_id: str, parent_id: str, metric: str, greater_is_better: bool) -> str:
    """The runs table of the experiment, only the children of ``parent_id``, best first."""
    search = f"tags.`mlflow.parentRunId` = '{parent_id}'"
    order = f"metrics.`{metric}`"
    return (f"{ui}/#/experiments/{experiment_id}/runs?searchFilter={quote(search)}"
            f"&orderByKey={quote(order)}&orderByAsc={str(not greater_is_better).lower()}")


def note(title: str, verdict: list[str], compare: str | None, table: str) -> str:
    """The parent's description: the verdict, the two links, where the full table is."""
    links = [f"[All children, best first]({table})"]
    if compare:
        links.insert(0, f"[Compare the children side by side]({compare})")
    return "\n".join([f"### {title}", "", *verdict, " · ".join(links), "",
                      "The ranked table is `summary/summary.md` among this run's artifacts."])
