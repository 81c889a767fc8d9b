"""Nodes of ``simclusters``: thin wrappers over :mod:`hgt_cluster_kedro.simclusters`.

Sparse matrices travel between nodes as long tables (``row``/``id``,
``community``/``dst``, ``score``/``weight``), written as parquet parts. The
first node validates every parameter against the graph, so a bad value fails
before anything is written.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hgt_cluster_kedro.embeddings import to_frame
from hgt_cluster_kedro.generation.cluster import start_client, stop_client
from hgt_cluster_kedro.graph import GraphArtifact
from hgt_cluster_kedro.runtime import peak_rss_mb
from hgt_cluster_kedro.simclusters import (
    SimClustersConfig,
    engagement_matrix,
    follow_matrix,
    interested_in,
    item_embeddings,
    knownfor,
    leiden,
    modularity,
    producer_embeddings,
    producer_similarity,
    top_community,
)

logger = logging.getLogger(__name__)


def _follow(graph: GraphArtifact, cfg: SimClustersConfig) -> tuple[sp.csr_matrix, str]:
    producer_type = cfg.check_graph(graph.schema, graph.num_nodes)
    paths = cfg.follow_paths(graph.schema)
    weights = None
    if cfg.follow_weights:
        weights = [cfg.follow_weights.get(r, 1.0) for r in cfg.follow_relations]
    follow = follow_matrix(
        graph.csr, paths, weights, metapath_weighting=cfg.metapath_weighting
    )
    return follow, producer_type


def sparse_to_frame(
    mat: sp.spmatrix, row_ids: Any, *, col: str = "community", value: str = "score"
) -> pd.DataFrame:
    """Long table ``(id, <col>, <value>)`` of the stored entries of ``mat``."""
    coo = sp.coo_matrix(mat)
    return pd.DataFrame(
        {
            "id": np.asarray(row_ids)[coo.row],
            col: coo.col.astype(np.int64),
            value: coo.data.astype(np.float32),
        }
    )


def frame_to_sparse(
    frame: pd.DataFrame,
    row_ids: pd.Index,
    n_cols: int,
    *,
    col: str = "community",
    value: str = "score",
    name: str = "table",
) -> sp.csr_matrix:
    """Inverse of :func:`sparse_to_frame` (rows in the order of ``row_ids``)."""
    rows = pd.Index(row_ids).get_indexer(frame["id"].to_numpy())
    if (rows < 0).any():
        bad = frame["id"].to_numpy()[rows < 0][:5].tolist()
        raise ValueError(f"{name}: ids {bad} are not in the graph")
    return sp.csr_matrix(
        (frame[value].to_numpy(np.float32), (rows, frame[col].to_numpy(np.int64))),
        shape=(len(row_ids), n_cols),
    )


def build_similarity(
    graph: GraphArtifact, params: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Producer–producer cosine graph after noise removal (validates all
    parameters first)."""
    cfg = SimClustersConfig.parse(params)
    follow, producer_type = _follow(graph, cfg)
    start = time.perf_counter()
    s = cfg.similarity
    sim = producer_similarity(
        follow,
        top_n=s.top_n,
        threshold=s.threshold,
        min_consumers=s.min_consumers,
        max_consumer_degree=s.max_consumer_degree,
        block_producers=s.block_producers,
        kernel=s.kernel,
    )
    seconds = time.perf_counter() - start
    ids = graph.ids[producer_type]
    frame = sparse_to_frame(sim, ids, col="dst", value="weight")
    frame["dst"] = np.asarray(ids)[frame["dst"].to_numpy()]
    summary = {
        "similarity_seconds": seconds,
        "producer_type": producer_type,
        "n_producers": int(sim.shape[0]),
        "similarity_edges": int(sim.nnz // 2),
        "isolated_producers": int((np.diff(sim.indptr) == 0).sum()),
        "follow_edges": int(follow.nnz),
    }
    return frame, summary


def _similarity_matrix(frame: pd.DataFrame, ids: pd.Index) -> sp.csr_matrix:
    coo = frame.assign(dst=pd.Index(ids).get_indexer(frame["dst"].to_numpy()))
    return frame_to_sparse(
        coo, ids, len(ids), col="dst", value="weight", name="similarity"
    )


def _leiden_report(
    sim: sp.csr_matrix, labels_mh: np.ndarray, cfg: SimClustersConfig
) -> dict[str, Any]:
    from sklearn.metrics import normalized_mutual_info_score

    labels, seconds = leiden(
        sim, resolution=cfg.knownfor.leiden_resolution, seed=cfg.knownfor.seed
    )
    assigned = labels >= 0
    return {
        "seconds": seconds,
        "modularity": modularity(sim, labels),
        "n_communities": int(np.unique(labels[assigned]).size),
        "nmi_vs_mh": float(normalized_mutual_info_score(labels_mh, labels)),
    }


def build_knownfor(
    similarity: pd.DataFrame, graph: GraphArtifact, params: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """KnownFor by Metropolis–Hastings (and Leiden as a peer when
    ``knownfor.compare_leiden``): ``(id, community, score)`` and a report."""
    cfg = SimClustersConfig.parse(params)
    _, producer_type = _follow(graph, cfg)
    ids = graph.ids[producer_type]
    sim = _similarity_matrix(similarity, ids)
    kf_cfg = cfg.knownfor
    result = knownfor(
        sim,
        kf_cfg.k,
        epochs=kf_cfg.epochs,
        penalty=kf_cfg.penalty,
        inverse_temperature=kf_cfg.inverse_temperature,
        p_random=kf_cfg.p_random,
        init=kf_cfg.init,
        null_model=kf_cfg.null_model,
        tolerance=kf_cfg.tolerance,
        restarts=kf_cfg.restarts,
        seed=kf_cfg.seed,
    )
    sizes = np.bincount(result.labels[result.labels >= 0], minlength=kf_cfg.k)
    report: dict[str, Any] = {
        "metropolis_hastings": {
            "seconds": result.history["seconds"][0],
            "epochs": len(result.history["objective"]),
            "restart_objectives": result.history["restart_objectives"],
            "objective": result.history["objective"],
            "moved": result.history["moved"],
            "modularity": modularity(sim, result.labels),
            "assigned_fraction": float((result.labels >= 0).mean()),
            "community_sizes": sizes.tolist(),
            "empty_communities": int((sizes == 0).sum()),
        }
    }
    mode = str(kf_cfg.compare_leiden).lower()
    if mode == "auto" and importlib.util.find_spec("leidenalg") is None:
        logger.info("Leiden peer skipped: leidenalg not installed (bench extra)")
        report["leiden"] = {"skipped": "leidenalg not installed (bench extra)"}
    elif mode in ("auto", "true"):
        report["leiden"] = _leiden_report(sim, result.labels, cfg)
        logger.info(
            "KnownFor MH modularity %.4f in %.2f s; Leiden %.4f in %.2f s",
            report["metropolis_hastings"]["modularity"],
            report["metropolis_hastings"]["seconds"],
            report["leiden"]["modularity"],
            report["leiden"]["seconds"],
        )
    keep = result.labels >= 0
    frame = pd.DataFrame(
        {
            "id": np.asarray(ids)[keep],
            "community": result.labels[keep],
            "score": result.scores[keep],
        }
    )
    return frame, report


def build_interested_in(
    knownfor_table: pd.DataFrame, graph: GraphArtifact, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """InterestedIn ``U = A · V`` (local or dask mode).

    Returns:
        ``simclusters_interested_in`` (``id, community, score``), the dense
        ``simclusters_user_embeddings`` (``id, e0 … e{k-1}``: InterestedIn rows,
        for the shared u2u2i evaluation), ``simclusters.user_clusters`` (top
        community; ``-1`` for users with none) and a summary.
    """
    cfg = SimClustersConfig.parse(params)
    follow, producer_type = _follow(graph, cfg)
    k = cfg.knownfor.k
    v = frame_to_sparse(knownfor_table, graph.ids[producer_type], k, name="knownfor")
    ii = cfg.interested_in
    start = time.perf_counter()
    client = start_client(ii.dask) if ii.mode == "dask" else None
    try:
        u = interested_in(
            follow,
            v,
            top_m=ii.top_m,
            min_score=ii.min_score,
            norm=ii.norm,
            block_rows=ii.block_rows,
            client=client,
        )
    finally:
        if client is not None:
            stop_client(client)
    seconds = time.perf_counter() - start
    user_ids = graph.ids[graph.schema.user_type]
    labels = top_community(u)
    clusters = pd.DataFrame(
        {"id": np.asarray(user_ids), "cluster": labels.astype(np.int32)}
    )
    summary = {
        "interested_in_seconds": seconds,
        "interested_in_mode": ii.mode,
        "users_without_community": int((labels < 0).sum()),
        "communities_per_user": float(u.nnz / max(u.shape[0], 1)),
    }
    dense = u.toarray()  # users x k (k communities, small), never users x items
    return (
        sparse_to_frame(u, user_ids),
        to_frame(user_ids, dense),
        clusters,
        summary,
    )


def build_embeddings(
    *,
    interested_table: pd.DataFrame,
    graph: GraphArtifact,
    params: dict[str, Any],
    similarity_summary: dict[str, Any],
    knownfor_report: dict[str, Any],
    interested_summary: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Producer and item embeddings, and the method's training summary
    (``simclusters_training``: seconds of every step, peak memory)."""
    cfg = SimClustersConfig.parse(params)
    follow, _ = _follow(graph, cfg)
    k = cfg.knownfor.k
    schema = graph.schema
    user_ids = graph.ids[schema.user_type]
    u = frame_to_sparse(interested_table, user_ids, k, name="interested_in")
    start = time.perf_counter()
    prod = producer_embeddings(follow, u, top_m=cfg.embeddings.producer_top_m)
    engaged = engagement_matrix(
        graph.csr, [schema.edge_type(r) for r in cfg.engagement_relations]
    )
    items = item_embeddings(
        engaged,
        u,
        top_m=cfg.embeddings.item_top_m,
        min_score=cfg.embeddings.item_min_score,
    )
    seconds = time.perf_counter() - start
    producer_type = similarity_summary["producer_type"]
    mh = knownfor_report["metropolis_hastings"]
    steps = {
        "similarity_seconds": similarity_summary["similarity_seconds"],
        "knownfor_seconds": mh["seconds"],
        "interested_in_seconds": interested_summary["interested_in_seconds"],
        "embeddings_seconds": seconds,
    }
    summary = {
        "method": "simclusters",
        "embedding_dim": k,
        "train_seconds": float(sum(steps.values())),
        "peak_memory_mb": peak_rss_mb(),
        **steps,
        **{k_: v for k_, v in similarity_summary.items() if k_ not in steps},
        **{k_: v for k_, v in interested_summary.items() if k_ not in steps},
        "knownfor_modularity": mh["modularity"],
        "knownfor_epochs": mh["epochs"],
        "item_embedding_nnz": int(items.nnz),
        "params": cfg.model_dump(mode="json"),
    }
    return (
        sparse_to_frame(prod, graph.ids[producer_type]),
        sparse_to_frame(items, graph.ids[schema.item_type]),
        summary,
    )
