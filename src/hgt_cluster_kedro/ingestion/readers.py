"""Readers of node tables, edge lists, matrices and labels, with located errors.

Every problem raises :class:`IngestionError` naming the file and, for tables,
the line (text files: the physical line, 1-based, header included) or row
(parquet: 0-based) and the column. Text files are read by pandas' C parser as
strings (no type guessing), then each configured column is parsed on its own,
so an id that does not parse is reported where it is.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import TEXT_FORMATS, FileSource

logger = logging.getLogger(__name__)

_SHOW = 5
_SEPARATORS = {"csv": ",", "tsv": "\t", "whitespace": r"\s+"}
_INT = r"[+-]?\d+"


class IngestionError(ValueError):
    """An input file cannot be read as configured.

    Attributes:
        path: the file.
        line: 1-based line of a text file (or 0-based row of a parquet file,
            see ``unit``), or ``None``.
        column: the column concerned, or ``None``.
    """

    def __init__(
        self,
        path: Path | str,
        message: str,
        *,
        line: int | None = None,
        column: str | None = None,
        unit: str = "line",
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.column = column
        where = str(path)
        if line is not None:
            where += f", {unit} {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")


@dataclass
class Table:
    """A table read from one file.

    Attributes:
        path: the file.
        frame: the columns (strings for text files, typed for parquet); the
            index is the 0-based data row.
        first_line: line of data row 0 (text files), or ``None`` (parquet).
    """

    path: Path
    frame: pd.DataFrame
    first_line: int | None

    @property
    def unit(self) -> str:
        return "row" if self.first_line is None else "line"

    def where(self, row: int) -> int:
        """Line (text) or row (parquet) of data row ``row``."""
        return row if self.first_line is None else row + self.first_line

    def error(self, message: str, row: int | None = None, column: str | None = None):
        """An :class:`IngestionError` at data row ``row`` and ``column``."""
        line = None if row is None else self.where(row)
        return IngestionError(
            self.path, message, line=line, column=column, unit=self.unit
        )

    def column(self, name: str, what: str) -> pd.Series:
        """Column ``name`` (``what`` says which setting named it)."""
        if name not in self.frame.columns:
            raise IngestionError(
                self.path,
                f"column {name!r} ({what}) is absent; columns: "
                f"{list(self.frame.columns)}",
            )
        return self.frame[name]


def check_file(path: Path, what: str) -> None:
    """Raise :class:`IngestionError` if ``path`` is not a readable file."""
    if not path.exists():
        raise IngestionError(path, f"file not found ({what})")
    if not path.is_file():
        raise IngestionError(path, f"not a file ({what})")


def _field_count(line: str, kind: str, sep: str | None) -> int:
    if kind == "whitespace" and sep is None:
        return len(line.split())
    return len(next(csv.reader([line], delimiter=sep or _SEPARATORS[kind])))


def _bad_line(path: Path, source: FileSource, expected: int) -> tuple[int, int] | None:
    """First (line, fields) whose field count differs from ``expected``."""
    with path.open(encoding=source.encoding, newline="") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            found = _field_count(line, source.kind, source.sep)
            if found != expected:
                return number, found
    return None


def read_table(source: FileSource, path: Path, what: str) -> Table:
    """Read a csv / tsv / whitespace / parquet table as configured.

    Text files are read as strings; blank lines are skipped; a line with more or
    fewer fields than the header (or ``names``), or an empty field, is an error
    naming the file and the line.

    Raises:
        IngestionError: missing file, unreadable file, malformed line.
    """
    check_file(path, what)
    start = time.perf_counter()
    kind = source.kind
    if kind == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types
            raise IngestionError(path, f"cannot read as parquet: {exc}") from exc
        table = Table(path, frame.reset_index(drop=True), None)
        if source.names:
            table = _rename(table, source.names)
    elif kind in TEXT_FORMATS:
        table = _read_text(source, path)
    else:
        raise IngestionError(path, f"format {kind!r} is not a table ({what})")
    logger.info(
        "Read %s: %d rows x %d columns in %.2f s",
        path,
        len(table.frame),
        table.frame.shape[1],
        time.perf_counter() - start,
    )
    return table


def _rename(table: Table, names: list[str]) -> Table:
    if len(names) != table.frame.shape[1]:
        raise IngestionError(
            table.path,
            f"names has {len(names)} entries but the file has "
            f"{table.frame.shape[1]} columns {list(table.frame.columns)}",
        )
    table.frame.columns = list(names)
    return table


def _read_text(source: FileSource, path: Path) -> Table:
    header = source.has_header
    sep = source.sep or _SEPARATORS[source.kind]
    kwargs = {
        "sep": sep,
        "header": 0 if header else None,
        "dtype": str,
        "keep_default_na": False,
        "na_filter": False,
        "skip_blank_lines": False,
        "encoding": source.encoding,
        "engine": "c" if len(sep) == 1 or sep == r"\s+" else "python",
    }
    if not header:
        kwargs["names"] = list(source.names or [])
    try:
        frame = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError as exc:
        raise IngestionError(path, "the file is empty") from exc
    except UnicodeDecodeError as exc:
        raise IngestionError(
            path, f"not valid {source.encoding} text ({exc.reason} at byte {exc.start})"
        ) from exc
    except pd.errors.ParserError as exc:
        expected = _expected_fields(path, source)
        bad = _bad_line(path, source, expected) if expected else None
        if bad is None:
            raise IngestionError(path, f"malformed: {exc}") from exc
        raise IngestionError(
            path, f"expected {expected} fields, found {bad[1]}", line=bad[0]
        ) from exc
    first_line = 2 if header else 1
    table = Table(path, frame, first_line)
    if header and source.names:
        table = _rename(table, source.names)
    elif not header and frame.shape[1] != len(source.names or []):
        raise IngestionError(path, f"expected {len(source.names or [])} fields")
    return _drop_blank(_check_fields(table))


def _expected_fields(path: Path, source: FileSource) -> int | None:
    if not source.has_header:
        return len(source.names or [])
    with path.open(encoding=source.encoding, newline="") as handle:
        for raw in handle:
            if raw.strip():
                return _field_count(raw.rstrip("\r\n"), source.kind, source.sep)
    return None


def _check_fields(table: Table) -> Table:
    """An empty field on a non-blank line is a malformed line."""
    frame = table.frame
    if frame.empty:
        return table
    empty = np.column_stack([(frame[c] == "").to_numpy() for c in frame.columns])
    blank = empty.all(axis=1)
    bad = empty.any(axis=1) & ~blank
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        cols = [c for c, e in zip(frame.columns, empty[row], strict=True) if e]
        found = frame.shape[1] - len(cols)
        raise table.error(
            f"expected {frame.shape[1]} fields, found {found} (missing or empty "
            f"{cols}){and_more(int(bad.sum()))}",
            row=row,
            column=str(cols[0]),
        )
    return table


def _drop_blank(table: Table) -> Table:
    """Drop blank lines, keeping each row's line number in the index."""
    frame = table.frame
    if frame.empty:
        return table
    blank = np.logical_and.reduce([(frame[c] == "").to_numpy() for c in frame.columns])
    if blank.any():
        table.frame = frame[~blank]
    return table


def and_more(n: int) -> str:
    """Suffix `` (and n-1 more line(s))`` of a message about n problems."""
    return f" (and {n - 1} more line(s))" if n > 1 else ""


def _first_bad(table: Table, bad: np.ndarray, values: pd.Series) -> tuple[int, str]:
    pos = int(np.flatnonzero(bad)[0])
    value = values.iloc[pos]
    value = value.item() if isinstance(value, np.generic) else value
    return int(values.index[pos]), repr(value)


def parse_ids(table: Table, column: str, id_type: str, what: str) -> np.ndarray:
    """Node ids of ``column``: ``int64`` (``id_type="int"``) or strings.

    Raises:
        IngestionError: the column is absent, or an id does not parse (naming
            the first bad line and how many more there are).
    """
    values = table.column(column, what)
    if id_type == "str":
        if pd.api.types.is_numeric_dtype(values):
            return values.astype(str).to_numpy(dtype=object)
        bad = values.isna().to_numpy() | (values.astype(str).str.len() == 0)
        if bad.any():
            row, shown = _first_bad(table, bad, values)
            raise table.error(f"empty id {shown}", row=row, column=column)
        return values.astype(str).to_numpy(dtype=object)
    if pd.api.types.is_integer_dtype(values) and not values.isna().any():
        return values.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(values):
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
    elif pd.api.types.is_bool_dtype(values):
        bad = np.ones(len(values), dtype=bool)
    else:
        text = values.astype(str).str.strip()
        bad = ~text.str.fullmatch(_INT).fillna(False).to_numpy(dtype=bool)
        bad |= values.isna().to_numpy()
    if bad.any():
        row, shown = _first_bad(table, bad, values)
        raise table.error(
            f"id {shown} is not an integer{and_more(int(bad.sum()))}",
            row=row,
            column=column,
        )
    if pd.api.types.is_float_dtype(values):
        return values.to_numpy(dtype=np.float64).astype(np.int64)
    try:
        return values.astype(str).str.strip().astype(np.int64).to_numpy()
    except (OverflowError, ValueError) as exc:
        raise table.error(f"ids out of the int64 range: {exc}", column=column) from exc


def parse_floats(table: Table, column: str, what: str) -> np.ndarray:
    """Finite ``float64`` values of ``column`` (weights, numeric features)."""
    values = table.column(column, what)
    numbers = pd.to_numeric(values, errors="coerce")
    arr = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(arr)
    if bad.any():
        row, shown = _first_bad(table, bad, values)
        raise table.error(
            f"value {shown} is not a finite number{and_more(int(bad.sum()))}",
            row=row,
            column=column,
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
        if text.str.fullmatch(_INT).all():
            return text.astype(np.int64).to_numpy()
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
        bad = parsed.isna().to_numpy()
    if bad.any():
        row, shown = _first_bad(table, bad, values)
        raise table.error(
            f"time {shown} is neither an integer nor an ISO date"
            f"{and_more(int(bad.sum()))}",
            row=row,
            column=column,
        )
    return parsed.to_numpy().astype("datetime64[ms]")


def read_matrix(source: FileSource, path: Path, what: str) -> np.ndarray:
    """A 2-D ``float32`` matrix from ``npy`` (dense) or ``npz`` (scipy sparse).

    Raises:
        IngestionError: missing file, not a matrix, non-finite values.
    """
    check_file(path, what)
    start = time.perf_counter()
    if source.kind == "npz":
        import scipy.sparse as sp

        try:
            matrix = sp.load_npz(path)
        except Exception as exc:  # not a scipy sparse archive
            raise IngestionError(
                path, f"cannot read as a scipy sparse matrix (.npz): {exc}"
            ) from exc
        dense = np.asarray(matrix.todense(), dtype=np.float32)
    else:
        dense = _load_npy(path).astype(np.float32, copy=False)
    if dense.ndim != 2:
        raise IngestionError(path, f"expected a 2-D matrix, got shape {dense.shape}")
    bad = ~np.isfinite(dense).all(axis=1)
    if bad.any():
        raise IngestionError(
            path,
            f"non-finite values in row(s) {np.flatnonzero(bad)[:_SHOW].tolist()}",
            line=int(np.flatnonzero(bad)[0]),
            unit="row",
        )
    logger.info(
        "Read %s: matrix %d x %d in %.2f s",
        path,
        *dense.shape,
        time.perf_counter() - start,
    )
    return dense


def _load_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # ValueError for pickled objects, others for garbage
        raise IngestionError(
            path, f"cannot read as a numpy array (.npy): {exc}"
        ) from exc
    if not isinstance(arr, np.ndarray):
        raise IngestionError(path, "expected a .npy array, got an .npz archive")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise IngestionError(path, f"expected numbers, got dtype {arr.dtype}")
    return arr


def read_labels(path: Path, what: str) -> np.ndarray:
    """A 1-D ``int64`` label array from ``npy`` (label of position i at i)."""
    check_file(path, what)
    arr = _load_npy(path)
    if arr.ndim != 1:
        raise IngestionError(path, f"expected a 1-D label array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        values = arr.astype(np.float64)
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            raise IngestionError(
                path,
                f"label {arr[bad][0]!r} is not an integer",
                line=int(np.flatnonzero(bad)[0]),
                unit="row",
            )
    return arr.astype(np.int64)
