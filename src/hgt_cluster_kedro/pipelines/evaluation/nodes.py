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
    graph: GraphArtifact, ground_truth: pd.DataFrame | None, params: dict
) -> Any:
    cfg = params.get("ground_truth")
    if not cfg or ground_truth is None:
        return None
    id_col, label_col = cfg["id_column"], cfg["label_column"]
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
    emb: np.ndarray, truth: np.ndarray, known: np.ndarray, params: dict[str, Any]
) -> dict[str, float]:
    cfg = params.get("label_protocol")
    if not cfg:
        return {}
    kwargs = {
        "k": cfg.get("k"),
        "seeds": int(cfg.get("seeds", 10)),
        "n_init": int(cfg.get("n_init", 10)),
        "normalize": bool(cfg.get("normalize", True)),
        "seed": int(cfg.get("seed", 0)),
    }
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
        cfg.get("seeds", 10),
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
    params: dict[str, Any],
) -> dict[str, Any]:
    """u2u2i recall (plain and cluster-boosted) and cluster quality of one method."""
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
        _test_pairs(interactions, params["split"]),
        n_items,
        ks=tuple(params["ks"]),
        m_neighbors=int(params["m_neighbors"]),
        cluster_labels=labels,
        cluster_boost=float(params["cluster_boost"]),
        metric=params.get("metric", "cosine"),
        backend=params.get("backend", "auto"),
        faiss_threshold=int(params.get("faiss_threshold", 200_000)),
        seed=int(params.get("seed", 0)),
    )
    truth = _truth(graph, ground_truth, params)
    known = truth >= 0 if truth is not None else None
    quality = cluster_quality(
        labels if truth is None else labels[known],
        None if truth is None else truth[known],
        emb if truth is None else emb[known],
        silhouette_sample=int(params.get("silhouette_sample", 10_000)),
        seed=int(params.get("seed", 0)),
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


def evaluate_candidates(
    *,
    candidates: pd.DataFrame,
    interactions: pd.DataFrame,
    graph: GraphArtifact,
    training: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Recall / NDCG / HitRate@K of a method's own per-user lists (``user``,
    ``item``, ``rank``; contiguous ids), on the same query users as u2u2i: every
    user with a held-out item; a user without a list counts as a miss."""
    if training.get("disabled"):  # the channel is off for this dataset
        return {"disabled": True}
    missing = [c for c in ("user", "item", "rank") if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates: missing column(s) {missing}")
    test_u, test_i = _test_pairs(interactions, params["split"])
    n_users = graph.num_nodes[graph.schema.user_type]
    n_items = graph.num_nodes[graph.schema.item_type]
    ks = tuple(params["ks"])
    query = np.unique(test_u)
    row = np.full(n_users, -1, np.int64)
    row[query] = np.arange(len(query))
    recs = np.full((len(query), max(ks)), -1, np.int64)
    r = row[candidates["user"].to_numpy(np.int64)]
    rank = candidates["rank"].to_numpy(np.int64)
    ok = (r >= 0) & (rank < max(ks))
    recs[r[ok], rank[ok]] = candidates["item"].to_numpy(np.int64)[ok]
    relevant = relevant_csr(test_u, test_i, n_users, n_items)[query]
    record = {
        **ranking_metrics(recs, relevant, ks),
        "coverage": float((recs[:, 0] >= 0).mean()),
        "train_seconds": float(training.get("train_seconds", float("nan"))),
        "peak_memory_mb": float(training.get("peak_memory_mb", float("nan"))),
    }
    logger.info(
        "Candidates: Recall@%d %.4f, coverage %.3f",
        max(ks),
        record.get(f"recall@{max(ks)}", float("nan")),
        record["coverage"],
    )
    return record


def evaluate_baselines(
    interactions: pd.DataFrame, graph: GraphArtifact, params: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Popularity and random recommenders scored like every method."""
    train_u, train_i = _pairs(interactions, "train")
    test_u, test_i = _test_pairs(interactions, params["split"])
    n_users = graph.num_nodes[graph.schema.user_type]
    n_items = graph.num_nodes[graph.schema.item_type]
    query = np.unique(test_u)
    ks = tuple(params["ks"])
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
                seed=int(params.get("seed", 0)),
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
    # a channel switched off for this dataset (``{"disabled": True}``) has no row
    records = [
        {"method": name, **metrics}
        for name, metrics in methods.items()
        if not metrics.get("disabled")
    ]
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
