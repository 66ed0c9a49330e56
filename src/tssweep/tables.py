"""Reading the CSV files people export, as spreadsheets in many locales write them.

:func:`read_csv` finds the separator between columns (``,``, ``;``, a tab or ``|``)
from the header line, drops the rows left wholly empty (the ``,,,`` lines a
spreadsheet leaves at the end), and reads a text column as numbers when every value
in it is a number written one way:

- with thousands separators: ``1,234.5``;
- with a decimal comma, as spreadsheets in most of Europe write them: ``12,5``,
  ``1.234,5`` or ``1 234,5``.

A comma alone (``1,234``) is a thousands separator in a comma-separated file, and a
decimal comma in a file separated otherwise. What was read so is logged. A column
that mixes the two ways, or holds other text, is left as text, for the caller to
refuse by name.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

_SEPARATORS = (",", ";", "\t", "|")
_SEPARATOR_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "bars"}
# what separates thousands where the decimal mark is a comma: 1.234,5, 1 234,5, 1'234,5
# (and the no-break spaces that spreadsheets put there)
_GROUPING = ".' \u00a0\u202f"
# a plain number, or one with thousands separators and a decimal point: 1,234.5
_POINT = r"^[-+]?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?$"
# a plain number, or one with a decimal comma and thousands separators: 1.234,5
_COMMA = rf"^[-+]?(\d+|\d{{1,3}}([{re.escape(_GROUPING)}]\d{{3}})+)(,\d+)?$"


def read_csv(file: Path) -> pd.DataFrame:
    """The table in ``file``, its separator found, empty rows dropped, its numbers read
    (see the module's doc). Raises pandas' own errors for a file that is no table."""
    separator = _separator(file)
    frame = pd.read_csv(file, sep=separator)
    if separator != ",":
        log.info("%s: columns separated by %s", file.name, _SEPARATOR_NAMES[separator])
    frame = frame.dropna(how="all")
    for column in [name for name in frame.columns if pd.api.types.is_string_dtype(frame[name])]:
        numbers, how = _numbers(frame[column], decimal_comma=separator != ",")
        if numbers is not None:
            frame[column] = numbers
            log.info("%s: column %r read as numbers written %s", file.name, column, how)
    return frame


def _separator(file: Path) -> str:
    """The separator the header line holds most of (a comma when it holds none: one column)."""
    with open(file, encoding="utf-8-sig", errors="replace") as lines:
        header = lines.readline()
    counts = {separator: header.count(separator) for separator in _SEPARATORS}
    best = max(_SEPARATORS, key=lambda separator: counts[separator])
    return best if counts[best] else ","


def _numbers(column: pd.Series, decimal_comma: bool) -> tuple[pd.Series | None, str]:
    """The column as floats if every value is a number written one way (see the
    module's doc), with how it was written; else (None, "")."""
    given = column.notna()
    text = column[given].astype(str).str.strip()
    if text.empty:
        return None, ""
    # pandas read any column of plain numbers: this one holds separators, or other text
    point, comma = text.str.match(_POINT).all(), text.str.match(_COMMA).all()
    if comma and (decimal_comma or not point):
        values = text.str.replace(f"[{re.escape(_GROUPING)}]", "", regex=True).str.replace(",", ".", regex=False)
        how = "with a decimal comma"
    elif point:
        values = text.str.replace(",", "", regex=False)
        how = "with thousands separators"
    else:
        return None, ""
    numbers = pd.Series(float("nan"), index=column.index)
    numbers[given] = values.astype(float)
    return numbers, how
