"""Assemble the canonical graph tables from configured files, validated.

:func:`ingest` returns exactly what ``data_generation`` writes: ``raw_nodes``
(node type -> table with the schema's id and feature columns), ``raw_edges``
(relation -> table with the schema's source / destination and optional weight /
time columns) and a ground-truth table (``id_column``, ``label_column``). The
tables pass :func:`hgt_cluster_kedro.graph.index_tables` before they are
returned, so nothing is written from input the ``graph`` pipeline would reject.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hgt_cluster_kedro.graph import GraphSchema, ValidationPolicy, index_tables

from .config import GroundTruthSource, IngestionConfig, NodeSource
from .readers import (
    IngestionError,
    Table,
    and_more,
    parse_floats,
    parse_ids,
    parse_times,
    read_labels,
    read_matrix,
    read_table,
)

logger = logging.getLogger(__name__)


@dataclass
class IngestedGraph:
    """The canonical tables (the format of ``data_generation``'s outputs)."""

    nodes: dict[str, pd.DataFrame]
    edges: dict[str, pd.DataFrame]
    ground_truth: pd.DataFrame
    stats: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class _Edges:
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray | None
    time: np.ndarray | None
    table: Table
    src_column: str
    dst_column: str


def _plain(value: object) -> object:
    """A numpy scalar as the Python value (for messages)."""
    return value.item() if isinstance(value, np.generic) else value


def check_config(config: IngestionConfig, schema: GraphSchema) -> None:
    """Configuration against the schema, before any file is opened.

    Raises:
        ValueError: listing every relation or node type that is missing,
            unknown, or lacks a column the schema asks for.
    """
    problems: list[str] = []
    for name in sorted(set(schema.relations) - set(config.edges)):
        problems.append(f"ingestion.edges: no source for relation {name!r}")
    for name in sorted(set(config.edges) - set(schema.relations)):
        problems.append(
            f"ingestion.edges.{name}: not a relation of graph.schema; known: "
            f"{sorted(schema.relations)}"
        )
    for name in sorted(set(config.nodes) - set(schema.node_types)):
        problems.append(
            f"ingestion.nodes.{name}: not a node type of graph.schema; known: "
            f"{sorted(schema.node_types)}"
        )
    for name, source in config.edges.items():
        rel = schema.relations.get(name)
        if rel is None:
            continue
        for attr, column in (("weight", rel.weight_column), ("time", rel.time_column)):
            if column and not getattr(source, attr):
                problems.append(
                    f"ingestion.edges.{name}.{attr}: required, graph.schema.relations."
                    f"{name}.{attr}_column is {column!r}"
                )
    truth = config.ground_truth
    if truth is not None and truth.node_type not in schema.node_types:
        problems.append(
            f"ingestion.ground_truth.node_type={truth.node_type!r} is not a node type "
            f"of graph.schema; known: {sorted(schema.node_types)}"
        )
    if problems:
        raise ValueError(
            "ingestion configuration does not fit graph.schema:\n  - "
            + "\n  - ".join(problems)
        )


def _read_edges(config: IngestionConfig, schema: GraphSchema) -> dict[str, _Edges]:
    out = {}
    for name, source in config.edges.items():
        rel = schema.relations[name]
        what = f"ingestion.edges.{name}"
        table = read_table(source.file, config.resolve(source.file.path), what)
        id_types = {
            end: config.nodes.get(ntype, NodeSource()).id_type
            for end, ntype in (("src", rel.src), ("dst", rel.dst))
        }
        out[name] = _Edges(
            src=parse_ids(table, source.src, id_types["src"], f"{what}.src"),
            dst=parse_ids(table, source.dst, id_types["dst"], f"{what}.dst"),
            weight=(
                parse_floats(table, source.weight, f"{what}.weight")
                if source.weight
                else None
            ),
            time=(
                parse_times(table, source.time, f"{what}.time") if source.time else None
            ),
            table=table,
            src_column=source.src,
            dst_column=source.dst,
        )
    return out


def _ends(schema: GraphSchema, edges: dict[str, _Edges], node_type: str):
    """(ids, table, file column) of every edge end of ``node_type``."""
    for name, e in edges.items():
        rel = schema.relations[name]
        if rel.src == node_type:
            yield e.src, e.table, e.src_column
        if rel.dst == node_type:
            yield e.dst, e.table, e.dst_column


def _implied_count(
    node_type: str,
    source: NodeSource,
    schema: GraphSchema,
    edges: dict[str, _Edges],
    rows: list[int],
) -> int:
    """Number of implied nodes; checks every edge id lies in ``[0, count)``."""
    count = source.count
    if count is None:
        highest = [int(ids.max()) for ids, _, _ in _ends(schema, edges, node_type)]
        count = max([h + 1 for h in highest] + rows + [0])
        if count == 0:
            raise ValueError(
                f"ingestion.nodes.{node_type}: no edge, feature or label file says "
                "how many nodes there are; set count"
            )
    for ids, table, column in _ends(schema, edges, node_type):
        bad = (ids < 0) | (ids >= count)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise table.error(
                f"{node_type} id {int(ids[pos])} is outside 0..{count - 1} "
                f"(ids of {node_type} are implied: 0..count-1)",
                row=int(table.frame.index[pos]),
                column=column,
            )
    return count


def _locator(table: Table):
    """0-based rows of a table read from ``table`` -> its 1-based file lines
    (text) or rows (parquet), for graph validation messages."""
    labels = table.frame.index.to_numpy()

    def locate(rows: np.ndarray) -> str:
        where = [int(table.where(int(labels[r]))) for r in rows]
        return f"{table.path.name} {table.unit}s {where}"

    return locate


def _node_table(
    node_type: str, config: IngestionConfig, schema: GraphSchema
) -> tuple[pd.DataFrame, Table]:
    source = config.nodes[node_type]
    assert source.table is not None and source.id is not None
    what = f"ingestion.nodes.{node_type}"
    table = read_table(source.table, config.resolve(source.table.path), what)
    id_column = schema.node_types[node_type].id_column
    ids = parse_ids(table, source.id, source.id_type, f"{what}.id")
    keep = source.columns
    if keep is None:
        keep = [c for c in table.frame.columns if c != source.id]
    features = set(schema.node_types[node_type].features)
    out = {id_column: ids}
    for column in keep:
        if column in features:  # the schema's features must parse as numbers
            out[column] = parse_floats(table, column, f"{what}.columns")
        else:
            out[column] = table.column(column, f"{what}.columns").to_numpy()
    return pd.DataFrame(out), table


def _check_known(
    node_type: str, ids: pd.Index, schema: GraphSchema, edges: dict[str, _Edges]
) -> None:
    """Every edge end of ``node_type`` is a node of its table (file and line)."""
    for values, table, column in _ends(schema, edges, node_type):
        unknown = ~pd.Index(values).isin(ids)
        if unknown.any():
            pos = int(np.flatnonzero(unknown)[0])
            raise table.error(
                f"{node_type} id {_plain(values[pos])!r} is not in the {node_type} node "
                f"table{and_more(int(unknown.sum()))}",
                row=int(table.frame.index[pos]),
                column=column,
            )


def _features(
    node_type: str, source: NodeSource, config: IngestionConfig
) -> list[pd.DataFrame]:
    frames = []
    for i, feat in enumerate(source.features):
        what = f"ingestion.nodes.{node_type}.features[{i}]"
        matrix = read_matrix(feat, config.resolve(feat.path), what)
        names = feat.names or [f"{feat.prefix}{j}" for j in range(matrix.shape[1])]
        if len(names) != matrix.shape[1]:
            raise IngestionError(
                config.resolve(feat.path),
                f"names has {len(names)} entries but the matrix has "
                f"{matrix.shape[1]} columns ({what})",
            )
        frames.append(pd.DataFrame(matrix, columns=names))
    return frames


def _ground_truth(
    truth: GroundTruthSource,
    config: IngestionConfig,
    node_ids: pd.Series,
    columns: tuple[str, str],
    labels_npy: np.ndarray | None,
) -> pd.DataFrame:
    """The ground-truth table: labels by position (npy) or an id / label table."""
    path = config.resolve(truth.file.path)
    what = "ingestion.ground_truth"
    if labels_npy is not None:
        if len(labels_npy) != len(node_ids):
            raise IngestionError(
                path,
                f"{len(labels_npy)} labels (by position) but node type "
                f"{truth.node_type!r} has {len(node_ids)} nodes",
            )
        ids, labels = node_ids.to_numpy(), labels_npy
    else:
        assert truth.id is not None and truth.label is not None
        table = read_table(truth.file, path, what)
        id_type = config.nodes.get(truth.node_type, NodeSource()).id_type
        ids = parse_ids(table, truth.id, id_type, f"{what}.id")
        labels = parse_ids(table, truth.label, "int", f"{what}.label")
        known = pd.Index(ids).isin(node_ids)
        if not known.all():
            pos = int(np.flatnonzero(~known)[0])
            raise table.error(
                f"id {_plain(ids[pos])!r} is not a {truth.node_type} node",
                row=int(table.frame.index[pos]),
                column=truth.id,
            )
    id_col, label_col = columns
    return pd.DataFrame({id_col: ids, label_col: labels.astype(np.int32)})


def _edge_frame(e: _Edges, rel) -> pd.DataFrame:
    data = {rel.src_column: e.src, rel.dst_column: e.dst}
    if rel.weight_column and e.weight is not None:
        data[rel.weight_column] = e.weight.astype(np.float32)
    if rel.time_column and e.time is not None:
        data[rel.time_column] = e.time
    return pd.DataFrame(data)


def ingest(
    config: IngestionConfig,
    schema: GraphSchema,
    *,
    ground_truth_columns: tuple[str, str] = ("id", "label"),
    policy: ValidationPolicy | None = None,
) -> IngestedGraph:
    """Read every configured file and return the validated canonical tables.

    Args:
        config: where the data is and how to parse it.
        schema: the graph schema (output columns, node types, relations).
        ground_truth_columns: ``(id_column, label_column)`` of the ground-truth
            table (``evaluation.ground_truth``).
        policy: validation policy (duplicate edges, self-loops) of the graph.

    Raises:
        ValueError: the configuration does not fit the schema.
        IngestionError: a file is missing or malformed (file, line, column).
        GraphValidationError: the tables fail the graph's checks.
    """
    start = time.perf_counter()
    check_config(config, schema)
    edges = _read_edges(config, schema)
    nodes: dict[str, pd.DataFrame] = {}
    node_files: dict[str, Table] = {}
    truth = config.ground_truth
    label_rows: dict[str, int] = {}
    labels_npy = None
    if truth is not None and truth.file.kind == "npy":
        labels_npy = read_labels(
            config.resolve(truth.file.path), "ingestion.ground_truth"
        )
        label_rows[truth.node_type] = len(labels_npy)
    for ntype, ncfg in schema.node_types.items():
        source = config.nodes.get(ntype, NodeSource())
        features = _features(ntype, source, config)
        if source.table is not None:
            frame, node_files[ntype] = _node_table(ntype, config, schema)
            _check_known(ntype, pd.Index(frame[ncfg.id_column]), schema, edges)
        else:
            rows = [len(f) for f in features]
            if ntype in label_rows and source.count is None:
                rows.append(label_rows[ntype])
            count = _implied_count(ntype, source, schema, edges, rows)
            frame = pd.DataFrame({ncfg.id_column: np.arange(count, dtype=np.int64)})
        for i, feat in enumerate(features):
            if len(feat) != len(frame):
                raise IngestionError(
                    config.resolve(source.features[i].path),
                    f"{len(feat)} rows but node type {ntype!r} has {len(frame)} "
                    "nodes (features are joined by row)",
                )
            clash = sorted(set(feat.columns) & set(frame.columns))
            if clash:
                raise ValueError(
                    f"ingestion.nodes.{ntype}: feature columns {clash[:5]} are "
                    "already in the node table; set prefix or names"
                )
            frame = pd.concat([frame, feat], axis=1)
        nodes[ntype] = frame
    raw_edges = {
        name: _edge_frame(e, schema.relations[name]) for name, e in edges.items()
    }
    if truth is None:
        id_col, label_col = ground_truth_columns
        gt = pd.DataFrame(
            {id_col: pd.Series(dtype=np.int64), label_col: pd.Series(dtype=np.int32)}
        )
    else:
        id_column = schema.node_types[truth.node_type].id_column
        gt = _ground_truth(
            truth,
            config,
            nodes[truth.node_type][id_column],
            ground_truth_columns,
            labels_npy,
        )
    locate = {f"raw_edges[{name!r}]": _locator(e.table) for name, e in edges.items()}
    locate.update(
        (f"raw_nodes[{ntype!r}]", _locator(table))
        for ntype, table in node_files.items()
    )
    index_tables(nodes, raw_edges, schema, policy, locate=locate)
    stats = {
        "nodes": {t: len(f) for t, f in nodes.items()},
        "edges": {r: len(f) for r, f in raw_edges.items()},
        "labels": {"rows": len(gt)},
    }
    logger.info(
        "Ingested %s nodes, %s edges, %d labels in %.1f s",
        stats["nodes"],
        stats["edges"],
        len(gt),
        time.perf_counter() - start,
    )
    return IngestedGraph(nodes, raw_edges, gt, stats)
