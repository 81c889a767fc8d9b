"""Validate raw node and edge tables against a schema and index them.

:func:`index_tables` checks everything before anything is built or written and
raises one :class:`GraphValidationError` listing every problem, each naming the
table, the column and a few offending rows. Where a policy is more useful than a
stop (duplicate edges, self-loops) the policy applies and the count is logged.
The result holds contiguous ids per node type (with the original ids to map
back), edge arrays in those ids, and standardised features.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .schema import EdgeType, GraphSchema, ValidationPolicy

logger = logging.getLogger(__name__)

_SHOW = 5


class GraphValidationError(ValueError):
    """Raised with every problem found in the input tables."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"{len(problems)} problem(s) in the input tables:\n  - "
            + "\n  - ".join(problems)
        )


@dataclass
class EdgeArrays:
    """One relation's edges in contiguous ids."""

    src: np.ndarray  # int64
    dst: np.ndarray  # int64
    weight: np.ndarray | None = None  # float32
    time: np.ndarray | None = None  # int64 milliseconds


@dataclass
class IndexedTables:
    """Validated tables in contiguous ids per node type.

    ``ids[t]`` holds the original ids (position = contiguous id),
    ``features[t]`` the standardised float32 features (``None`` if the type
    has none), ``feature_stats[t]`` their means and standard deviations.
    """

    schema: GraphSchema
    ids: dict[str, pd.Index]
    edges: dict[EdgeType, EdgeArrays]
    features: dict[str, np.ndarray | None] = field(default_factory=dict)
    feature_stats: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def num_nodes(self) -> dict[str, int]:
        return {t: len(i) for t, i in self.ids.items()}


Locator = Callable[[np.ndarray], str]
"""Formats 0-based table rows as the place they came from (e.g. the 1-based
lines of the file a table was read from: ``"edges.csv lines [5, 9]"``)."""

# table label (``raw_edges['writes']``) -> Locator, set by index_tables(locate=)
_LOCATE: ContextVar[Mapping[str, Locator] | None] = ContextVar("_LOCATE", default=None)


def _rows(mask: np.ndarray | pd.Series, table: str | None = None) -> str:
    """The first offending rows of ``table``: file lines where known."""
    idx = np.flatnonzero(np.asarray(mask))
    more = f" (+{len(idx) - _SHOW} more)" if len(idx) > _SHOW else ""
    locate = (_LOCATE.get() or {}).get(table) if table else None
    if locate is not None:
        return f"{locate(idx[:_SHOW])}{more}"
    return f"rows {idx[:_SHOW].tolist()}{more}"


def _row(table: str, row: int) -> str:
    """One row of ``table`` (its file line where known)."""
    locate = (_LOCATE.get() or {}).get(table)
    return locate(np.array([row])) if locate is not None else f"row {row}"


def _values(values: np.ndarray) -> str:
    uniq = pd.unique(pd.Series(values))
    more = f" (+{len(uniq) - _SHOW} more)" if len(uniq) > _SHOW else ""
    return f"{[v.item() if hasattr(v, 'item') else v for v in uniq[:_SHOW]]}{more}"


def _missing_columns(
    table: str, frame: pd.DataFrame, columns: list[str], problems: list[str]
) -> bool:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        problems.append(
            f"{table}: missing column(s) {missing}; present: {list(frame.columns)}"
        )
    return bool(missing)


def _to_millis(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.to_numpy().astype("datetime64[ms]").astype(np.int64)
    return values.to_numpy().astype(np.int64)


def _check_nodes(
    schema: GraphSchema, nodes: dict[str, pd.DataFrame], problems: list[str]
) -> dict[str, pd.Index]:
    ids: dict[str, pd.Index] = {}
    for name in sorted(set(nodes) - set(schema.node_types)):
        problems.append(
            f"raw_nodes: table {name!r} is not a node type of the schema; "
            f"known: {sorted(schema.node_types)}"
        )
    for ntype, cfg in schema.node_types.items():
        table = f"raw_nodes[{ntype!r}]"
        frame = nodes.get(ntype)
        if frame is None:
            problems.append(f"raw_nodes: no table for node type {ntype!r}")
            continue
        if _missing_columns(table, frame, [cfg.id_column, *cfg.features], problems):
            continue
        col = frame[cfg.id_column]
        if len(frame) == 0:
            problems.append(f"{table}: the table is empty")
            continue
        null = col.isna().to_numpy()
        if null.any():
            problems.append(
                f"{table}.{cfg.id_column}: null ids at {_rows(null, table)}"
            )
            continue
        dup = col.duplicated(keep=False).to_numpy()
        if dup.any():
            problems.append(
                f"{table}.{cfg.id_column}: duplicate node ids "
                f"{_values(col.to_numpy()[dup])} at {_rows(dup, table)}"
            )
            continue
        for feat in cfg.features:
            values = frame[feat]
            if not (
                pd.api.types.is_numeric_dtype(values)
                or pd.api.types.is_bool_dtype(values)
            ):
                problems.append(
                    f"{table}.{feat}: feature must be numeric, got dtype {values.dtype}"
                )
                continue
            arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = ~np.isfinite(arr)
            if bad.any():
                problems.append(
                    f"{table}.{feat}: null or non-finite values at {_rows(bad, table)}"
                )
            elif feat in cfg.log_features and (arr < 0).any():
                problems.append(
                    f"{table}.{feat}: log feature has negative values at {_rows(arr < 0, table)}"
                )
        ids[ntype] = pd.Index(col.to_numpy())
    return ids


def _check_edges(
    schema: GraphSchema,
    edges: dict[str, pd.DataFrame],
    ids: dict[str, pd.Index],
    policy: ValidationPolicy,
    problems: list[str],
) -> dict[EdgeType, EdgeArrays]:
    out: dict[EdgeType, EdgeArrays] = {}
    for name in sorted(set(edges) - set(schema.relations)):
        problems.append(
            f"raw_edges: table {name!r} is not a relation of the schema; "
            f"known: {sorted(schema.relations)}"
        )
    for rname, rel in schema.relations.items():
        table = f"raw_edges[{rname!r}]"
        frame = edges.get(rname)
        if frame is None:
            problems.append(f"raw_edges: no table for relation {rname!r}")
            continue
        cols = [rel.src_column, rel.dst_column]
        cols += [c for c in (rel.weight_column, rel.time_column) if c]
        if _missing_columns(table, frame, cols, problems):
            continue
        if len(frame) == 0:
            problems.append(f"{table}: relation has no edges")
            continue
        ends = {}
        for end, column, ntype in (
            ("src", rel.src_column, rel.src),
            ("dst", rel.dst_column, rel.dst),
        ):
            values = frame[column]
            null = values.isna().to_numpy()
            if null.any():
                problems.append(f"{table}.{column}: null ids at {_rows(null, table)}")
                continue
            if ntype not in ids:
                continue
            index = ids[ntype].get_indexer(values.to_numpy())
            unknown = index < 0
            if unknown.any():
                problems.append(
                    f"{table}.{column}: ids {_values(values.to_numpy()[unknown])} "
                    f"are not in raw_nodes[{ntype!r}] at {_rows(unknown, table)}"
                )
                continue
            ends[end] = index.astype(np.int64)
        weight = time = None
        if rel.weight_column:
            w = frame[rel.weight_column].to_numpy(dtype=np.float64, na_value=np.nan)
            bad = ~np.isfinite(w)
            if bad.any():
                problems.append(
                    f"{table}.{rel.weight_column}: null or non-finite weights at "
                    f"{_rows(bad, table)}"
                )
            elif (w < 0).any():
                problems.append(
                    f"{table}.{rel.weight_column}: negative weights at {_rows(w < 0, table)}"
                )
            weight = w.astype(np.float32)
        if rel.time_column:
            tcol = frame[rel.time_column]
            null = tcol.isna().to_numpy()
            if null.any():
                problems.append(
                    f"{table}.{rel.time_column}: null timestamps at {_rows(null, table)}"
                )
            else:
                time = _to_millis(tcol)
        if len(ends) < 2:
            continue
        arrays = EdgeArrays(ends["src"], ends["dst"], weight, time)
        arrays = _apply_policies(
            table,
            rel.src == rel.dst,
            arrays,
            policy,
            problems,
            weight_column=rel.weight_column,
        )
        if arrays is not None:
            out[schema.edge_type(rname)] = arrays
    return out


def _take(arrays: EdgeArrays, keep: np.ndarray) -> EdgeArrays:
    return EdgeArrays(
        arrays.src[keep],
        arrays.dst[keep],
        None if arrays.weight is None else arrays.weight[keep],
        None if arrays.time is None else arrays.time[keep],
    )


def _apply_policies(
    table: str,
    homogeneous: bool,
    arrays: EdgeArrays,
    policy: ValidationPolicy,
    problems: list[str],
    *,
    weight_column: str | None = None,
) -> EdgeArrays | None:
    # table row of every remaining edge (messages name rows of the input table)
    origin = np.arange(len(arrays.src))
    if homogeneous and policy.self_loops != "keep":
        loops = arrays.src == arrays.dst
        if loops.any():
            if policy.self_loops == "error":
                problems.append(f"{table}: self-loops at {_rows(loops, table)}")
                return None
            logger.info("%s: dropped %d self-loops", table, int(loops.sum()))
            arrays = _take(arrays, ~loops)
            origin = origin[~loops]
    key = arrays.src * (int(arrays.dst.max()) + 1) + arrays.dst
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    n_dup = len(key) - len(first)
    if n_dup:
        conflict = _weight_conflicts(
            table, weight_column, arrays, origin=origin, first=first, inverse=inverse
        )
        if policy.duplicate_edges == "error":
            dup = np.zeros(int(origin.max()) + 1, dtype=bool)
            dup[origin] = True
            dup[origin[first]] = False
            problems.append(
                f"{table}: {n_dup} duplicate edges (same source and destination) at "
                f"{_rows(dup, table)}{'; ' + conflict if conflict else ''}; set "
                "graph.validation.duplicate_edges: drop to drop them"
            )
            return None
        logger.warning("%s: dropped %d duplicate edges (kept the first)", table, n_dup)
        if conflict:
            logger.warning("%s: %s; kept the first edge's weight", table, conflict)
        arrays = _take(arrays, np.sort(first))
    return arrays


def _weight_conflicts(
    table: str,
    weight_column: str | None,
    arrays: EdgeArrays,
    *,
    origin: np.ndarray,
    first: np.ndarray,
    inverse: np.ndarray,
) -> str | None:
    """Describe duplicate edges whose weight differs from their pair's first
    edge (``None`` when they all agree, or the relation has no weights)."""
    if arrays.weight is None:
        return None
    kept = first[inverse.reshape(-1)]
    differ = arrays.weight != arrays.weight[kept]
    if not differ.any():
        return None
    rows = np.flatnonzero(differ)
    shown = ", ".join(
        f"{_row(table, origin[r])} ({weight_column} {arrays.weight[r]:g}) vs "
        f"{_row(table, origin[kept[r]])} ({arrays.weight[kept[r]]:g})"
        for r in rows[:_SHOW]
    )
    more = f" (+{len(rows) - _SHOW} more)" if len(rows) > _SHOW else ""
    return (
        f"{len(rows)} duplicate edges have another {weight_column} than the "
        f"first edge of their pair: {shown}{more}"
    )


def _standardise(
    frame: pd.DataFrame, columns: list[str], log_columns: list[str]
) -> tuple[np.ndarray | None, dict[str, list[float]]]:
    if not columns:
        return None, {}
    x = frame[columns].to_numpy(dtype=np.float64, copy=True)
    for j, col in enumerate(columns):
        if col in log_columns:
            x[:, j] = np.log1p(x[:, j])
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    return ((x - mean) / std).astype(np.float32), {
        "columns": list(columns),
        "log1p": list(log_columns),
        "mean": mean.tolist(),
        "std": std.tolist(),
    }


def index_tables(
    nodes: dict[str, pd.DataFrame],
    edges: dict[str, pd.DataFrame],
    schema: GraphSchema,
    policy: ValidationPolicy | None = None,
    locate: Mapping[str, Locator] | None = None,
) -> IndexedTables:
    """Validate ``nodes`` (by node type) and ``edges`` (by relation) and index them.

    Args:
        nodes: node type -> table.
        edges: relation -> table.
        schema: the graph schema.
        policy: duplicate-edge and self-loop policy.
        locate: where the rows of a table come from, by table label
            (``raw_nodes['user']``, ``raw_edges['writes']``): messages then name
            the file lines (ingestion) instead of 0-based table rows.

    Raises:
        GraphValidationError: listing every problem found; nothing is returned.
    """
    policy = policy or ValidationPolicy()
    problems: list[str] = []
    token = _LOCATE.set(dict(locate or {}))
    try:
        ids = _check_nodes(schema, nodes, problems)
        arrays = _check_edges(schema, edges, ids, policy, problems)
    finally:
        _LOCATE.reset(token)
    if problems:
        raise GraphValidationError(problems)
    features, stats = {}, {}
    for ntype, cfg in schema.node_types.items():
        features[ntype], stats[ntype] = _standardise(
            nodes[ntype], cfg.features, cfg.log_features
        )
    logger.info(
        "Validated %s nodes and %s edges",
        {t: len(i) for t, i in ids.items()},
        {et[1]: len(a.src) for et, a in arrays.items()},
    )
    return IndexedTables(schema, ids, arrays, features, stats)
