"""Nodes of ``ingestion``: thin wrappers over :mod:`hgt_cluster_kedro.ingestion`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hgt_cluster_kedro.config import GraphParams, GroundTruthParams, IngestionParams
from hgt_cluster_kedro.ingestion import ingest


def ingest_tables(
    params: IngestionParams,
    graph: GraphParams,
    ground_truth: Any,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], pd.DataFrame]:
    """Read the configured files into ``raw_nodes``, ``raw_edges`` and the ground
    truth, validated against ``graph.schema`` before anything is written.

    ``ground_truth`` is ``evaluation.ground_truth`` (its ``id_column`` and
    ``label_column`` name the columns of the ground-truth table).
    """
    params = IngestionParams.model_validate(params)
    graph = GraphParams.model_validate(graph)
    if isinstance(ground_truth, dict):
        ground_truth = GroundTruthParams.model_validate(ground_truth)
    columns = (
        ("id", "label")
        if ground_truth is None
        else (ground_truth.id_column, ground_truth.label_column)
    )
    result = ingest(
        params,
        graph.graph_schema,
        ground_truth_columns=columns,
        policy=graph.validation,
    )
    return result.nodes, result.edges, result.ground_truth
