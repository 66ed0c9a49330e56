"""The dataset group: every shipped series loads clean, CSV files are read or refused
with a message naming the key."""

from pathlib import Path

import pandas as pd
import pytest

from tssweep.dataset import fingerprint, load_series, read_series_file
from tssweep.errors import BadInput

SHIPPED = {"airline": 144, "lynx": 114, "shampoo_sales": 36, "pbs": 204, "uschange": 187}


@pytest.mark.parametrize("name, length", SHIPPED.items())
def test_shipped_datasets_load_as_clean_float_series(compose_cfg, name, length):
    series = load_series(compose_cfg(f"dataset={name}").dataset)
    assert isinstance(series, pd.Series)
    assert len(series) == length
    assert series.dtype == float
    assert not series.isna().any()
    assert series.index.is_monotonic_increasing and series.index.is_unique


def test_uschange_target_picks_the_column(compose_cfg):
    consumption = load_series(compose_cfg("dataset=uschange").dataset)
    income = load_series(compose_cfg("dataset=uschange", "dataset.target=Income").dataset)
    assert consumption.name == "Consumption" and income.name == "Income"
    assert not consumption.equals(income)


def write_csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "series.csv"
    path.write_text(text)
    return str(path)


MONTHLY = "month,sales,store\n" + "".join(
    f"2020-{m:02d},{100 + m},{m % 2}\n" for m in range(1, 13))


def test_csv_reads_a_period_indexed_series(tmp_path, compose_cfg):
    path = write_csv(tmp_path, MONTHLY)
    cfg = compose_cfg("dataset=csv", f"dataset.path={path}", "dataset.time_column=month",
                      "dataset.target=sales", "dataset.freq=M")
    series = load_series(cfg.dataset)
    assert isinstance(series.index, pd.PeriodIndex) and series.index.freqstr == "M"
    assert series.iloc[0] == 101 and len(series) == 12 and series.name == "sales"


@pytest.mark.parametrize("stamps, freq, first, last", [
    ([1700 + i for i in range(12)], "Y", "1700", "1711"),  # sunspots-style integer years
    ([f"{1981 + i // 4} Q{i % 4 + 1}" for i in range(12)], "Q", "1981Q1", "1983Q4"),  # R's yearquarter
    ([f"{1981 + i // 4}-Q{i % 4 + 1}" for i in range(12)], "Q", "1981Q1", "1983Q4"),
    ([f"1939 {m}" for m in "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()], "M",
     "1939-01", "1939-12"),  # R's yearmonth
    ([f"2024-{m:02d}" for m in range(1, 13)], "M", "2024-01", "2024-12"),
    ([f"1981 W{w:02d}" for w in range(1, 13)], "W", "1980-12-29/1981-01-04", "1981-03-16/1981-03-22"),
    ([f"2024-01-{d:02d}" for d in range(1, 13)], "D", "2024-01-01", "2024-01-12"),
    ([f"2024-01-01 {h:02d}:00" for h in range(12)], "h", "2024-01-01 00:00", "2024-01-01 11:00"),
])
def test_csv_time_columns_as_people_export_them(tmp_path, stamps, freq, first, last):
    path = write_csv(tmp_path, "t,y\n" + "".join(f"{stamp},{i}\n" for i, stamp in enumerate(stamps)))
    series = read_series_file(path, "t", "y", freq)
    assert (str(series.index[0]), str(series.index[-1])) == (first, last)
    assert len(series) == 12 and list(series) == list(range(12))


def test_whole_number_years_need_a_yearly_frequency(tmp_path):
    path = write_csv(tmp_path, "year,y\n" + "".join(f"{1700 + i},{i}\n" for i in range(12)))
    with pytest.raises(BadInput, match="dataset.freq='M': the time column 'year' holds whole numbers, "
                                       "which are read as years. Allowed: Y"):
        read_series_file(path, "year", "y", "M")


@pytest.mark.parametrize("text, kwargs, key, fragment", [
    (None, {}, "dataset.path", "no such file"),
    ("", {}, "dataset.path", "cannot be read"),
    ("month,sales\n", {}, "dataset.path", "no rows"),
    (MONTHLY, {"target": "sale"}, "dataset.target", "Did you mean 'sales'"),
    (MONTHLY, {"time_column": "mnth"}, "dataset.time_column", "Did you mean 'month'"),
    ("month,sales\nsoon,1\nlater,2\n", {}, "dataset.time_column", "cannot be parsed"),
    ("month,sales\n2020-01,a\n2020-02,b\n", {}, "dataset.target", "not numeric"),
    ("month,sales\n2020-01,1\n2020-01,2\n", {}, "dataset.time_column", "repeat"),
    ("month,sales\n2020-02,1\n2020-01,2\n", {}, "dataset.time_column", "not sorted"),
    ("month,sales\n2020-01,1\n2020-03,2\n", {}, "dataset.freq", "1 gaps"),
    ("month,sales\n2020-01,1\n2020-02,\n", {}, "dataset.target", "missing values"),
    (MONTHLY, {"freq": "fortnightly"}, "dataset.freq", "not a pandas period frequency"),
])
def test_bad_csv_names_the_key(tmp_path, text, kwargs, key, fragment):
    path = str(tmp_path / "absent.csv") if text is None else write_csv(tmp_path, text)
    args = {"path": path, "time_column": "month", "target": "sales", "freq": "M", **kwargs}
    with pytest.raises(BadInput) as raised:
        read_series_file(**args)
    assert raised.value.key == key
    assert fragment in str(raised.value)


def test_fingerprint_changes_with_values_and_index(compose_cfg):
    series = load_series(compose_cfg().dataset)
    assert fingerprint(series) == fingerprint(series.copy())
    changed = series.copy()
    changed.iloc[-1] += 1
    assert fingerprint(changed) != fingerprint(series)
    assert fingerprint(series.shift(1, freq="M")) != fingerprint(series)
