"""Parsers of table columns: ids, numbers, timestamps, 0/1 flags.

Each takes a column through :meth:`Table.column` (missing values filled or
reported) and raises :class:`IngestionError` at the first value that does not
parse, naming the file, line (or parquet row), column and value, and how many
more there are. Numbers are ASCII only: Python and numpy accept other Unicode
digits (``int("５") == 5``), a file's full-width or Arabic-Indic digit is almost
always a data error, so it is reported instead of read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .readers import Table, and_more

_INT = r"[+-]?[0-9]+"
_INT64_MAX = "9223372036854775807"
_INT64_MIN = "9223372036854775808"  # magnitude of the smallest int64


def _first_bad(table: Table, bad: np.ndarray, values: pd.Series) -> tuple[int, str]:
    pos = int(np.flatnonzero(bad)[0])
    value = values.iloc[pos]
    value = value.item() if isinstance(value, np.generic) else value
    return int(values.index[pos]), repr(value)


def _raise_first(
    table: Table, bad: np.ndarray, values: pd.Series, column: str, message: str
) -> None:
    """Raise at the first ``bad`` value; ``message`` has a ``{value}`` field."""
    if bad.any():
        row, shown = _first_bad(table, bad, values)
        raise table.error(
            message.format(value=shown) + and_more(int(bad.sum())),
            row=row,
            column=column,
        )


def _non_ascii(text: pd.Series) -> np.ndarray:
    return ~text.str.isascii().fillna(True).to_numpy(dtype=bool)


def _check_ascii(table: Table, values: pd.Series, text: pd.Series, column: str):
    _raise_first(
        table,
        _non_ascii(text),
        values,
        column,
        "value {value} is not written with ASCII characters (numbers, ids and "
        "times must use the digits 0-9)",
    )


def _int64_overflow(text: pd.Series) -> np.ndarray:
    """Integer strings (``_INT``) whose value lies outside the int64 range."""
    if not len(text) or text.str.len().max() < 19:  # at most 18 digits: in range
        return np.zeros(len(text), dtype=bool)
    negative = text.str.startswith("-").to_numpy(dtype=bool)
    digits = text.str.lstrip("+-").str.lstrip("0")
    length = digits.str.len().to_numpy()
    limit = np.where(negative, _INT64_MIN, _INT64_MAX)
    same = length == 19
    over = length > 19
    if same.any():
        over[same] = digits.to_numpy(dtype=object)[same] > limit[same]
    return over


def parse_ids(table: Table, column: str, id_type: str, what: str) -> np.ndarray:
    """Node ids of ``column``: ``int64`` (``id_type="int"``) or strings.

    Raises:
        IngestionError: the column is absent, an id is missing (and not filled),
            does not parse, or lies outside the int64 range (naming the first
            bad line and how many more there are).
    """
    values = table.column(column, what)
    if id_type == "str":
        return values.astype(str).to_numpy(dtype=object)
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(values):
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        _raise_first(table, bad, values, column, "id {value} is not an integer")
        big = np.abs(arr) >= 2.0**63
        _raise_first(table, big, values, column, "id {value} is outside int64")
        return arr.astype(np.int64)
    if pd.api.types.is_bool_dtype(values):
        bad = np.ones(len(values), dtype=bool)
        _raise_first(table, bad, values, column, "id {value} is not an integer")
    text = values.astype(str).str.strip()
    _check_ascii(table, values, text, column)
    bad = ~text.str.fullmatch(_INT).to_numpy(dtype=bool)
    _raise_first(table, bad, values, column, "id {value} is not an integer")
    big = _int64_overflow(text)
    _raise_first(
        table,
        big,
        values,
        column,
        "id {value} is outside the int64 range (-2**63 .. 2**63-1)",
    )
    return text.astype(np.int64).to_numpy()


def parse_floats(table: Table, column: str, what: str, hint: str = "") -> np.ndarray:
    """Finite ``float64`` values of ``column`` (weights, numeric features);
    ``hint`` ends the message of a value that is not a number."""
    values = table.column(column, what)
    if not pd.api.types.is_numeric_dtype(values):
        _check_ascii(table, values, values.astype(str), column)
    numbers = pd.to_numeric(values, errors="coerce")
    arr = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    _raise_first(
        table,
        ~np.isfinite(arr),
        values,
        column,
        "value {value} is not a finite number"
        + hint.replace("{", "{{").replace("}", "}}"),
    )
    return arr


def parse_times(table: Table, column: str, what: str) -> np.ndarray:
    """Timestamps of ``column``: integers as they are, else ``datetime64[ms]``."""
    values = table.column(column, what)
    if pd.api.types.is_datetime64_any_dtype(values):
        bad = values.isna().to_numpy()
        parsed = values
    elif pd.api.types.is_integer_dtype(values):
        return values.to_numpy(dtype=np.int64)
    else:
        text = values.astype(str).str.strip()
        _check_ascii(table, values, text, column)
        if text.str.fullmatch(_INT).all():
            _raise_first(
                table,
                _int64_overflow(text),
                values,
                column,
                "time {value} is outside the int64 range",
            )
            return text.astype(np.int64).to_numpy()
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
        bad = parsed.isna().to_numpy()
    _raise_first(
        table, bad, values, column, "time {value} is neither an integer nor an ISO date"
    )
    return parsed.to_numpy().astype("datetime64[ms]")


def parse_flags(table: Table, column: str, what: str) -> np.ndarray:
    """0/1 flags of ``column`` (text ``0`` / ``1``, numbers 0 / 1, booleans)."""
    values = table.column(column, what)
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(values):
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isin(arr, (0.0, 1.0))
    else:
        text = values.astype(str).str.strip()
        bad = ~text.isin(("0", "1")).to_numpy()
        arr = (text == "1").to_numpy()
    _raise_first(table, bad, values, column, "flag {value} is not 0 or 1")
    return np.asarray(arr == 1, dtype=bool)
