"""The dataset group: every shipped series loads clean, CSV files are read or refused
with a message naming the key."""

from pathlib import Path

import pandas as pd
import pytest

from tssweep.dataset import fingerprint, load_series, read_csv_series
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
        read_csv_series(**args)
    assert raised.value.key == key
    assert fragment in str(raised.value)


def test_fingerprint_changes_with_values_and_index(compose_cfg):
    series = load_series(compose_cfg().dataset)
    assert fingerprint(series) == fingerprint(series.copy())
    changed = series.copy()
    changed.iloc[-1] += 1
    assert fingerprint(changed) != fingerprint(series)
    assert fingerprint(series.shift(1, freq="M")) != fingerprint(series)
