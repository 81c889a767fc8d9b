"""Readers of node tables, edge lists, matrices and labels, with located errors.

Every problem raises :class:`IngestionError` naming the file and, for tables,
the line (text files: the physical line, 1-based, header included) or row
(parquet: 0-based) and the column. Text files are read by pandas' C parser as
strings (no type guessing), then each column the ingestion uses is taken on its
own (:meth:`Table.column`: missing values filled or reported) and parsed
(:mod:`.values`), so a value that does not parse is reported where it is and a
column that is not used is never checked. A byte that does not decode is
reported with its line and byte offset in the file.
"""

from __future__ import annotations

import codecs
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
_CHUNK = 1 << 20


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
    source: FileSource | None = None

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
        """Column ``name`` (``what`` says which setting named it), its missing
        values (empty fields, the file's ``na_values`` of the column, nulls)
        replaced by the file's ``fill`` of the column.

        Raises:
            IngestionError: the column is absent, or a missing value is left
                unfilled (naming the first line and how many more there are).
        """
        if name not in self.frame.columns:
            raise IngestionError(
                self.path,
                f"column {name!r} ({what}) is absent; columns: "
                f"{list(self.frame.columns)}",
            )
        values = self.frame[name]
        na = self.source.na_values.get(name, []) if self.source else []
        na = [str(v).strip() for v in na]
        missing = values.isna().to_numpy().copy()
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            text = values.astype(str)
            missing |= (text == "").to_numpy() | text.str.isspace().to_numpy()
            if na:
                missing |= text.str.strip().isin(na).to_numpy()
        elif na:
            missing = missing | values.astype(str).isin(na).to_numpy()
        if not missing.any():
            return values
        fill = self.source.fill if self.source else {}
        if name in fill:
            value = fill[name]
            if self.first_line is not None:  # text: values are strings
                value = str(int(value) if isinstance(value, bool) else value)
            out = values.astype(object).copy()
            out[missing] = value
            if self.first_line is None:  # parquet: back to a typed column
                return out.infer_objects()
            return out.astype(str)
        row = int(np.flatnonzero(missing)[0])
        raise self.error(
            f"{self._missing(row, name)}{and_more(int(missing.sum()))} in a "
            f"column used by {what}; set fill: {{{name}: <value>}} (and na_values) "
            "in this file's settings, or do not use the column",
            row=int(values.index[row]),
            column=name,
        )

    def _missing(self, pos: int, name: str) -> str:
        """What a missing value at data row position ``pos`` is."""
        value = self.frame[name].iloc[pos]
        if self.first_line is None:
            return f"missing value {_plain(value)!r}"
        if str(value).strip():
            return f"missing value {value!r} (na_values)"
        line = self.where(int(self.frame.index[pos]))
        assert self.source is not None
        found = _fields_on_line(self.path, self.source, line)
        expected = self.frame.shape[1]
        if found is not None and found < expected:
            return f"expected {expected} fields, found {found}: no value"
        return "missing value (empty field)"


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


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


def _fields_on_line(path: Path, source: FileSource, line: int) -> int | None:
    """Number of fields on physical line ``line`` (1-based), or ``None``."""
    with path.open(encoding=source.encoding, newline="") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == line:
                return _field_count(raw.rstrip("\r\n"), source.kind, source.sep)
    return None


def locate_decode_error(
    path: Path, encoding: str
) -> tuple[int, int, str, bytes] | None:
    """``(line, byte offset, reason, bad bytes)`` of the first byte sequence of
    ``path`` that does not decode as ``encoding``, or ``None``.

    The file is decoded incrementally in 1 MiB chunks, so the offset is the
    byte's position in the whole file (0-based) and the line counts the line
    breaks decoded before it (1-based).
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    line, offset = 1, 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(_CHUNK)
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                good = exc.object[: exc.start].decode(encoding, errors="replace")
                return (
                    line + good.count("\n"),
                    offset - pending + exc.start,
                    exc.reason,
                    bytes(exc.object[exc.start : exc.end]),
                )
            if not chunk:
                return None
            line += text.count("\n")
            offset += len(chunk)


def _decode_error(path: Path, encoding: str, exc: UnicodeDecodeError):
    found = locate_decode_error(path, encoding)
    if found is None:  # pandas saw what a plain decode does not: keep its words
        return IngestionError(path, f"not valid {encoding} text ({exc.reason})")
    line, offset, reason, bad = found
    return IngestionError(
        path,
        f"not valid {encoding} text: {reason}, byte(s) {bad.hex(' ')} at byte "
        f"offset {offset} of the file; set the file's encoding (e.g. latin-1, "
        f"cp1252) if it is not {encoding}",
        line=line,
    )


def read_table(source: FileSource, path: Path, what: str) -> Table:
    """Read a csv / tsv / whitespace / parquet table as configured.

    Text files are read as strings; blank lines are skipped; a line with more
    fields than the header (or ``names``) is an error naming the file and the
    line. A line with fewer fields, or an empty field, is a missing value in the
    columns concerned, an error only where a used column is missing a value
    (see :meth:`Table.column`).

    Raises:
        IngestionError: missing file, unreadable or undecodable file, malformed
            line.
    """
    check_file(path, what)
    start = time.perf_counter()
    kind = source.kind
    if kind == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types
            raise IngestionError(path, f"cannot read as parquet: {exc}") from exc
        table = Table(path, frame.reset_index(drop=True), None, source)
        if source.names:
            table = _rename(table, source.names)
    elif kind in TEXT_FORMATS:
        try:
            table = _read_text(source, path)
        except UnicodeDecodeError as exc:
            raise _decode_error(path, source.encoding, exc) from exc
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
    except pd.errors.ParserError as exc:
        expected = _expected_fields(path, source)
        bad = _bad_line(path, source, expected) if expected else None
        if bad is None:
            raise IngestionError(path, f"malformed: {exc}") from exc
        raise IngestionError(
            path, f"expected {expected} fields, found {bad[1]}", line=bad[0]
        ) from exc
    first_line = 2 if header else 1
    table = Table(path, frame, first_line, source)
    if header and source.names:
        table = _rename(table, source.names)
    elif not header and frame.shape[1] != len(source.names or []):
        raise IngestionError(path, f"expected {len(source.names or [])} fields")
    for setting in ("na_values", "fill"):
        unknown = sorted(set(getattr(source, setting)) - set(table.frame.columns))
        if unknown:
            raise IngestionError(
                path,
                f"{setting} names column(s) {unknown} that the file does not have; "
                f"columns: {list(table.frame.columns)}",
            )
    return _drop_blank(table)


def _expected_fields(path: Path, source: FileSource) -> int | None:
    if not source.has_header:
        return len(source.names or [])
    with path.open(encoding=source.encoding, newline="") as handle:
        for raw in handle:
            if raw.strip():
                return _field_count(raw.rstrip("\r\n"), source.kind, source.sep)
    return None


def _drop_blank(table: Table) -> Table:
    """Drop blank lines, keeping each row's line number in the index."""
    frame = table.frame
    if frame.empty:
        return table
    blank = np.logical_and.reduce(
        [(frame[c].fillna("").str.strip() == "").to_numpy() for c in frame.columns]
    )
    if blank.any():
        table.frame = frame[~blank]
    return table


def and_more(n: int) -> str:
    """Suffix `` (and n-1 more line(s))`` of a message about n problems."""
    return f" (and {n - 1} more line(s))" if n > 1 else ""


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
