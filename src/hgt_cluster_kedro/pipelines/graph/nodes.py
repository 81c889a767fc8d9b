"""Nodes of ``graph``: thin wrappers over :mod:`hgt_cluster_kedro.graph`."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from hgt_cluster_kedro.config import GraphParams
from hgt_cluster_kedro.graph import (
    GraphArtifact,
    IndexedTables,
    build_graph,
    index_tables,
    split_interactions,
)
from hgt_cluster_kedro.graph.partition import partition_graph, plot_report


def _config(params: GraphParams | dict) -> GraphParams:
    return GraphParams.model_validate(params)


def validate_tables(
    raw_nodes: dict[str, pd.DataFrame],
    raw_edges: dict[str, pd.DataFrame],
    params: GraphParams,
) -> IndexedTables:
    """Check the raw tables against the schema; index them (nothing is written).

    Also checks ``partition.num_parts`` against the nodes now, before ``split``
    and ``build`` write their outputs (the parameter check before the run knows
    the node count only when the run's source states it)."""
    cfg = _config(params)
    tables = index_tables(raw_nodes, raw_edges, cfg.graph_schema, cfg.validation)
    total = sum(tables.num_nodes.values())
    if cfg.partition.num_parts > total:
        raise ValueError(
            f"graph.partition.num_parts={cfg.partition.num_parts} is larger than "
            f"the {total} nodes of the graph"
        )
    return tables


def split(tables: IndexedTables, params: GraphParams) -> pd.DataFrame:
    """Per-user train / valid / test split of the distinct target interactions."""
    return split_interactions(tables, _config(params).split)


def build(tables: IndexedTables, interactions: pd.DataFrame) -> GraphArtifact:
    """Train message-passing graph (held-out pairs removed in both directions)."""
    return build_graph(tables, interactions)


def partition(
    graph: GraphArtifact, params: GraphParams
) -> tuple[dict[str, pd.DataFrame], dict[str, Any], Figure]:
    """Partition the graph (owners + halos) and report METIS vs hash."""
    cfg = _config(params).partition
    schema = graph.schema
    kwargs = {
        "num_parts": cfg.num_parts,
        "user_type": schema.user_type,
        "item_type": schema.item_type,
        "seed": cfg.seed,
        "hops": cfg.hops,
    }
    chosen = partition_graph(graph.csr, method=cfg.method, **kwargs)
    report = {"chosen": cfg.method, cfg.method: chosen.report()}
    if cfg.compare:
        other = "hash" if cfg.method == "metis" else "metis"
        report[other] = partition_graph(graph.csr, method=other, **kwargs).report()
    owners = pd.concat(
        [
            pd.DataFrame({"node_type": t, "node": range(len(o)), "part": o.numpy()})
            for t, o in chosen.owner.items()
        ],
        ignore_index=True,
    )
    halos = pd.concat(
        [
            pd.DataFrame({"part": p, "node_type": t, "node": ids.numpy()})
            for p in range(cfg.num_parts)
            for t, ids in chosen.halo(p).items()
        ],
        ignore_index=True,
    )
    return {"owners": owners, "halos": halos}, report, plot_report(report[cfg.method])
