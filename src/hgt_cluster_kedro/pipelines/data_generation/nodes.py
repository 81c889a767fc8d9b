"""Nodes of ``data_generation``: thin wrappers over :mod:`hgt_cluster_kedro.generation`."""

from __future__ import annotations

from typing import Any

from hgt_cluster_kedro.config import DataGenerationParams
from hgt_cluster_kedro.generation import generate


def generate_fake_data(
    params: DataGenerationParams,
) -> tuple[dict[str, Any], dict[str, Any], Any, Any]:
    """Generate users, notes, the three relations and the planted ground truth.

    ``params`` is validated (:mod:`hgt_cluster_kedro.config`) before any
    node runs, so a bad value stops the run with nothing written. In ``dask``
    mode the tables are lazy and are computed block by block while saved.

    Returns:
        ``raw_nodes`` (by node type), ``raw_edges`` (by relation),
        ``user_communities`` and ``note_topics``.
    """
    graph = generate(DataGenerationParams.model_validate(params))
    return graph.nodes, graph.edges, graph.user_communities, graph.note_topics
