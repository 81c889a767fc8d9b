"""Categorical node columns to numbers, and wide 0/1 flag tables to edges.

* :func:`encode_categorical`: a column of category values becomes one-hot 0/1
  columns or the integer index of each value in a vocabulary (for an embedding
  lookup); the vocabulary is returned so that it can be recorded.
* :func:`read_wide_edges`: a table with one row per node and one 0/1 column per
  category (e.g. 19 genre flags of a movie) becomes the edges between each row's
  node and the nodes named after the columns whose flag is 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .config import CategoricalColumn, WideEdgeSource
from .ids import End
from .readers import Table, and_more, read_table
from .values import _INT, parse_flags, parse_ids


def _vocabulary(text: pd.Series, spec: CategoricalColumn) -> list[str]:
    if spec.categories is not None:
        return [str(c).strip() for c in spec.categories]
    seen = [str(v) for v in pd.unique(text)]
    if seen and all(pd.Series(seen).str.fullmatch(_INT)):
        return sorted(seen, key=int)
    return sorted(seen)


def encode_categorical(
    table: Table, column: str, spec: CategoricalColumn, what: str
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The encoded columns of categorical ``column`` and its vocabulary.

    Returns:
        ``{name: values}`` (one-hot: ``int8`` 0/1 columns ``<prefix><value>`` in
        vocabulary order; index: ``{column: int64 positions}``) and the
        vocabulary.

    Raises:
        IngestionError: the column is absent, a value is missing (and not
            filled), or a value is not one of the configured ``categories``.
    """
    values = table.column(column, what)
    text = values.astype(str).str.strip()
    vocab = _vocabulary(text, spec)
    codes = pd.Index(vocab).get_indexer(text)
    unknown = codes < 0
    if unknown.any():
        pos = int(np.flatnonzero(unknown)[0])
        raise table.error(
            f"value {text.iloc[pos]!r} is not one of the categories {vocab[:10]}"
            f"{' …' if len(vocab) > 10 else ''} ({what}.categories)"
            f"{and_more(int(unknown.sum()))}",
            row=int(values.index[pos]),
            column=column,
        )
    if spec.encoding == "index":
        return {column: codes.astype(np.int64)}, vocab
    prefix = f"{column}_" if spec.prefix is None else spec.prefix
    return {
        f"{prefix}{value}": (codes == j).astype(np.int8)
        for j, value in enumerate(vocab)
    }, vocab


def read_wide_edges(
    source: WideEdgeSource,
    path: Path,
    what: str,
    *,
    row_type: str,
    row_id_type: str,
    flag_type: str,
) -> tuple[End, End]:
    """The (row end, flag end) of the edges of a wide 0/1 table.

    Edges come in reading order: row by row, and within a row in the order of
    ``source.columns``.

    Raises:
        IngestionError: file problems, a missing row id or flag (not filled), a
            flag that is not 0 / 1.
    """
    table = read_table(source.file, path, what)
    row_ids = parse_ids(table, source.id, row_id_type, f"{what}.id")
    flags = np.column_stack(
        [parse_flags(table, c, f"{what}.columns") for c in source.columns]
    )
    rows, cols = np.nonzero(flags)
    names = np.asarray(source.columns, dtype=object)
    return (
        End(row_type, row_ids[rows], table, source.id, rows),
        End(flag_type, names[cols], table, None, rows),
    )
