"""The forecast plot every job draws, on one figure redrawn per process."""

import pandas as pd
from sktime.datasets import load_airline, load_lynx

from tssweep import plots


def shown(dated: bool) -> tuple[list[str], list[str], list[int]]:
    """The legend's labels, the x tick labels and each line's length as last drawn."""
    figure, axes, lines = plots._job_figure(dated)
    figure.canvas.draw()
    return ([text.get_text() for text in axes.get_legend().get_texts()],
            [label.get_text() for label in axes.get_xticklabels()], [len(line.get_xdata()) for line in lines])


def test_each_plot_shows_its_own_series_on_its_own_time_axis(tmp_path):
    airline, lynx = load_airline(), load_lynx()
    plots.forecast_plot(airline[:-12], airline[-12:], airline[-12:] * 1.1, "airline", tmp_path / "a.png")
    legend, ticks, lengths = shown(True)
    assert legend == ["history", "holdout (actual)", "forecast"] and lengths == [132, 12, 12]
    assert "1950" in ticks and "1960" in ticks
    # the next job: another series, years as ticks
    plots.forecast_plot(lynx[:-10], lynx[-10:], lynx[-10:] * 0.9, "lynx", tmp_path / "l.png")
    legend, ticks, lengths = shown(True)
    assert legend == ["history", "holdout (actual)", "forecast"] and lengths == [104, 10, 10]
    assert "1840" in ticks and "1900" in ticks
    # a forecast of the future (src/predict.py) has no holdout, on a figure of its own
    plots.forecast_plot(lynx, None, lynx[-10:], "lynx future", tmp_path / "future.png")
    assert shown(True)[2] == [104, 10, 10] and (tmp_path / "future.png").stat().st_size > 10_000
    # a series on plain integers gets a figure of its own
    steps = pd.Series(range(40), dtype=float)
    plots.forecast_plot(steps[:-5], steps[-5:], steps[-5:] + 1, "steps", tmp_path / "s.png")
    assert shown(False)[1][:3] == ["−5", "0", "5"]
    assert all((tmp_path / name).stat().st_size > 10_000 for name in ("a.png", "l.png", "s.png"))


DRAWN = """
import sys
sys.path.insert(0, {src!r})
from sktime.datasets import load_airline
from tssweep import plots

if sys.argv[1] == "warmed":  # as a sweep's writer does before its first job
    plots.warm_up()
airline = load_airline()
plots.forecast_plot(airline[:-12], airline[-12:], airline[-12:] * 1.1, "airline", sys.argv[2])
"""


def test_the_writers_warm_up_leaves_the_first_plot_as_it_was(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    for how in ("cold", "warmed"):
        subprocess.run([sys.executable, "-c", DRAWN.format(src=str(ROOT / "src")), how, str(tmp_path / f"{how}.png")],
                       check=True, timeout=120)
    warmed = (tmp_path / "warmed.png").read_bytes()
    assert warmed == (tmp_path / "cold.png").read_bytes() and len(warmed) > 10_000


def test_the_plot_is_drawn_as_matplotlib_places_its_title_and_labels(tmp_path, monkeypatch):
    # the title's height and the (empty) axis labels' places are given, not measured
    # at each drawing: the pixels are those of matplotlib's own placement
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from PIL import Image

    def draw(name: str) -> np.ndarray:
        plots._job_figure.cache_clear()
        for series, cut in ((load_airline(), 12), (load_lynx(), 10)):
            plots.forecast_plot(series[:-cut], series[-cut:], series[-cut:] * 1.07, "a title (test_mase = 1.234)",
                                tmp_path / f"{name}.png")
        return np.asarray(Image.open(tmp_path / f"{name}.png"))

    given = draw("given")
    assert not plots._job_figure(True)[1].xaxis._autolabelpos  # the places are given
    monkeypatch.setattr(Axis, "set_label_coords", lambda self, *args, **kwargs: None)
    set_title = Axes.set_title
    monkeypatch.setattr(Axes, "set_title", lambda self, label, *args, y=None, **kwargs: set_title(self, label))
    measured = draw("measured")
    plots._job_figure.cache_clear()
    assert plots._job_figure(True)[1].xaxis._autolabelpos  # measured
    plots._job_figure.cache_clear()
    assert given.shape == measured.shape and (given == measured).all()
