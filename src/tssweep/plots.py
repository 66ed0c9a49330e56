"""The PNG figures logged with runs: a job's forecast, a sweep's ranking.

Figures are drawn with matplotlib's object API on the Agg canvas, not pyplot: no
display, no global figure registry to leak across hundreds of jobs in one process, and
a lighter import.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def forecast_plot(history: pd.Series, holdout: pd.Series | None, forecast: pd.Series, title: str,
                  path: Path) -> None:
    """History, the holdout's actual values (if any: a forecast of the future has none)
    and the forecast, on one time axis."""
    def x(series: pd.Series):
        index = series.index
        return index.to_timestamp() if isinstance(index, pd.PeriodIndex) else index

    dated = isinstance(history.index, (pd.PeriodIndex, pd.DatetimeIndex))
    shown = [history, forecast] if holdout is None else [history, holdout, forecast]
    # a job's plot redraws the figure of its process; a forecast of the future is drawn once
    figure, axes, lines = _job_figure(dated) if holdout is not None else _forecast_figure(dated, False)
    for line, series in zip(lines, shown):
        line.set_data(x(series), series.to_numpy())
    axes.relim()
    axes.autoscale_view()
    # at the height matplotlib would find: no ticks above the plot to clear
    axes.set_title(title, y=1.0)
    _save(figure, path)


def panel_forecast_plot(history: pd.DataFrame, holdout: pd.DataFrame, forecast: pd.DataFrame,
                        holdout_scores: pd.Series, title: str, path: Path) -> None:
    """A panel's forecast, as three of its series: the best, the median and the worst
    by ``holdout_scores`` (a holdout error per series), one above the other."""
    ranked = holdout_scores.sort_values()
    picks = list(dict.fromkeys([ranked.index[0], ranked.index[len(ranked) // 2], ranked.index[-1]]))
    figure = Figure(figsize=(9, 2.6 * len(picks) + 0.6))
    axes_list = figure.subplots(len(picks), 1, squeeze=False)[:, 0]
    labels = {1: ["the one series"], 2: ["best", "worst"]}.get(len(picks), ["best", "median", "worst"])
    for axes, label, name in zip(axes_list, labels, picks):
        for frame, style in ((history, dict(color="0.4", linewidth=1, label="history")),
                             (holdout, dict(color="black", marker="o", markersize=3, label="holdout (actual)")),
                             (forecast, dict(color="tab:red", marker="o", markersize=3, label="forecast"))):
            one = frame.xs(name, level=0).iloc[:, 0]
            axes.plot(one.index.to_timestamp(), one.to_numpy(), **style)
        axes.set_title(f"{label}: {name} ({ranked.name} = {ranked[name]:.3f})", fontsize=9)
    axes_list[0].legend(loc="upper left", fontsize=8)
    figure.suptitle(f"{title}, {len(ranked)} series", fontsize=10)
    figure.tight_layout()  # once per job; the panel's names vary in length
    _save(figure, path)


def panel_future_plot(history: pd.Series, forecast: pd.Series, title: str, path: Path,
                      shown: int = 3) -> None:
    """A panel's forecast of the future: its first ``shown`` series, history then
    forecast, one above the other (``history`` and ``forecast`` indexed by series id
    and period, the forecast's periods as text)."""
    names = list(dict.fromkeys(str(name) for name in history.index.get_level_values(0)))[:shown]
    figure = Figure(figsize=(9, 2.6 * len(names) + 0.6))
    for axes, name in zip(figure.subplots(len(names), 1, squeeze=False)[:, 0], names):
        past = history.xs(name, level=0)
        ahead = forecast.xs(name, level=0)
        axes.plot(past.index.to_timestamp(), past.to_numpy(), color="0.4", linewidth=1, label="history")
        axes.plot(pd.PeriodIndex(ahead.index, freq=past.index.freq).to_timestamp(), ahead.to_numpy(),
                  color="tab:red", marker="o", markersize=3, label="forecast")
        axes.set_title(name, fontsize=9)
    figure.axes[0].legend(loc="upper left", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    _save(figure, path)


def warm_up() -> None:
    """Draw this process's job figure once, empty: the first drawing of a process loads
    the fonts and readies the renderer (about 0.1 s), which its first job's plot then
    finds done."""
    figure = _job_figure(True)[0]
    FigureCanvasAgg(figure).draw()


@lru_cache(maxsize=2)
def _job_figure(dated: bool) -> tuple[Figure, object, list]:
    """One figure per process (and kind of time axis) that every job's forecast plot
    redraws: building a figure, its axes and its legend was a third of the plot's cost."""
    return _forecast_figure(dated, True)


def _forecast_figure(dated: bool, with_holdout: bool) -> tuple[Figure, object, list]:
    """A figure with empty lines for the history, the holdout and the forecast, and
    their legend (made once: a legend made at every redraw is memory that stays)."""
    figure = Figure(figsize=(9, 4))
    axes = figure.subplots()
    if dated:
        axes.xaxis_date()
    lines = [axes.plot([], [], color="0.4", linewidth=1, label="history")[0]]
    if with_holdout:
        lines.append(axes.plot([], [], color="black", marker="o", markersize=3, label="holdout (actual)")[0])
    lines.append(axes.plot([], [], color="tab:red", marker="o", markersize=3, label="forecast")[0])
    axes.legend(loc="upper left")
    # fixed margins: tight_layout would cost half the drawing time of every job
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.92)
    # the axes have no labels to place: matplotlib would measure every tick label at
    # each drawing to place them (a fifth of a plot's cost)
    axes.xaxis.set_label_coords(0.5, -0.1)
    axes.yaxis.set_label_coords(-0.1, 0.5)
    return figure, axes, lines


def metric_bars(ranked: pd.DataFrame, metric: str, fold_std: dict[str, float], path: Path) -> None:
    """One bar per finished child, best at the top, with the fold standard deviation."""
    finished = ranked[ranked["rank"].notna()].iloc[::-1]
    figure = Figure(figsize=(8, 1 + 0.4 * max(len(finished), 1)))
    axes = figure.subplots()
    labels = (finished["dataset"] + ": " + finished["run_name"]).astype(str)
    axes.barh(labels, finished[metric].astype(float),
              xerr=[fold_std.get(run_id, 0.0) for run_id in finished["run_id"]],
              color="tab:blue", capsize=3)
    axes.set_xlabel(f"backtest {metric} (bars: std over folds)")
    figure.tight_layout()  # run names vary in length; once per sweep
    _save(figure, path)


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    # zlib's fastest level: a quarter of a plot's cost, for files 6% larger
    figure.savefig(path, dpi=100, pil_kwargs={"compress_level": 1})


def confusion_matrix(y_true, y_pred, labels: list, title: str, path: Path) -> None:
    """Counts of true (rows) against predicted (columns) labels on the test split."""
    import numpy as np

    index = {label: position for position, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for truth, guess in zip(y_true, y_pred):
        counts[index[truth], index[guess]] += 1
    size = 2 + 0.5 * len(labels)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.subplots()
    axes.imshow(counts, cmap="Blues")
    for row in range(len(labels)):
        for column in range(len(labels)):
            axes.text(column, row, counts[row, column], ha="center", va="center",
                      color="white" if counts[row, column] > counts.max() / 2 else "black")
    axes.set_xticks(range(len(labels)), [str(label) for label in labels], rotation=45)
    axes.set_yticks(range(len(labels)), [str(label) for label in labels])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()  # once per job; label widths vary
    _save(figure, path)
