"""Nodes of ``ingestion``: thin wrappers over :mod:`hgt_cluster_kedro.ingestion`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hgt_cluster_kedro.graph import GraphConfig
from hgt_cluster_kedro.ingestion import IngestionConfig, ingest


def ingest_tables(
    params: IngestionConfig,
    graph: GraphConfig,
    ground_truth: dict[str, str] | None,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], pd.DataFrame]:
    """Read the configured files into ``raw_nodes``, ``raw_edges`` and the ground
    truth, validated against ``graph.schema`` before anything is written.

    ``ground_truth`` is ``evaluation.ground_truth`` (its ``id_column`` and
    ``label_column`` name the columns of the ground-truth table).
    """
    if isinstance(params, dict):  # called directly, outside a Kedro run
        params = IngestionConfig.model_validate(params)
    if isinstance(graph, dict):
        graph = GraphConfig.model_validate(graph)
    truth: dict[str, Any] = ground_truth or {}
    columns = (truth.get("id_column", "id"), truth.get("label_column", "label"))
    result = ingest(
        params,
        graph.graph_schema,
        ground_truth_columns=columns,
        policy=graph.validation,
    )
    return result.nodes, result.edges, result.ground_truth
