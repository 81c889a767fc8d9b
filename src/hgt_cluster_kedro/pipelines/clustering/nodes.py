"""Nodes of ``clustering``: thin wrappers over :mod:`hgt_cluster_kedro.clustering`."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from hgt_cluster_kedro.clustering import fit_clusters
from hgt_cluster_kedro.config import ClusteringParams
from hgt_cluster_kedro.embeddings import from_frame

logger = logging.getLogger(__name__)


def cluster_users(
    user_embeddings: pd.DataFrame, params: ClusteringParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """KMeans on the user embeddings.

    Returns:
        ``user_clusters`` (``id``, ``cluster``) and ``cluster_centroids``
        (``cluster``, ``e0 …``, ``size``).
    """
    params = ClusteringParams.model_validate(params)
    ids = user_embeddings["id"].to_numpy()
    x = from_frame(user_embeddings, ids, name="user_embeddings")
    k = params.k
    if k > len(x):
        raise ValueError(
            f"clustering.k={k} is larger than the number of users ({len(x)})"
        )
    if params.normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    start = time.perf_counter()
    result = fit_clusters(
        x,
        k,
        backend=params.backend,
        minibatch_threshold=params.minibatch_threshold,
        n_init=params.n_init,
        max_iter=params.max_iter,
        seed=params.seed,
    )
    seconds = time.perf_counter() - start
    logger.info(
        "KMeans (%s) k=%d on %d users: inertia %.4g in %.2f s",
        result.backend,
        k,
        len(x),
        result.inertia,
        seconds,
    )
    clusters = pd.DataFrame({"id": ids, "cluster": result.labels.astype(np.int32)})
    cent = pd.DataFrame(
        result.centroids.astype(np.float32),
        columns=[f"e{j}" for j in range(result.centroids.shape[1])],
    )
    cent.insert(0, "cluster", np.arange(k, dtype=np.int32))
    cent["size"] = np.bincount(result.labels, minlength=k)
    return clusters, cent
