"""Nodes of ``data_generation``: thin wrappers over :mod:`hgt_cluster_kedro.generation`."""

from __future__ import annotations

from typing import Any

from hgt_cluster_kedro.generation import GeneratorConfig, generate


def generate_fake_data(
    params: GeneratorConfig,
) -> tuple[dict[str, Any], dict[str, Any], Any, Any]:
    """Generate users, notes, the three relations and the planted ground truth.

    ``params`` is validated by Kedro against :class:`GeneratorConfig` before any
    node runs, so a bad value stops the run with nothing written. In ``dask``
    mode the tables are lazy and are computed block by block while saved.

    Returns:
        ``raw_nodes`` (by node type), ``raw_edges`` (by relation),
        ``user_communities`` and ``note_topics``.
    """
    if isinstance(params, dict):  # called directly, outside a Kedro run
        params = GeneratorConfig.model_validate(params)
    graph = generate(params)
    return graph.nodes, graph.edges, graph.user_communities, graph.note_topics
