"""The PNG figures logged with runs: a job's forecast, a sweep's ranking.

matplotlib runs headless (Agg) and figures are closed after saving, so hundreds of jobs
in one process neither need a display nor pile up memory.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import pandas as pd  # noqa: E402


def forecast_plot(history: pd.Series, holdout: pd.Series, forecast: pd.Series, title: str,
                  path: Path) -> None:
    """History, the holdout's actual values and the forecast of them, on one time axis."""
    def x(series: pd.Series):
        index = series.index
        return index.to_timestamp() if isinstance(index, pd.PeriodIndex) else index

    figure, axes = plt.subplots(figsize=(9, 4))
    axes.plot(x(history), history.to_numpy(), color="0.4", linewidth=1, label="history")
    axes.plot(x(holdout), holdout.to_numpy(), color="black", marker="o", markersize=3,
              label="holdout (actual)")
    axes.plot(x(forecast), forecast.to_numpy(), color="tab:red", marker="o", markersize=3,
              label="forecast")
    axes.set_title(title)
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def metric_bars(ranked: pd.DataFrame, metric: str, fold_std: dict[str, float], path: Path) -> None:
    """One bar per finished child, best at the top, with the fold standard deviation."""
    finished = ranked[ranked["rank"].notna()].iloc[::-1]
    figure, axes = plt.subplots(figsize=(8, 1 + 0.4 * max(len(finished), 1)))
    axes.barh(finished["run_name"].astype(str), finished[metric].astype(float),
              xerr=[fold_std.get(run_id, 0.0) for run_id in finished["run_id"]],
              color="tab:blue", capsize=3)
    axes.set_xlabel(f"backtest {metric} (bars: std over folds)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
