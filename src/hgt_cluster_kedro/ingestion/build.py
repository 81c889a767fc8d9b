"""Assemble the canonical graph tables from configured files, validated.

:func:`ingest` returns exactly what ``data_generation`` writes: ``raw_nodes``
(node type -> table with the schema's id and feature columns), ``raw_edges``
(relation -> table with the schema's source / destination and optional weight /
time columns) and a ground-truth table (``id_column``, ``label_column``). The
tables pass :func:`hgt_cluster_kedro.graph.index_tables` before they are
returned, so nothing is written from input the ``graph`` pipeline would reject.

Node ids of a type without table come from the ids present (:mod:`.ids`);
categorical columns and wide flag tables are encoded by :mod:`.encode`; every
node without any edge is counted and logged as a warning.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hgt_cluster_kedro.graph import GraphSchema, ValidationPolicy, index_tables

from .config import GroundTruthSource, IngestionConfig, NodeSource
from .encode import encode_categorical, read_wide_edges
from .ids import End, ImpliedIds, report_isolated, resolve_implied
from .readers import (
    IngestionError,
    Table,
    and_more,
    read_labels,
    read_matrix,
    read_table,
)
from .values import parse_floats, parse_ids, parse_times

logger = logging.getLogger(__name__)


@dataclass
class IngestedGraph:
    """The canonical tables (the format of ``data_generation``'s outputs)."""

    nodes: dict[str, pd.DataFrame]
    edges: dict[str, pd.DataFrame]
    ground_truth: pd.DataFrame
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    #: node type -> categorical column -> vocabulary (also in the node table's
    #: ``attrs["vocabularies"]``)
    vocabularies: dict[str, dict[str, list[str]]] = field(default_factory=dict)


@dataclass
class _Edges:
    src: End
    dst: End
    weight: np.ndarray | None
    time: np.ndarray | None


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
    sources = set(config.edges) | set(config.wide_to_edges)
    for name in sorted(set(schema.relations) - sources):
        problems.append(
            f"ingestion.edges: no source for relation {name!r} (in edges or "
            "wide_to_edges)"
        )
    for section in ("edges", "wide_to_edges"):
        for name in sorted(set(getattr(config, section)) - set(schema.relations)):
            problems.append(
                f"ingestion.{section}.{name}: not a relation of graph.schema; "
                f"known: {sorted(schema.relations)}"
            )
    _check_wide(config, schema, problems)
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


def _check_wide(
    config: IngestionConfig, schema: GraphSchema, problems: list[str]
) -> None:
    for name, source in config.wide_to_edges.items():
        rel = schema.relations.get(name)
        if rel is None:
            continue
        where = f"ingestion.wide_to_edges.{name}"
        if rel.time_column:
            problems.append(
                f"{where}: graph.schema.relations.{name}.time_column is "
                f"{rel.time_column!r} but a wide table has no time"
            )
        flag_type = getattr(rel, source.flag_end)
        node = config.nodes.get(flag_type)
        if node is not None and (node.table is None or node.id_type != "str"):
            problems.append(
                f"ingestion.nodes.{flag_type}: the ids of {flag_type!r} are the "
                f"flag column names of {where}: give no nodes entry (the names "
                "become the nodes) or a node table with id_type: str"
            )


def _flag_types(config: IngestionConfig, schema: GraphSchema) -> dict[str, list[str]]:
    """Flag node type -> its node ids (the flag column names, in order), for the
    flag types without a node table."""
    out: dict[str, list[str]] = {}
    for name, source in config.wide_to_edges.items():
        flag_type = getattr(schema.relations[name], source.flag_end)
        if flag_type not in config.nodes:
            names = out.setdefault(flag_type, [])
            names += [c for c in source.columns if c not in names]
    return out


def _id_type(config: IngestionConfig, flags: dict[str, list[str]], ntype: str) -> str:
    return "str" if ntype in flags else config.nodes.get(ntype, NodeSource()).id_type


def _read_edges(config: IngestionConfig, schema: GraphSchema) -> dict[str, _Edges]:
    flags = _flag_types(config, schema)
    out = {}
    for name, source in config.edges.items():
        rel = schema.relations[name]
        what = f"ingestion.edges.{name}"
        table = read_table(source.file, config.resolve(source.file.path), what)
        ends = {}
        for end, ntype, column in (
            ("src", rel.src, source.src),
            ("dst", rel.dst, source.dst),
        ):
            ids = parse_ids(
                table, column, _id_type(config, flags, ntype), f"{what}.{end}"
            )
            ends[end] = End(ntype, ids, table, column)
        out[name] = _Edges(
            src=ends["src"],
            dst=ends["dst"],
            weight=(
                parse_floats(table, source.weight, f"{what}.weight")
                if source.weight
                else None
            ),
            time=(
                parse_times(table, source.time, f"{what}.time") if source.time else None
            ),
        )
    for name, wide in config.wide_to_edges.items():
        rel = schema.relations[name]
        row_type = getattr(rel, wide.row_end)
        row, flag = read_wide_edges(
            wide,
            config.resolve(wide.file.path),
            f"ingestion.wide_to_edges.{name}",
            row_type=row_type,
            row_id_type=_id_type(config, flags, row_type),
            flag_type=getattr(rel, wide.flag_end),
        )
        src, dst = (row, flag) if wide.row_end == "src" else (flag, row)
        weight = np.ones(len(row.ids), dtype=np.float64) if rel.weight_column else None
        out[name] = _Edges(src=src, dst=dst, weight=weight, time=None)
    return out


def _ends(edges: dict[str, _Edges], node_type: str) -> list[End]:
    """Every edge end of ``node_type``."""
    return [
        end
        for e in edges.values()
        for end in (e.src, e.dst)
        if end.node_type == node_type
    ]


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
) -> tuple[pd.DataFrame, dict[str, list[str]], Table]:
    """The node table of ``node_type``, the vocabularies of its categorical
    columns and the file read."""
    source = config.nodes[node_type]
    assert source.table is not None and source.id is not None
    what = f"ingestion.nodes.{node_type}"
    table = read_table(source.table, config.resolve(source.table.path), what)
    id_column = schema.node_types[node_type].id_column
    ids = parse_ids(table, source.id, source.id_type, f"{what}.id")
    keep = source.columns
    if keep is None:
        keep = [c for c in table.frame.columns if c != source.id]
    keep = keep + [c for c in source.categorical if c not in keep]
    features = set(schema.node_types[node_type].features)
    out: dict[str, np.ndarray] = {id_column: ids}
    vocabularies = {}
    for column in keep:
        if column in source.categorical:
            encoded, vocabularies[column] = encode_categorical(
                table,
                column,
                source.categorical[column],
                f"{what}.categorical.{column}",
            )
            out.update(encoded)
        elif column in features:  # the schema's features must parse as numbers
            out[column] = parse_floats(
                table,
                column,
                f"{what}.columns",
                hint=f" (a category? declare it in {what}.categorical)",
            )
        else:
            out[column] = table.column(column, f"{what}.columns").to_numpy()
    return pd.DataFrame(out), vocabularies, table


def _check_flag_names(
    node_type: str, ids: pd.Index, config: IngestionConfig, schema: GraphSchema
) -> None:
    """Every flag column of a wide table pointing to ``node_type`` (which has a
    node table) names one of its nodes, whether any flag is set or not."""
    for name, wide in config.wide_to_edges.items():
        if getattr(schema.relations[name], wide.flag_end) != node_type:
            continue
        unknown = [c for c in wide.columns if c not in ids]
        if unknown:
            raise IngestionError(
                config.resolve(wide.file.path),
                f"flag column {unknown[0]!r} of ingestion.wide_to_edges.{name} is "
                f"not a node of the {node_type} node table (ingestion.nodes."
                f"{node_type}); unknown: {unknown[:10]}",
                line=1 if wide.file.has_header else None,
                column=unknown[0],
            )


def _check_known(node_type: str, ids: pd.Index, ends: list[End]) -> None:
    """Every edge end of ``node_type`` is one of its nodes (file and line)."""
    for end in ends:
        unknown = ~pd.Index(end.ids).isin(ids)
        if unknown.any():
            pos = int(np.flatnonzero(unknown)[0])
            raise end.error(
                pos,
                f"{node_type} id {_plain(end.ids[pos])!r} is not in the {node_type} "
                f"node table{and_more(int(unknown.sum()))}",
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
    nodes: pd.DataFrame,
    *,
    id_columns: tuple[str, str],
    columns: tuple[str, str],
    labels_npy: np.ndarray | None,
) -> pd.DataFrame:
    """The ground-truth table: labels by position (npy) or an id / label table.

    ``id_columns`` are the node table's id column and the column of the ids as
    the files write them (the same column unless the ids were compacted).
    """
    path = config.resolve(truth.file.path)
    what = "ingestion.ground_truth"
    node_ids = nodes[id_columns[0]].to_numpy()
    if labels_npy is not None:
        if len(labels_npy) != len(node_ids):
            raise IngestionError(
                path,
                f"{len(labels_npy)} labels (by position) but node type "
                f"{truth.node_type!r} has {len(node_ids)} nodes",
            )
        ids, labels = node_ids, labels_npy
    else:
        assert truth.id is not None and truth.label is not None
        table = read_table(truth.file, path, what)
        id_type = config.nodes.get(truth.node_type, NodeSource()).id_type
        ids = parse_ids(table, truth.id, id_type, f"{what}.id")
        labels = parse_ids(table, truth.label, "int", f"{what}.label")
        position = pd.Index(nodes[id_columns[1]]).get_indexer(ids)
        if (position < 0).any():
            pos = int(np.flatnonzero(position < 0)[0])
            raise table.error(
                f"id {_plain(ids[pos])!r} is not a {truth.node_type} node",
                row=int(table.frame.index[pos]),
                column=truth.id,
            )
        ids = node_ids[position]
    id_col, label_col = columns
    return pd.DataFrame({id_col: ids, label_col: labels.astype(np.int32)})


def _edge_frame(e: _Edges, rel) -> pd.DataFrame:
    data = {rel.src_column: e.src.ids, rel.dst_column: e.dst.ids}
    if rel.weight_column and e.weight is not None:
        data[rel.weight_column] = e.weight.astype(np.float32)
    if rel.time_column and e.time is not None:
        data[rel.time_column] = e.time
    return pd.DataFrame(data)


def _implied_nodes(
    ntype: str,
    source: NodeSource,
    id_column: str,
    ends: list[End],
    rows: int,
) -> pd.DataFrame:
    """The node table of an implied type; renumbers ``ends`` if compacted."""
    implied: ImpliedIds = resolve_implied(ntype, source, ends, rows)
    frame = pd.DataFrame({id_column: np.arange(implied.count, dtype=np.int64)})
    if implied.original is not None:
        frame[source.original_id_column] = implied.original
        for end in ends:
            end.ids = implied.renumber(end.ids)
    return frame


def _add_features(
    ntype: str,
    frame: pd.DataFrame,
    features: list[pd.DataFrame],
    source: NodeSource,
    config: IngestionConfig,
) -> pd.DataFrame:
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
    return frame


def _build_nodes(
    config: IngestionConfig,
    schema: GraphSchema,
    edges: dict[str, _Edges],
    label_rows: dict[str, int],
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, list[str]]], dict[str, Table]]:
    """Node tables of every type (edge ends renumbered where compacted), the
    vocabularies of categorical columns and the node files read."""
    flags = _flag_types(config, schema)
    nodes: dict[str, pd.DataFrame] = {}
    files: dict[str, Table] = {}
    vocabularies: dict[str, dict[str, list[str]]] = {}
    for ntype, ncfg in schema.node_types.items():
        source = config.nodes.get(ntype, NodeSource())
        ends = _ends(edges, ntype)
        features = _features(ntype, source, config)
        if source.table is not None:
            frame, vocab, files[ntype] = _node_table(ntype, config, schema)
            _check_flag_names(ntype, pd.Index(frame[ncfg.id_column]), config, schema)
            _check_known(ntype, pd.Index(frame[ncfg.id_column]), ends)
            if vocab:
                vocabularies[ntype] = vocab
        elif ntype in flags:
            frame = pd.DataFrame(
                {ncfg.id_column: np.asarray(flags[ntype], dtype=object)}
            )
            _check_known(ntype, pd.Index(frame[ncfg.id_column]), ends)
        else:
            rows = max([len(f) for f in features] + [0])
            if source.count is None:
                rows = max(rows, label_rows.get(ntype, 0))
            frame = _implied_nodes(ntype, source, ncfg.id_column, ends, rows)
        nodes[ntype] = _add_features(ntype, frame, features, source, config)
        if ntype in vocabularies:
            nodes[ntype].attrs["vocabularies"] = vocabularies[ntype]
            for column, vocab in vocabularies[ntype].items():
                logger.info(
                    "ingestion.nodes.%s: column %r has %d categories: %s",
                    ntype,
                    column,
                    len(vocab),
                    vocab[:20],
                )
    return nodes, vocabularies, files


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
    truth = config.ground_truth
    label_rows: dict[str, int] = {}
    labels_npy = None
    if truth is not None and truth.file.kind == "npy":
        labels_npy = read_labels(
            config.resolve(truth.file.path), "ingestion.ground_truth"
        )
        label_rows[truth.node_type] = len(labels_npy)
    nodes, vocabularies, node_files = _build_nodes(config, schema, edges, label_rows)
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
        source = config.nodes.get(truth.node_type, NodeSource())
        frame = nodes[truth.node_type]
        compacted = source.table is None and source.count is None
        compacted &= source.ids == "compact"
        file_ids = source.original_id_column if compacted else id_column
        gt = _ground_truth(
            truth,
            config,
            frame,
            id_columns=(id_column, file_ids),
            columns=ground_truth_columns,
            labels_npy=labels_npy,
        )
    locate = {  # edge i of a relation read from a long table is its row i
        f"raw_edges[{name!r}]": _locator(e.src.table)
        for name, e in edges.items()
        if e.src.rows is None and e.src.column is not None
    }
    locate.update(
        (f"raw_nodes[{ntype!r}]", _locator(table))
        for ntype, table in node_files.items()
    )
    index_tables(nodes, raw_edges, schema, policy, locate=locate)
    isolated = {
        t: report_isolated(
            t, f[schema.node_types[t].id_column].to_numpy(), _ends(edges, t)
        )[0]
        for t, f in nodes.items()
    }
    stats = {
        "nodes": {t: len(f) for t, f in nodes.items()},
        "edges": {r: len(f) for r, f in raw_edges.items()},
        "isolated": isolated,
        "labels": {"rows": len(gt)},
    }
    logger.info(
        "Ingested %s nodes, %s edges, %d labels in %.1f s",
        stats["nodes"],
        stats["edges"],
        len(gt),
        time.perf_counter() - start,
    )
    return IngestedGraph(nodes, raw_edges, gt, stats, vocabularies)
