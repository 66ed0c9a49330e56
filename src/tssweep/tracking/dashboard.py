"""Links into MLflow's UI that open on a sweep's answer, and the parent's description.

MLflow's UI keeps its views in the URL's fragment, so a link can open the compare-runs
page of a sweep's children (parallel coordinates, metrics side by side). The runs
table honours a filter and a sort in its URL too, but the columns it shows are kept in
the browser, and a fresh one shows no metric: so the table link is a shared view (the
UI's own ``mlflow.sharedViewState.<key>`` experiment tag, opened by
``viewStateShareKey=<key>``) holding the filter to the children, the sort by the
optimised metric and that metric's column. The parent's description (the
``mlflow.note.content`` tag, rendered as markdown on its run page) holds the verdict
and both links.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from omegaconf import DictConfig

from tssweep.objectives import test_twin

# where `make ui` serves the embedded store
DEFAULT_UI = "http://127.0.0.1:5000"
NOTE_TAG = "mlflow.note.content"
COMPARE_TAG = "tssweep.link.compare"
TABLE_TAG = "tssweep.link.table"
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
# the runs table's own columns kept beside the metrics: what data, which model
_ATTRIBUTE_COLUMNS = ("attributes.`Dataset`", "attributes.`Models`", "attributes.`Duration`")


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


def table_view(parent_id: str, metric: str, greater_is_better: bool) -> tuple[str, str]:
    """The experiment tag of the shared view of a sweep's children, best first, with the
    optimised metric's column: ``(key, value)``."""
    column = f"metrics.`{metric}`"
    held_out = f"metrics.`{test_twin(metric)}`"
    view = {"searchFilter": f"tags.`mlflow.parentRunId` = '{parent_id}'", "orderByKey": column,
            "orderByAsc": not greater_is_better,
            "selectedColumns": [*_ATTRIBUTE_COLUMNS, column, held_out],
            # widths are only applied along with an order
            "columnOrder": [column, held_out], "columnWidths": {column: 180, held_out: 180}}
    return f"{SHARED_VIEW_PREFIX}{parent_id}", json.dumps(view)


def table_link(ui: str, experiment_id: str, parent_id: str) -> str:
    """The runs table opened on the shared view of :func:`table_view` (nothing else in
    the URL: a filter or sort there makes the UI ignore the shared view)."""
    return f"{ui}/#/experiments/{experiment_id}/runs?viewStateShareKey={parent_id}"


def note(title: str, verdict: list[str], compare: str | None, table: str) -> str:
    """The parent's description: the verdict, the two links, where the full table is."""
    links = [f"[All children, best first]({table})"]
    if compare:
        links.insert(0, f"[Compare the children side by side]({compare})")
    return "\n".join([f"### {title}", "", *verdict, " · ".join(links), "",
                      "The ranked table is `summary/summary.md` among this run's artifacts."])
