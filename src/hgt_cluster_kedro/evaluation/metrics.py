"""Top-K ranking metrics over held-out interactions, vectorised.

Definitions, for a query user ``u`` with held-out (relevant) items ``T_u`` and a
ranked list ``r_1, r_2, ...`` (``-1`` = padding, never a hit; an item repeated in
the list counts at its first position only):

* ``recall@k    = |{r_1..r_k} & T_u| / |T_u|`` (the standard definition: a user
  with more than ``k`` relevant items cannot reach 1),
* ``precision@k = |{r_1..r_k} & T_u| / k``,
* ``hitrate@k   = 1 if {r_1..r_k} & T_u else 0``,
* ``ndcg@k      = DCG@k / IDCG@k`` with binary relevance, ``DCG@k = sum_{i <= k,
  r_i in T_u} 1 / log2(i + 1)`` and ``IDCG@k`` the DCG of ``min(k, |T_u|)`` hits
  at the top.

Each metric is the mean over the query users with at least one relevant item.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

DEFAULT_KS = (10, 50, 100)


def _as_ids(a: np.ndarray | Sequence[int], name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def check_id_range(ids: np.ndarray, n: int, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if an id lies outside ``[0, n)``."""
    if ids.size == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= n:
        bad = ids[(ids < 0) | (ids >= n)]
        raise ValueError(
            f"{name} has {bad.size} ids outside [0, {n}), e.g. {bad[:5].tolist()}"
        )


def interactions_csr(
    user: np.ndarray | Sequence[int],
    item: np.ndarray | Sequence[int],
    n_users: int,
    n_items: int,
    *,
    dtype: np.dtype | type = np.float32,
) -> sp.csr_matrix:
    """Binary user x item CSR matrix of ``(user, item)`` pairs.

    Duplicated pairs count once; column indices are sorted within each row.

    Args:
        user: user id of every pair (contiguous ids in ``[0, n_users)``).
        item: item id of every pair (in ``[0, n_items)``).
        n_users: number of rows.
        n_items: number of columns.
        dtype: value type (default ``float32``; every stored value is 1).

    Returns:
        ``scipy.sparse.csr_matrix`` of shape ``(n_users, n_items)``.

    Raises:
        ValueError: ``user`` and ``item`` differ in length, or ids out of range.
    """
    u = _as_ids(user, "user")
    i = _as_ids(item, "item")
    if u.shape != i.shape:
        raise ValueError(f"user and item differ in length: {u.size} != {i.size}")
    if n_users < 0 or n_items < 0:
        raise ValueError(f"n_users and n_items must be >= 0, got {n_users}, {n_items}")
    check_id_range(u, n_users, "user")
    check_id_range(i, n_items, "item")
    keys = np.unique(u * np.int64(n_items) + i)  # sorted, deduplicated
    rows = keys // max(n_items, 1)
    cols = keys - rows * n_items
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
    data = np.ones(keys.size, dtype=dtype)
    mat = sp.csr_matrix((data, cols, indptr), shape=(n_users, n_items))
    mat.has_sorted_indices = True
    return mat


def relevant_csr(
    user: np.ndarray | Sequence[int],
    item: np.ndarray | Sequence[int],
    n_users: int,
    n_items: int,
) -> sp.csr_matrix:
    """Per-user relevant (held-out) items as a boolean CSR ``[n_users, n_items]``.

    Row ``u`` lists the distinct items of user ``u``; select the query users with
    ``relevant_csr(...)[query_users]``. See :func:`interactions_csr` for the
    arguments.
    """
    return interactions_csr(user, item, n_users, n_items, dtype=np.bool_)


def _relevant_from_lists(
    relevant: Sequence[np.ndarray | Sequence[int]],
) -> sp.csr_matrix:
    arrays = [_as_ids(r, f"relevant[{j}]") for j, r in enumerate(relevant)]
    lengths = np.array([a.size for a in arrays], dtype=np.int64)
    items = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
    if items.size and items.min() < 0:
        raise ValueError("relevant items must be >= 0")
    n_items = int(items.max()) + 1 if items.size else 0
    users = np.repeat(np.arange(len(arrays), dtype=np.int64), lengths)
    return relevant_csr(users, items, len(arrays), n_items)


def _check_ks(ks: Sequence[int], k_max: int) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks:
        raise ValueError("ks must name at least one cut-off")
    if min(ks) < 1:
        raise ValueError(f"every k in ks must be >= 1, got ks={ks}")
    if max(ks) > k_max:
        raise ValueError(
            f"ks={ks} asks for cut-offs beyond the {k_max} recommended items per "
            "query (recommended.shape[1]); recommend more items or lower ks"
        )
    return ks


def hit_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """``bool [n_query, K]``: whether ``recommended[q, i]`` is relevant to row ``q``
    (first occurrence only; padding ``-1`` never hits).

    Membership is tested on sorted ``row * n_cols + item`` keys (one
    ``np.searchsorted`` for all entries).
    """
    n_q, k_max = recommended.shape
    rel = relevant.tocsr()
    if not rel.has_sorted_indices:
        rel = rel.copy()
        rel.sort_indices()
    n_cols = max(rel.shape[1], int(recommended.max(initial=-1)) + 1, 1)
    rel_rows = np.repeat(np.arange(rel.shape[0], dtype=np.int64), np.diff(rel.indptr))
    rel_keys = rel_rows * n_cols + rel.indices.astype(np.int64)
    if rel.data.dtype != np.bool_:
        rel_keys = rel_keys[rel.data != 0]
    valid = recommended >= 0
    keys = np.arange(n_q, dtype=np.int64)[:, None] * n_cols + recommended
    if rel_keys.size == 0:
        return np.zeros((n_q, k_max), dtype=bool)
    pos = np.searchsorted(rel_keys, keys).clip(max=rel_keys.size - 1)
    hit = valid & (rel_keys[pos] == keys)
    flat = np.flatnonzero(hit)
    if flat.size:  # an item listed twice hits once, at its first position
        _, first = np.unique(keys.ravel()[flat], return_index=True)
        if first.size < flat.size:
            hit.ravel()[flat] = False
            hit.ravel()[flat[first]] = True
    return hit


def ranking_metrics(
    recommended: np.ndarray,
    relevant: sp.spmatrix | sp.sparray | Sequence[np.ndarray | Sequence[int]],
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Recall, precision, nDCG and hit rate at each cut-off (see module docstring).

    Args:
        recommended: ``int [n_query, K_max]`` item ids per query user, best first
            (``-1`` = padding).
        relevant: held-out items of each query user, row-aligned with
            ``recommended``: a CSR matrix (e.g. ``relevant_csr(...)[query_users]``)
            or a list of item-id arrays.
        ks: cut-offs, each ``<= K_max`` (default ``(10, 50, 100)``).

    Returns:
        ``{"recall@k", "precision@k", "ndcg@k", "hitrate@k"}`` for each ``k``
        plus ``"n_users"`` (query users with at least one relevant item).

    Raises:
        ValueError: bad shapes, a ``k`` outside ``[1, K_max]``, or no query user
            with a relevant item.
    """
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(f"recommended must be 2-D [n_query, K], got shape {rec.shape}")
    if rec.size and not np.issubdtype(rec.dtype, np.integer):
        raise ValueError(f"recommended must hold integer ids, got dtype {rec.dtype}")
    rec = rec.astype(np.int64, copy=False)
    rel = (
        _relevant_from_lists(relevant)
        if isinstance(relevant, (list, tuple))
        else sp.csr_matrix(relevant)
    )
    if rel.shape[0] != rec.shape[0]:
        raise ValueError(
            f"relevant has {rel.shape[0]} rows but recommended has {rec.shape[0]} "
            "(one row per query user in both)"
        )
    ks = _check_ks(ks, rec.shape[1])
    k_top = max(ks)
    rec = rec[:, :k_top]
    n_rel = np.diff(rel.indptr) if rel.data.dtype == np.bool_ else rel.getnnz(axis=1)
    users = n_rel > 0
    n_users = int(users.sum())
    if n_users == 0:
        raise ValueError("relevant: no query user has a held-out item")
    hit = hit_matrix(rec[users], rel[users])
    n_rel = n_rel[users].astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, k_top + 2, dtype=np.float64))
    n_hits = np.cumsum(hit, axis=1, dtype=np.int64)
    dcg = np.cumsum(hit * discount, axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])
    out: dict[str, float] = {}
    for k in ks:
        hits_k = n_hits[:, k - 1]
        idcg = ideal[np.minimum(n_rel, k).astype(np.int64)]
        out[f"recall@{k}"] = float(np.mean(hits_k / n_rel))
        out[f"precision@{k}"] = float(np.mean(hits_k / k))
        out[f"ndcg@{k}"] = float(np.mean(dcg[:, k - 1] / idcg))
        out[f"hitrate@{k}"] = float(np.mean(hits_k > 0))
    out["n_users"] = float(n_users)
    return out
