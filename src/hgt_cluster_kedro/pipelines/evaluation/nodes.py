"""Nodes of ``evaluation``: thin wrappers over :mod:`hgt_cluster_kedro.evaluation`.

Every method is scored by the same node on the same split; baselines
(popularity, random) go through the same ranking metrics.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hgt_cluster_kedro.config import EvaluationParams
from hgt_cluster_kedro.embeddings import from_frame
from hgt_cluster_kedro.evaluation import (
    cluster_quality,
    evaluate_u2u2i,
    popularity_recommend,
    random_recommend,
    ranking_metrics,
    relevant_csr,
)
from hgt_cluster_kedro.evaluation.clusters import label_protocol
from hgt_cluster_kedro.graph import GraphArtifact
from hgt_cluster_kedro.reporting.history import format_value

logger = logging.getLogger(__name__)

#: columns of the printed comparison table, in order
TABLE_METRICS = (
    "nmi",
    "ari",
    "recall@10",
    "recall@50",
    "ndcg@50",
    "hitrate@50",
    "recall@100",
    "recall@50_boost_delta",
    "ndcg@50_boost_delta",
    "train_seconds",
)


def _pairs(interactions: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
    part = interactions[interactions["split"] == split]
    return part["user"].to_numpy(np.int64), part["item"].to_numpy(np.int64)


def _test_pairs(
    interactions: pd.DataFrame, split: str
) -> tuple[np.ndarray, np.ndarray]:
    test = _pairs(interactions, split)
    if len(test[0]) == 0:
        raise ValueError(
            f"evaluation.split={split!r}: the interactions table has no {split} "
            "pairs (too few users with min_history interactions?)"
        )
    return test


def _truth(
    graph: GraphArtifact, ground_truth: pd.DataFrame | None, params: EvaluationParams
) -> Any:
    cfg = params.ground_truth
    if cfg is None or ground_truth is None:
        return None
    id_col, label_col = cfg.id_column, cfg.label_column
    missing = [c for c in (id_col, label_col) if c not in ground_truth.columns]
    if missing:
        raise ValueError(
            f"ground truth: columns {missing} not found (evaluation.ground_truth); "
            f"present: {list(ground_truth.columns)}"
        )
    index = pd.Index(ground_truth[id_col]).get_indexer(
        graph.ids[graph.schema.user_type]
    )
    labels = np.full(len(index), -1, dtype=np.int64)
    known = index >= 0
    labels[known] = ground_truth[label_col].to_numpy()[index[known]]
    if not known.any():
        logger.warning(
            "ground truth: none of the %d users has a label; NMI / ARI skipped",
            len(labels),
        )
        return None
    return labels


#: label-protocol results by (embeddings, labels, settings): methods sharing
#: embeddings (``twhin_kmeans``, ``twhin_som``) run the seeded KMeans once
_PROTOCOL_MEMO: dict[str, dict[str, float]] = {}
_PROTOCOL_MEMO_SIZE = 32


def _protocol(
    emb: np.ndarray, truth: np.ndarray, known: np.ndarray, params: EvaluationParams
) -> dict[str, float]:
    cfg = params.label_protocol
    if cfg is None:
        return {}
    kwargs = cfg.model_dump()
    x, y = np.ascontiguousarray(emb[known]), np.ascontiguousarray(truth[known])
    digest = hashlib.sha256(x.tobytes())
    digest.update(y.tobytes())
    digest.update(repr((x.shape, sorted(kwargs.items()))).encode())
    key = digest.hexdigest()
    if key in _PROTOCOL_MEMO:
        return dict(_PROTOCOL_MEMO[key])
    start = time.perf_counter()
    out = label_protocol(x, y, **kwargs)
    if len(_PROTOCOL_MEMO) >= _PROTOCOL_MEMO_SIZE:
        _PROTOCOL_MEMO.clear()
    _PROTOCOL_MEMO[key] = dict(out)
    logger.info(
        "Label protocol (KMeans x %s seeds) in %.1f s: %s",
        cfg.seeds,
        time.perf_counter() - start,
        {k: round(v, 4) for k, v in out.items()},
    )
    return out


def evaluate_method(
    *,
    user_embeddings: pd.DataFrame,
    user_clusters: pd.DataFrame,
    interactions: pd.DataFrame,
    graph: GraphArtifact,
    ground_truth: pd.DataFrame,
    training: dict[str, Any],
    params: EvaluationParams,
) -> dict[str, Any]:
    """u2u2i recall (plain and cluster-boosted) and cluster quality of one method."""
    params = EvaluationParams.model_validate(params)
    user_ids = graph.ids[graph.schema.user_type]
    emb = from_frame(
        user_embeddings,
        user_ids,
        dim=training.get("embedding_dim"),
        name="user_embeddings",
    )
    clusters = user_clusters.set_index("id")["cluster"]
    missing = ~user_ids.isin(clusters.index)
    if missing.any():
        raise ValueError(
            f"user_clusters: {int(missing.sum())} users have no cluster, e.g. "
            f"{list(user_ids[missing][:5])}"
        )
    labels = clusters.reindex(user_ids).to_numpy(np.int64)
    n_items = graph.num_nodes[graph.schema.item_type]
    result = evaluate_u2u2i(
        emb,
        _pairs(interactions, "train"),
        _test_pairs(interactions, params.split),
        n_items,
        ks=tuple(params.ks),
        m_neighbors=params.m_neighbors,
        cluster_labels=labels,
        cluster_boost=params.cluster_boost,
        metric=params.metric,
        backend=params.backend,
        faiss_threshold=params.faiss_threshold,
        seed=params.seed,
    )
    truth = _truth(graph, ground_truth, params)
    known = truth >= 0 if truth is not None else None
    quality = cluster_quality(
        labels if truth is None else labels[known],
        None if truth is None else truth[known],
        emb if truth is None else emb[known],
        silhouette_sample=params.silhouette_sample,
        seed=params.seed,
    )
    protocol = {} if truth is None else _protocol(emb, truth, known, params)
    record = {
        **quality,
        **protocol,
        **result,
        "train_seconds": float(training.get("train_seconds", float("nan"))),
        "peak_memory_mb": float(training.get("peak_memory_mb", float("nan"))),
    }
    logger.info(
        "Recall@50 %.4f, NDCG@50 %.4f, NMI %s",
        record.get("recall@50", float("nan")),
        record.get("ndcg@50", float("nan")),
        record.get("nmi"),
    )
    return record


def evaluate_baselines(
    interactions: pd.DataFrame, graph: GraphArtifact, params: EvaluationParams
) -> dict[str, dict[str, Any]]:
    """Popularity and random recommenders scored like every method."""
    params = EvaluationParams.model_validate(params)
    train_u, train_i = _pairs(interactions, "train")
    test_u, test_i = _test_pairs(interactions, params.split)
    n_users = graph.num_nodes[graph.schema.user_type]
    n_items = graph.num_nodes[graph.schema.item_type]
    query = np.unique(test_u)
    ks = tuple(params.ks)
    relevant = relevant_csr(test_u, test_i, n_users, n_items)[query]
    out = {}
    for name, recs in (
        (
            "popularity",
            popularity_recommend(
                train_u, train_i, n_items, query, max(ks), n_users=n_users
            ),
        ),
        (
            "random",
            random_recommend(
                train_u,
                train_i,
                n_items,
                query,
                max(ks),
                seed=params.seed,
                n_users=n_users,
            ),
        ),
    ):
        out[name] = ranking_metrics(recs.items, relevant, ks)
    return out


_PROTOCOL_KEY = re.compile(r"^(nmi|ari)_k(\d+)_mean$")


def _protocol_columns(records: list[dict[str, Any]]) -> list[str]:
    """``nmi_k4`` / ``ari_k4`` … for every label-protocol result in ``records``."""
    found = {
        key[: -len("_mean")] for r in records for key in r if _PROTOCOL_KEY.match(key)
    }
    return sorted(found, key=lambda c: (int(c.split("_k")[1]), c.startswith("ari")))


def _cell(record: dict[str, Any], metric: str, protocol: list[str]) -> str:
    if metric in protocol:
        mean, std = record.get(f"{metric}_mean"), record.get(f"{metric}_std")
        if mean is None:
            return "–"
        return f"{mean:.4f} ± {std:.4f}"
    return format_value(record.get(metric))


def compare(
    baselines: dict[str, dict[str, Any]], **methods: dict[str, Any]
) -> tuple[list[dict[str, Any]], str, Figure]:
    """One record per method (and baseline), a markdown table and a bar plot.

    The table has ``TABLE_METRICS``, with the label-protocol columns (``nmi_k4``
    …: mean ± std over the KMeans seeds) after ``nmi`` / ``ari`` when any
    method has them.
    """
    records = [{"method": name, **metrics} for name, metrics in methods.items()]
    records += [{"method": name, **metrics} for name, metrics in baselines.items()]
    protocol = _protocol_columns(records)
    columns = [*TABLE_METRICS[:2], *protocol, *TABLE_METRICS[2:]]
    header = "| method | " + " | ".join(columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    rows = [
        f"| {r['method']} | "
        + " | ".join(_cell(r, m, protocol) for m in columns)
        + " |"
        for r in records
    ]
    table = "\n".join([header, rule, *rows]) + "\n"
    logger.info("Method comparison:\n%s", table)
    fig = Figure(figsize=(9, 3.5))
    axes = fig.subplots(1, 3)
    names = [r["method"] for r in records]
    for ax, metric in zip(axes, ("recall@50", "ndcg@50", "nmi"), strict=True):
        values = [float(r.get(metric) or 0.0) for r in records]
        ax.barh(names, values, color="tab:blue")
        ax.set_title(metric)
        ax.invert_yaxis()
    fig.tight_layout()
    return records, table, fig


# ------------------------------------------------- recall channels (issue #14)


def _clusters_of(user_clusters: pd.DataFrame, graph: GraphArtifact) -> np.ndarray:
    user_ids = graph.ids[graph.schema.user_type]
    clusters = user_clusters.set_index("id")["cluster"]
    missing = ~user_ids.isin(clusters.index)
    if missing.any():
        raise ValueError(
            f"user_clusters: {int(missing.sum())} users have no cluster, e.g. "
            f"{list(user_ids[missing][:5])}"
        )
    return clusters.reindex(user_ids).to_numpy(np.int64)


def evaluate_c2i_channel(
    user_clusters: pd.DataFrame,
    interactions: pd.DataFrame,
    graph: GraphArtifact,
    params: dict[str, Any],
    c2i_params: dict[str, Any],
) -> dict[str, Any]:
    """The cluster → top-items channel of one method's clusters (row
    ``<method>_c2i``): blend chosen on the validation split, scored on
    ``evaluation.split``."""
    from hgt_cluster_kedro.evaluation.c2i import evaluate_c2i

    labels = _clusters_of(user_clusters, graph)
    valid = _pairs(interactions, "valid")
    start = time.perf_counter()
    record = evaluate_c2i(
        labels,
        _pairs(interactions, "train"),
        valid if len(valid[0]) else None,
        _test_pairs(interactions, params["split"]),
        n_users=graph.num_nodes[graph.schema.user_type],
        n_items=graph.num_nodes[graph.schema.item_type],
        ks=tuple(params["ks"]),
        blend_grid=[float(w) for w in c2i_params["blend_grid"]],
        select_k=int(c2i_params["select_k"]),
    )
    record["eval_seconds"] = time.perf_counter() - start
    return record


def evaluate_simclusters_u2i(
    *,
    interested_in: pd.DataFrame,
    item_embeddings: pd.DataFrame,
    interactions: pd.DataFrame,
    graph: GraphArtifact,
    params: dict[str, Any],
    u2i_params: dict[str, Any],
) -> dict[str, Any]:
    """SimClusters u2i (row ``simclusters_u2i``): InterestedIn · item
    embeddings through the cluster → top-items index, own train items
    excluded."""
    from hgt_cluster_kedro.evaluation import relevant_csr
    from hgt_cluster_kedro.evaluation.metrics import interactions_csr
    from hgt_cluster_kedro.pipelines.simclusters.nodes import frame_to_sparse
    from hgt_cluster_kedro.simclusters import u2i_recommend

    schema = graph.schema
    n_users = graph.num_nodes[schema.user_type]
    n_items = graph.num_nodes[schema.item_type]
    k = (
        int(max(interested_in["community"].max(), item_embeddings["community"].max()))
        + 1
    )
    u = frame_to_sparse(
        interested_in, graph.ids[schema.user_type], k, name="interested_in"
    )
    items = frame_to_sparse(
        item_embeddings, graph.ids[schema.item_type], k, name="item_embeddings"
    )
    train = interactions_csr(*_pairs(interactions, "train"), n_users, n_items)
    test_u, test_i = _test_pairs(interactions, params["split"])
    query = np.unique(test_u)
    ks = tuple(params["ks"])
    start = time.perf_counter()
    recs, _ = u2i_recommend(
        u,
        items,
        train,
        query,
        max(ks),
        items_per_cluster=int(u2i_params["items_per_cluster"]),
        block_rows=int(u2i_params.get("block_rows", 4096)),
    )
    seconds = time.perf_counter() - start
    record = ranking_metrics(
        recs, relevant_csr(test_u, test_i, n_users, n_items)[query], ks
    )
    record["eval_seconds"] = seconds
    record["coverage@max_k"] = float((recs >= 0).mean())
    logger.info(
        "SimClusters u2i: Recall@50 %.4f", record.get("recall@50", float("nan"))
    )
    return record
