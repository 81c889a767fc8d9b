"""Nodes of ``count_profile``: a thin wrapper over
:mod:`hgt_cluster_kedro.models.count_profile`."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from hgt_cluster_kedro.config import CountProfileParams
from hgt_cluster_kedro.embeddings import to_frame
from hgt_cluster_kedro.graph import GraphArtifact
from hgt_cluster_kedro.models.count_profile import count_profile
from hgt_cluster_kedro.runtime import peak_rss_mb


def build_count_profile(
    graph: GraphArtifact, params: CountProfileParams
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """User count profiles along ``params.metapath`` on the train graph.

    Returns:
        ``count_profile_user_embeddings`` (``id``, ``e0 …``) and a summary
        (``count_profile_training``: seconds, dimension, metapath).
    """
    params = CountProfileParams.model_validate(params)
    start = time.perf_counter()
    user_type = graph.schema.user_type
    profile = count_profile(
        graph.csr,
        user_type,
        list(params.metapath),
        max_dim=params.max_dim,
        seed=params.seed,
    )
    seconds = time.perf_counter() - start
    summary = {
        "method": "count_profile",
        "embedding_dim": int(profile.matrix.shape[1]),
        "train_seconds": seconds,
        "peak_memory_mb": peak_rss_mb(),
        "metapath": " -> ".join(profile.node_types),
        "profile_dim": profile.profile_dim,
        "nnz": profile.nnz,
        "reduced": profile.reduced,
        "explained_variance": profile.explained_variance,
        "users_without_paths": profile.empty_rows,
        "params": params.model_dump(),
    }
    return to_frame(graph.ids[user_type], profile.matrix), summary
