"""The forecast plot every job draws, on one figure redrawn per process."""

import pandas as pd
from sktime.datasets import load_airline, load_lynx

from tssweep import plots


def shown(dated: bool) -> tuple[list[str], list[str], list[int]]:
    """The legend's labels, the x tick labels and each line's length as last drawn."""
    figure, axes, lines = plots._forecast_figure(dated)
    figure.canvas.draw()
    return ([text.get_text() for text in axes.get_legend().get_texts()],
            [label.get_text() for label in axes.get_xticklabels()], [len(line.get_xdata()) for line in lines])


def test_each_plot_shows_its_own_series_on_its_own_time_axis(tmp_path):
    airline, lynx = load_airline(), load_lynx()
    plots.forecast_plot(airline[:-12], airline[-12:], airline[-12:] * 1.1, "airline", tmp_path / "a.png")
    legend, ticks, lengths = shown(True)
    assert legend == ["history", "holdout (actual)", "forecast"] and lengths == [132, 12, 12]
    assert "1950" in ticks and "1960" in ticks
    # the next job: another series, no holdout (a forecast of the future), years as ticks
    plots.forecast_plot(lynx[:-10], None, lynx[-10:], "lynx", tmp_path / "l.png")
    legend, ticks, lengths = shown(True)
    assert legend == ["history", "forecast"] and lengths == [104, 0, 10]
    assert "1840" in ticks and "1900" in ticks
    # a series on plain integers gets its own figure
    steps = pd.Series(range(40), dtype=float)
    plots.forecast_plot(steps[:-5], steps[-5:], steps[-5:] + 1, "steps", tmp_path / "s.png")
    assert shown(False)[1][:3] == ["−5", "0", "5"]
    assert all((tmp_path / name).stat().st_size > 10_000 for name in ("a.png", "l.png", "s.png"))
