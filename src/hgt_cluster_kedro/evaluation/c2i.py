"""Cluster → top-items (``c2i``) recall channel, for any user clustering.

The natural use of a community in retrieval (SimClusters' cluster → top-tweets
index, Satuluri et al., KDD 2020, §4): recommend what the user's cluster
engages with. Each cluster's score of an item is its share of the cluster's
train engagements, optionally blended with global popularity,

    score_c(i) = (1 − w) · n_c(i) / Σ_j n_c(j) + w · n(i) / Σ_j n(j),

ties broken by global popularity then item id; a user's own train items are
excluded. The blend weight ``w`` is chosen on the validation split (the best
Recall@K over a grid) and the channel is then scored on the test split like
every other method, so a clustering is judged by the recall it buys.

Sparse throughout: the cluster × item counts are one sparse product; one
cluster's scores (a vector over items) are dense at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from .metrics import interactions_csr, ranking_metrics, relevant_csr
from .retrieval import Recommendations, _blocks, _first_k_allowed, _in_train

logger = logging.getLogger(__name__)


def _codes(labels: np.ndarray, n_users: int) -> tuple[np.ndarray, int]:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size != n_users:
        raise ValueError(
            f"cluster labels must be 1-D with one entry per user ({n_users}), got "
            f"shape {labels.shape}"
        )
    _, codes = np.unique(labels, return_inverse=True)
    return codes.astype(np.int64), int(codes.max(initial=-1)) + 1


def cluster_item_counts(
    train: sp.csr_matrix, labels: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray]:
    """``([n_clusters, n_items] train engagement counts, cluster code per user)``;
    every distinct label (``-1`` included) is one cluster."""
    codes, n_clusters = _codes(labels, train.shape[0])
    onehot = sp.csr_matrix(
        (np.ones(codes.size, np.float32), (codes, np.arange(codes.size))),
        shape=(n_clusters, codes.size),
    )
    return (onehot @ sp.csr_matrix(train, dtype=np.float32)).tocsr(), codes


def c2i_recommend(
    train: sp.csr_matrix,
    labels: np.ndarray,
    query_users: np.ndarray,
    k: int,
    *,
    blend: float = 0.0,
    exclude_train: bool = True,
    chunk_size: int = 4096,
) -> Recommendations:
    """Top ``k`` items of each query user's cluster (see the module docstring).

    Args:
        train: ``[n_users, n_items]`` binary train interactions.
        labels: cluster of every user (any integers; ``-1`` is a cluster too).
        query_users: users to recommend for.
        k: items per user.
        blend: weight ``w`` of global popularity, in ``[0, 1]``.
        exclude_train: skip the user's own train items.
        chunk_size: users of one cluster per block.

    Returns:
        :class:`~hgt_cluster_kedro.evaluation.retrieval.Recommendations`.
    """
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f"c2i.blend must be in [0, 1], got {blend}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    train = sp.csr_matrix(train)
    train.sort_indices()
    counts, codes = cluster_item_counts(train, labels)
    n_items = train.shape[1]
    pop = np.diff(train.tocsc().indptr).astype(np.float64)
    pop_share = pop / max(pop.sum(), 1.0)
    q = np.asarray(query_users, dtype=np.int64)
    own_len = np.diff(train.indptr)
    items = np.full((q.size, k), -1, dtype=np.int64)
    scores = np.full((q.size, k), -np.inf, dtype=np.float32)
    q_codes = codes[q]
    for c in np.unique(q_codes):
        row = counts.getrow(int(c))
        share = np.zeros(n_items)
        share[row.indices] = row.data / max(row.data.sum(), 1.0)
        score = (1.0 - blend) * share + blend * pop_share
        members = np.flatnonzero(q_codes == c)
        extra = int(own_len[q[members]].max(initial=0)) if exclude_train else 0
        width = min(n_items, k + extra)
        part = np.argpartition(-score, width - 1)[:width] if width < n_items else None
        cand_pool = np.arange(n_items) if part is None else part
        order = np.lexsort((cand_pool, -pop[cand_pool], -score[cand_pool]))
        ranked = cand_pool[order]
        own_q = own_len[q[members]] if exclude_train else None
        for rows in _blocks(members, own_q, chunk_size):
            # a row's first k allowed items lie in its first k + |own| ranks
            span = k + (int(own_len[q[rows]].max(initial=0)) if exclude_train else 0)
            cand = np.broadcast_to(ranked[:span], (rows.size, min(span, ranked.size)))
            banned = (
                _in_train(train, q[rows], cand)
                if exclude_train
                else np.zeros(cand.shape, bool)
            )
            it, _ = _first_k_allowed(cand, banned, k)
            items[rows] = it
            scores[rows] = np.where(it >= 0, score[np.maximum(it, 0)], -np.inf).astype(
                np.float32
            )
    return Recommendations(items, scores)


def choose_blend(
    train: sp.csr_matrix,
    labels: np.ndarray,
    valid: tuple[np.ndarray, np.ndarray],
    grid: Sequence[float],
    *,
    k: int = 50,
) -> tuple[float, dict[str, float]]:
    """The blend weight of ``grid`` with the best validation Recall@``k``
    (ties: the smaller weight), and the recall of each weight."""
    if not grid:
        raise ValueError("c2i.blend_grid must list at least one weight")
    bad = [w for w in grid if not 0.0 <= float(w) <= 1.0]
    if bad:
        raise ValueError(f"c2i.blend_grid weights must be in [0, 1], got {bad}")
    vu, vi = (np.asarray(a, dtype=np.int64) for a in valid)
    if vu.size == 0:
        raise ValueError("c2i: the validation split is empty; cannot choose blend")
    query = np.unique(vu)
    relevant = relevant_csr(vu, vi, train.shape[0], train.shape[1])[query]
    recall = {}
    for w in grid:
        recs = c2i_recommend(train, labels, query, k, blend=float(w))
        recall[f"{float(w):g}"] = ranking_metrics(recs.items, relevant, (k,))[
            f"recall@{k}"
        ]
    best = max(recall, key=lambda w: (recall[w], -float(w)))
    return float(best), recall


def evaluate_c2i(
    labels: np.ndarray,
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray] | None,
    test: tuple[np.ndarray, np.ndarray],
    *,
    n_users: int,
    n_items: int,
    ks: Sequence[int] = (10, 50, 100),
    blend_grid: Sequence[float] = (0.0,),
    select_k: int = 50,
) -> dict[str, float]:
    """Ranking metrics of the c2i channel on ``test`` with the blend chosen on
    ``valid`` (the first grid weight when ``valid`` is ``None``)."""
    train_m = interactions_csr(*train, n_users, n_items)
    grid = [float(w) for w in blend_grid]
    if valid is not None and len(grid) > 1:
        blend, valid_recall = choose_blend(train_m, labels, valid, grid, k=select_k)
    else:
        blend, valid_recall = grid[0], {}
    tu, ti = (np.asarray(a, dtype=np.int64) for a in test)
    query = np.unique(tu)
    relevant = relevant_csr(tu, ti, n_users, n_items)[query]
    recs = c2i_recommend(train_m, labels, query, max(ks), blend=blend)
    out = ranking_metrics(recs.items, relevant, tuple(ks))
    out["c2i_blend"] = blend
    out["n_clusters"] = float(np.unique(labels).size)
    for w, r in valid_recall.items():
        out[f"valid_recall@{select_k}_blend_{w}"] = r
    logger.info(
        "c2i: blend %.2f (valid %s), test Recall@%d %.4f",
        blend,
        {w: round(r, 4) for w, r in valid_recall.items()},
        select_k,
        out.get(f"recall@{select_k}", float("nan")),
    )
    return out
