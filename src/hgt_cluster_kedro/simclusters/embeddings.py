"""Producer and item embeddings of SimClusters, and its u2i retrieval
(Satuluri et al., KDD 2020, §3.4–§4).

* Producer embedding ``Ṽ[p, c]``: cosine of producer ``p``'s consumer vector
  (column of ``A``) with community ``c``'s InterestedIn column (``U[:, c]``), top
  ``m`` kept — a producer can be known in several communities, unlike KnownFor.
* Item embedding: the sum of the InterestedIn vectors of the item's engagers
  (``Eᵀ U`` with ``E`` the users × items engagement matrix), top ``m`` kept.
* Retrieval (SimClusters ANN): a cluster → top-items index (the
  ``items_per_cluster`` items with the largest entry for each community); a
  user's candidates are the items of its InterestedIn communities, scored by the
  dot product restricted to the index, own train items excluded. Everything is a
  sparse product; no users × items matrix is ever dense.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .similarity import top_n_per_row


def _col_norms(mat: sp.spmatrix) -> np.ndarray:
    mat = sp.csc_matrix(mat)
    return np.sqrt(np.asarray(mat.multiply(mat).sum(axis=0)).ravel())


def _scale(vec: np.ndarray) -> sp.dia_matrix:
    inv = np.divide(1.0, vec, out=np.zeros_like(vec, dtype=np.float64), where=vec > 0)
    return sp.diags(inv.astype(np.float32))


def producer_embeddings(
    follow: sp.csr_matrix, interested: sp.csr_matrix, *, top_m: int = 10
) -> sp.csr_matrix:
    """``[n_producers, k]`` cosine of each producer's consumers with each
    community's InterestedIn column, ``top_m`` per producer."""
    if follow.shape[0] != interested.shape[0]:
        raise ValueError(
            f"follow matrix has {follow.shape[0]} consumers but InterestedIn has "
            f"{interested.shape[0]}"
        )
    a = sp.csr_matrix(follow, dtype=np.float32)
    u = sp.csr_matrix(interested, dtype=np.float32)
    prod = (a.T.tocsr() @ u).tocsr()
    prod = (_scale(_col_norms(a)) @ prod @ _scale(_col_norms(u))).tocsr()
    out = top_n_per_row(prod, top_m)
    out.sort_indices()
    return out.astype(np.float32)


def item_embeddings(
    engagements: sp.csr_matrix,
    interested: sp.csr_matrix,
    *,
    top_m: int = 10,
    min_score: float = 0.0,
) -> sp.csr_matrix:
    """``[n_items, k]`` sums of the engagers' InterestedIn; per item the
    ``top_m`` largest entries whose share of the item's L2 norm is at least
    ``min_score`` are kept (values stay the raw sums)."""
    if engagements.shape[0] != interested.shape[0]:
        raise ValueError(
            f"engagement matrix has {engagements.shape[0]} users but InterestedIn "
            f"has {interested.shape[0]}"
        )
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(
            f"simclusters.embeddings.item_min_score must be in [0, 1], got {min_score}"
        )
    e = sp.csr_matrix(engagements, dtype=np.float32)
    emb = (e.T.tocsr() @ sp.csr_matrix(interested, dtype=np.float32)).tocsr()
    if min_score > 0.0:
        norms = np.sqrt(np.asarray(emb.multiply(emb).sum(axis=1)).ravel())
        rows = np.repeat(np.arange(emb.shape[0]), np.diff(emb.indptr))
        emb.data[emb.data < min_score * norms[rows]] = 0.0
        emb.eliminate_zeros()
    out = top_n_per_row(emb, top_m)
    out.sort_indices()
    return out.astype(np.float32)


def cluster_index(item_emb: sp.csr_matrix, items_per_cluster: int) -> sp.csr_matrix:
    """``[k, n_items]`` cluster → top-items index of the item embeddings."""
    return top_n_per_row(sp.csr_matrix(item_emb).T.tocsr(), items_per_cluster)


def topk_of_rows(mat: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` largest stored entries as ``(items, scores)`` arrays
    (``-1`` / ``-inf`` padding), best first, ties by smaller column."""
    mat = top_n_per_row(sp.csr_matrix(mat), k)
    counts = np.diff(mat.indptr)
    rows = np.repeat(np.arange(mat.shape[0], dtype=np.int64), counts)
    order = np.lexsort((mat.indices, -mat.data, rows))
    rank = np.arange(order.size) - np.repeat(mat.indptr[:-1], counts)
    items = np.full((mat.shape[0], k), -1, dtype=np.int64)
    scores = np.full((mat.shape[0], k), -np.inf, dtype=np.float32)
    items[rows[order], rank] = mat.indices[order]
    scores[rows[order], rank] = mat.data[order]
    return items, scores


def u2i_recommend(
    interested: sp.csr_matrix,
    item_emb: sp.csr_matrix,
    train: sp.csr_matrix,
    query_users: np.ndarray,
    k: int,
    *,
    items_per_cluster: int = 500,
    block_rows: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """SimClusters ANN retrieval: top ``k`` items per query user.

    Args:
        interested: ``[n_users, k_c]`` InterestedIn.
        item_emb: ``[n_items, k_c]`` item embeddings.
        train: ``[n_users, n_items]`` train interactions (excluded).
        query_users: users to recommend for.
        k: items per user.
        items_per_cluster: size of each community's item list in the index.
        block_rows: query users per sparse product.

    Returns:
        ``(items, scores)``: ``int64`` / ``float32 [n_query, k]``, ``-1`` padded.
    """
    if items_per_cluster < 1 or k < 1:
        raise ValueError(
            f"items_per_cluster and k must be >= 1, got {items_per_cluster}, {k}"
        )
    index = cluster_index(item_emb, items_per_cluster).astype(np.float32)
    u = sp.csr_matrix(interested, dtype=np.float32)
    train = sp.csr_matrix(train, dtype=np.float32)
    q = np.asarray(query_users, dtype=np.int64)
    items = np.full((q.size, k), -1, dtype=np.int64)
    scores = np.full((q.size, k), -np.inf, dtype=np.float32)
    for start in range(0, q.size, block_rows):
        qq = q[start : start + block_rows]
        s = (u[qq] @ index).tocsr()
        own = train[qq]
        own.data[:] = 1.0
        s = (s - s.multiply(own)).tocsr()
        s.eliminate_zeros()
        it, sc = topk_of_rows(s, k)
        items[start : start + qq.size], scores[start : start + qq.size] = it, sc
    return items, scores
