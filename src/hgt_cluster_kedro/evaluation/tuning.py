"""The u2u2i channel tuned on the validation split.

The plain channel (:func:`~.retrieval.evaluate_u2u2i`) scores every embedding
with the same neighbour count ``m``, while the classical baselines (EASE's
``lambda``, item-kNN's neighbours) and the cluster channel (``c2i``'s blend)
choose their settings on the validation pairs. This module gives the embedding
methods the same treatment, as a recommender team would deploy the channel:
the neighbour count ``m`` and the weight ``w`` of a popularity prior
(:func:`~.retrieval.recommend_from_neighbors`) are chosen by validation
Recall@``select_k`` over a grid, then the channel is scored once on the
evaluation split. Test pairs never take part in the choice.

Neighbours are searched once for the largest ``m`` of the grid: by
:func:`~.retrieval.evaluate_u2u2i` for the test and validation query users
together (with its own ``m_neighbors``), or here, per split, when
:func:`tuned_u2u2i` is called without them. A smaller ``m`` is a prefix of the
sorted neighbour lists (:func:`~.retrieval.neighbor_rows`), and the
neighbours' votes are summed once per query user for the whole ``(m, w)``
grid, each ``m`` scored when its prefix is complete
(:func:`~.retrieval.recommend_from_neighbor_prefixes`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .metrics import ranking_metrics, relevant_csr
from .retrieval import (
    neighbor_rows,
    outside_train,
    recommend_from_neighbor_prefixes,
    recommend_from_neighbors,
    top_m_similar,
)

__all__ = [
    "capped_m_grid",
    "check_grid",
    "choose_u2u2i",
    "tuned_u2u2i",
    "validation_queries",
]


def check_grid(
    m_grid: Sequence[int], weight_grid: Sequence[float]
) -> tuple[list[int], list[float]]:
    """Sorted, de-duplicated grids; ``ValueError`` naming the bad value."""
    if not m_grid or not weight_grid:
        raise ValueError(
            "u2u2i_tuning: m_grid and popularity_weights must each list at least "
            f"one value, got {list(m_grid)} and {list(weight_grid)}"
        )
    bad_m = [m for m in m_grid if int(m) != m or m < 1]
    if bad_m:
        raise ValueError(f"u2u2i_tuning.m_grid: positive integers only, got {bad_m}")
    bad_w = [w for w in weight_grid if not 0.0 <= float(w) < 1.0]
    if bad_w:
        raise ValueError(
            f"u2u2i_tuning.popularity_weights: values in [0, 1) only, got {bad_w}"
        )
    return sorted({int(m) for m in m_grid}), sorted({float(w) for w in weight_grid})


def capped_m_grid(m_grid: Sequence[int], n_users: int) -> list[int]:
    """The sorted grid with every ``m`` capped at the other users (a small
    graph has fewer than the grid's largest ``m``: all of them)."""
    return sorted({min(int(m), max(n_users - 1, 1)) for m in m_grid})


def validation_queries(
    train: sp.csr_matrix, valid: tuple[np.ndarray, np.ndarray]
) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(relevant, query)``: the validation items of every user outside train
    (``[n_users, n_items]``) and the users with at least one, sorted.

    Raises:
        ValueError: no validation pair outside train.
    """
    n_users, n_items = train.shape
    rel, _ = outside_train(relevant_csr(*valid, n_users, n_items), train)
    query = np.flatnonzero(np.diff(rel.indptr) > 0).astype(np.int64)
    if query.size == 0:
        raise ValueError(
            "u2u2i_tuning: the validation split has no pair outside train; "
            "set evaluation.u2u2i_tuning to null or keep a validation split"
        )
    return rel, query


def choose_u2u2i(
    nbr: np.ndarray,
    sims: np.ndarray,
    query: np.ndarray,
    train: sp.csr_matrix,
    relevant: sp.csr_matrix,
    *,
    m_grid: Sequence[int],
    weight_grid: Sequence[float],
    k: int = 50,
    chunk_size: int = 4096,
    max_rows: int = 32768,
) -> tuple[int, float, dict[str, float]]:
    """``(m, w)`` of the grid with the best Recall@``k`` on ``relevant``.

    Args:
        nbr, sims: sorted neighbours of ``query`` (at least ``max(m_grid)``
            columns), from :func:`~.retrieval.top_m_similar`.
        query: the validation query users.
        train: binary ``[n_users, n_items]`` train matrix.
        relevant: ``[n_query, n_items]`` validation items of each query user
            (own train items removed).
        m_grid, weight_grid: the candidates (:func:`check_grid`).
        k: the cut-off of the criterion.
        chunk_size: query users per parallel task of the scoring kernel.
        max_rows: query users scored at once (memory: the whole grid's lists
            of that many users); with more, the recall is summed block by
            block.

    Returns:
        ``(m, w, recall)`` with ``recall["m=<m>,w=<w>"]`` for every pair; ties
        go to the smaller ``m``, then the smaller ``w``.
    """
    m_grid, weight_grid = check_grid(m_grid, weight_grid)
    if nbr.shape[1] < m_grid[-1]:
        raise ValueError(
            f"choose_u2u2i: {nbr.shape[1]} neighbours per user, the grid needs "
            f"{m_grid[-1]}"
        )
    # summed recall and user count per (m, w), over blocks of query users (the
    # grid's lists of one block are held at once: n_m x n_w x rows x k)
    totals = np.zeros((len(m_grid), len(weight_grid)))
    n_eval = 0.0
    for start in range(0, query.size, max_rows):
        rows = slice(start, start + max_rows)
        rel = relevant[rows]
        if rel.nnz == 0:
            continue
        grid_recs = recommend_from_neighbor_prefixes(  # one scoring pass for all
            nbr[rows],
            sims[rows],
            query[rows],
            train,
            k,
            m_grid=m_grid,
            popularity_weights=weight_grid,
            chunk_size=chunk_size,
        )
        for a, m_recs in enumerate(grid_recs):
            for b, recs in enumerate(m_recs):
                got = ranking_metrics(recs.items, rel, (k,))
                totals[a, b] += got[f"recall@{k}"] * got["n_users"]
        n_eval += float((rel.getnnz(axis=1) > 0).sum())
    if n_eval == 0:
        raise ValueError("choose_u2u2i: no query user has a validation item")
    recall: dict[str, float] = {}
    best: tuple[float, int, float] | None = None
    for a, m in enumerate(m_grid):
        for b, w in enumerate(weight_grid):
            value = float(totals[a, b] / n_eval)
            recall[f"m={m},w={w:g}"] = value
            if best is None or value > best[0]:
                best = (value, m, w)
    assert best is not None
    return best[1], best[2], recall


def tuned_u2u2i(
    emb: np.ndarray,
    train: sp.csr_matrix,
    valid: tuple[np.ndarray, np.ndarray],
    test_query: np.ndarray,
    test_relevant: sp.csr_matrix,
    *,
    m_grid: Sequence[int],
    popularity_weights: Sequence[float],
    select_k: int,
    ks: Sequence[int],
    metric: str,
    backend: str,
    seed: int,
    chunk_size: int = 4096,
    neighbors: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    **search_kwargs: Any,
) -> dict[str, Any]:
    """The channel with ``(m, w)`` chosen on ``valid``, scored on the test
    queries: ranking metrics, the choice and the validation grid. Own train
    items are always excluded (validation pairs that are train pairs too are
    dropped).

    Args:
        emb: checked ``[n_users, d]`` embeddings.
        train: binary ``[n_users, n_items]`` train matrix.
        valid: ``(user, item)`` validation pairs (pairs also in train ignored).
        test_query, test_relevant: the evaluation's query users and their
            held-out items (rows in ``test_query`` order).
        m_grid, popularity_weights, select_k: the grid and the criterion's
            cut-off.
        ks: cut-offs of the reported metrics.
        metric, backend, seed, chunk_size, search_kwargs: as
            :func:`~.retrieval.top_m_similar`.
        neighbors: ``(users, nbr, sims)``, neighbours already searched
            (:func:`~.retrieval.neighbor_rows`) for users that include the
            validation query users (:func:`validation_queries`) and
            ``test_query``, with at least ``max(capped_m_grid(m_grid))``
            columns; ``None`` (default): searched here, once per split. The
            search options are then unused and ``"seconds"`` leaves the search
            out.
    """
    m_grid, weights = check_grid(m_grid, popularity_weights)
    start = time.perf_counter()
    m_grid = capped_m_grid(m_grid, train.shape[0])
    rel, query = validation_queries(train, valid)
    search = {"metric": metric, "backend": backend, "chunk_size": chunk_size}
    search.update(seed=seed, **search_kwargs)

    def nearest(users: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        if neighbors is None:
            return top_m_similar(emb, users, m, **search)
        return neighbor_rows(neighbors, users, m)

    nbr, sims = nearest(query, m_grid[-1])
    m, w, grid = choose_u2u2i(
        nbr,
        sims,
        query,
        train,
        rel[query],
        m_grid=m_grid,
        weight_grid=weights,
        k=select_k,
    )
    nbr, sims = nearest(test_query, m)
    recs = recommend_from_neighbors(
        nbr,
        sims,
        test_query,
        train,
        max(ks),
        popularity_weight=w,
        chunk_size=chunk_size,
    )
    out: dict[str, Any] = {
        key: val
        for key, val in ranking_metrics(recs.items, test_relevant, ks).items()
        if "@" in key
    }
    out.update(
        m_neighbors=m,
        popularity_weight=w,
        select_k=int(select_k),
        valid_recall=grid,
        n_valid_users=int(query.size),
        seconds=time.perf_counter() - start,
    )
    return out
