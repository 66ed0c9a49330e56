"""Reading the CSV files people export, as spreadsheets in many locales write them.

:func:`read_csv` finds the separator between columns (``,``, ``;``, a tab or ``|``)
from the header line, drops the rows left wholly empty (the ``,,,`` lines a
spreadsheet leaves at the end), and reads a text column as numbers when every value
in it is a number written one way:

- with thousands separators: ``1,234.5``;
- with a decimal comma, as spreadsheets in most of Europe write them: ``12,5``,
  ``1.234,5`` or ``1 234,5``.

A comma alone (``1,234``) is a thousands separator in a comma-separated file, and a
decimal comma in a file separated otherwise. What a spreadsheet's formats write around
every number of a column is taken off first: the same currency symbol before or after
each (``$1,234.50``, ``-$12``, ``1.234,50 €``, ``R$ 12,50``), a percent sign after each
(``12.5%``, read as 0.125, as the spreadsheet holds it), and the parentheses of an
accountant's negative numbers (``(1,234.50)``). What was read so is logged. A column
that mixes the ways, or holds other text, is left as text, for the caller to refuse by
name.
"""

from __future__ import annotations

import logging
import re
import unicodedata
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
# a number and what a format writes around it: a sign, a symbol before (a sign after
# it too: $-12), the digits with their separators, a symbol after
_AROUND = (r"^(?P<sign>[-+]?)\s*(?P<before>[^\d\s.,+\-]*?)\s*(?P<inner_sign>[-+]?)"
           rf"(?P<number>\d(?:[\d.,{re.escape(_GROUPING)}]*\d)?)\s*(?P<after>[^\d\s]*)$")


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
    text, scale, formats = _unwrapped(text)
    # pandas read any column of plain numbers: this one holds separators, or other text
    point, comma = text.str.match(_POINT).all(), text.str.match(_COMMA).all()
    if comma and (decimal_comma or not point):
        values = text.str.replace(f"[{re.escape(_GROUPING)}]", "", regex=True).str.replace(",", ".", regex=False)
        how = "with a decimal comma"
    elif point:
        values = text.str.replace(",", "", regex=False)
        how = "with thousands separators" if text.str.contains(",", regex=False).any() else "with a decimal point"
    else:
        return None, ""
    numbers = pd.Series(float("nan"), index=column.index)
    numbers[given] = values.astype(float) * scale
    return numbers, ", ".join([how, *formats])


def _unwrapped(text: pd.Series) -> tuple[pd.Series, float, list[str]]:
    """``text`` with what a format writes around every number taken off (see the
    module's doc): the bare numbers, the factor they are read with (0.01 for
    percentages) and the formats met. Unchanged, with no format, unless each value is
    a number wrapped the same way: the same currency symbol, or a percent sign, on all."""
    formats = []
    negative = text.str.fullmatch(r"\(.*\d.*\)")
    signed = text.where(~negative, "-" + text.str.slice(1, -1).str.strip())
    parts = signed.str.extract(_AROUND)
    if parts["number"].isna().any() or (parts["sign"].ne("") & parts["inner_sign"].ne("")).any():
        return text, 1.0, []
    before, after = set(parts["before"]), set(parts["after"])
    if len(before) > 1 or len(after) > 1:  # symbols on some values only, or mixed
        return text, 1.0, []
    before, after = before.pop(), after.pop()
    scale = 1.0
    if not before and after == "%":
        scale = 0.01
        formats.append("as percentages (12.5% is 0.125)")
    elif before or after:
        symbol = before or after
        if (before and after) or not any(unicodedata.category(char) == "Sc" for char in symbol):
            return text, 1.0, []  # a unit, a code or a name, not a currency symbol: text
        formats.append(f"in {symbol}")
    if negative.any():
        formats.append("negatives in parentheses")
    return parts["sign"] + parts["inner_sign"] + parts["number"], scale, formats
