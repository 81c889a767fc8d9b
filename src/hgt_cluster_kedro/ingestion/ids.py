"""Node ids of a type without node table, from the ids actually present.

A node type without a table has the ids ``0 … count-1``. With ``count: null``
the count comes from the distinct ids present in the edge lists (and the rows
of feature / label files), never from the largest id alone: a gap between them
is refused (default), compacted (ids renumbered ``0 … n-1``, the file's ids
kept) or kept on request (``dense``); an id above ``max_id``, or a count more
than ``max_id_ratio`` times the ids present, stops the run at the file, line
and column of the offending id before anything of its size is allocated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import NodeSource
from .readers import Table, and_more

logger = logging.getLogger(__name__)

_SHOW = 5


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class End:
    """The node ids at one end of one relation's edges, and where each came from.

    Attributes:
        node_type: the node type of this end.
        ids: one id per edge.
        table: the file read.
        column: the file column of the ids; ``None`` when each id is itself the
            column name (the flag end of a wide table).
        rows: data-row position in ``table`` of each edge (``None``: edge i
            comes from row i).
    """

    node_type: str
    ids: np.ndarray
    table: Table
    column: str | None
    rows: np.ndarray | None = None

    def error(self, pos: int, message: str):
        """An :class:`IngestionError` at the line and column of edge ``pos``."""
        row = pos if self.rows is None else int(self.rows[pos])
        column = self.column if self.column is not None else str(self.ids[pos])
        return self.table.error(
            message, row=int(self.table.frame.index[row]), column=column
        )


@dataclass
class ImpliedIds:
    """The nodes of an implied type: ``count`` ids, and for ``ids: compact``
    the file's id of each (``original[i]`` is node ``i``)."""

    count: int
    original: np.ndarray | None = None

    def renumber(self, ids: np.ndarray) -> np.ndarray:
        """File ids to node ids (all must be present)."""
        if self.original is None:
            return ids
        return np.searchsorted(self.original, ids).astype(np.int64)


def _largest(ends: list[End]) -> tuple[End, int] | None:
    """The end holding the largest id, and its position there."""
    best = None
    for end in ends:
        if len(end.ids):
            pos = int(np.argmax(end.ids))
            if best is None or end.ids[pos] > best[0].ids[best[1]]:
                best = (end, pos)
    return best


def _gaps(present: np.ndarray, start: int, stop: int, n: int = _SHOW) -> list[int]:
    """The first ``n`` integers of ``start … stop-1`` missing from sorted
    ``present``."""
    stop = min(stop, np.iinfo(np.int64).max)
    inside = present[(present >= start) & (present < stop)]
    bounds = np.concatenate([[start - 1], inside, [stop]]).astype(np.int64)
    out: list[int] = []
    for i in np.flatnonzero(np.diff(bounds) > 1)[:n]:
        first, stop_gap = int(bounds[i]) + 1, int(bounds[i + 1])
        out.extend(range(first, min(stop_gap, first + n)))
        if len(out) >= n:
            break
    return out[:n]


def _check_bounds(node_type: str, source: NodeSource, ends: list[End]) -> None:
    """Negative ids (except with ``ids: compact``) and ids above ``max_id``."""
    where = f"ingestion.nodes.{node_type}"
    for end in ends:
        if source.ids != "compact" or source.count is not None:
            bad = end.ids < 0
            if bad.any():
                pos = int(np.flatnonzero(bad)[0])
                raise end.error(
                    pos,
                    f"{node_type} id {int(end.ids[pos])} is negative (implied ids "
                    f"are 0..count-1; ids: compact renumbers any integers)"
                    f"{and_more(int(bad.sum()))}",
                )
        if source.max_id is not None:
            bad = end.ids > source.max_id
            if bad.any():
                pos = int(np.flatnonzero(bad)[0])
                raise end.error(
                    pos,
                    f"{node_type} id {int(end.ids[pos])} is above {where}.max_id="
                    f"{source.max_id}{and_more(int(bad.sum()))}",
                )


def resolve_implied(
    node_type: str, source: NodeSource, ends: list[End], rows: int
) -> ImpliedIds:
    """The nodes of ``node_type`` (no node table) from the ids of its edge ends
    and ``rows``, the number of rows of its feature / label files (by position).

    Raises:
        IngestionError: an id is negative, above ``max_id``, outside a declared
            count, or implies a range the present ids do not fill (``refuse``)
            or more than ``max_id_ratio`` times their number (``dense``).
        ValueError: no edge, feature or label file gives any id; a declared
            count more than ``max_id_ratio`` times the ids present.
    """
    where = f"ingestion.nodes.{node_type}"
    _check_bounds(node_type, source, ends)
    uniques = [np.unique(e.ids) for e in ends if len(e.ids)]
    present = np.unique(np.concatenate(uniques)) if uniques else np.zeros(0, np.int64)
    # distinct ids present: the edge ids plus 0..rows-1 (no array of rows made)
    n_present = rows + int(((present < 0) | (present >= rows)).sum())
    if n_present == 0:
        raise ValueError(
            f"{where}: no edge, feature or label file says how many nodes there "
            "are; set count"
        )
    largest = _largest(ends)
    if source.count is not None:
        return _declared(node_type, source, ends, n_present)
    if source.ids == "compact":
        if rows:
            present = np.union1d(present, np.arange(rows, dtype=np.int64))
        logger.info(
            "%s: ids compacted: %d distinct ids (from %s to %s) renumbered 0..%d",
            where,
            len(present),
            _plain(present[0]),
            _plain(present[-1]),
            len(present) - 1,
        )
        return ImpliedIds(len(present), present)
    top = -1 if largest is None else int(largest[0].ids[largest[1]])
    count = max(top + 1, rows)
    if count <= n_present:
        return ImpliedIds(count)
    assert largest is not None  # count > rows: the largest id set it
    end, pos = largest
    missing = count - n_present
    examples = _gaps(present, rows, count)
    shown = f" (e.g. {examples})" if examples else ""
    if source.ids == "refuse":
        raise end.error(
            pos,
            f"{node_type} id {top} is the largest id: with implied ids (count: "
            f"null) it makes 0..{top} the {node_type} nodes, but {missing:,} of "
            f"these {count:,} ids appear in no file{shown}. Set {where}.ids: "
            "compact (renumber the ids present to 0..n-1, keeping the file's ids "
            f"in column {source.original_id_column!r}), ids: dense (keep the "
            "missing ids as nodes without edges), or count",
        )
    if count > source.max_id_ratio * n_present:
        raise end.error(
            pos,
            f"{node_type} id {top} would make {count:,} implied nodes for "
            f"{n_present:,} distinct ids present, more than {where}.max_id_ratio="
            f"{source.max_id_ratio:g} times as many; fix the id, set ids: compact, "
            "or raise max_id_ratio",
        )
    logger.warning(
        "%s: ids: dense keeps %d ids that appear in no file as nodes without "
        "edges (0..%d for %d distinct ids present)%s",
        where,
        missing,
        top,
        n_present,
        shown,
    )
    return ImpliedIds(count)


def _declared(
    node_type: str, source: NodeSource, ends: list[End], n_present: int
) -> ImpliedIds:
    count = source.count
    assert count is not None
    where = f"ingestion.nodes.{node_type}"
    for end in ends:
        bad = end.ids >= count
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise end.error(
                pos,
                f"{node_type} id {int(end.ids[pos])} is outside 0..{count - 1} "
                f"(ids of {node_type} are implied: 0..count-1)"
                f"{and_more(int(bad.sum()))}",
            )
    if count > source.max_id_ratio * n_present:
        raise ValueError(
            f"{where}.count={count:,} is more than max_id_ratio="
            f"{source.max_id_ratio:g} times the {n_present:,} distinct ids present "
            "in the files; fix count or raise max_id_ratio"
        )
    return ImpliedIds(count)


def report_isolated(
    node_type: str, node_ids: np.ndarray, ends: list[End]
) -> tuple[int, list[object]]:
    """Count (and log, as a warning) the nodes of ``node_type`` without any edge.

    Returns:
        The number of such nodes and up to five of their ids.
    """
    connected = [pd.unique(e.ids) for e in ends if len(e.ids)]
    if connected:
        mask = ~pd.Index(node_ids).isin(np.concatenate(connected))
    else:
        mask = np.ones(len(node_ids), dtype=bool)
    n = int(mask.sum())
    examples = [_plain(v) for v in np.asarray(node_ids)[mask][:_SHOW]]
    if n:
        logger.warning(
            "ingestion: %d of %d %s nodes have no edge in any relation (e.g. %s)",
            n,
            len(node_ids),
            node_type,
            examples,
        )
    return n, examples
