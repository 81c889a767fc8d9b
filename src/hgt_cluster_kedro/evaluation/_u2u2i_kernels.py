"""Numba kernel of the u2u2i scoring (:func:`.retrieval.recommend_from_neighbors`).

Imported lazily, so importing the evaluation package never pays the numba
import or a JIT compile. ``cache=True`` compiles once per signature;
``parallel=True`` spreads blocks of query rows over numba's threads.

One pass per query row: the user's own train items are marked, then the
neighbours' train items are summed, in neighbour order, into a dense
accumulator (items touched are listed, so nothing is cleared between rows).
When the first ``m`` neighbours of a checkpoint ``m`` have been summed, the
candidates (non-zero sums outside the user's own items) are copied into
contiguous arrays with the row's largest ``|sum|`` so far (the normalisation),
then, for each popularity weight of the grid, they are scored and the best
``k`` kept in a bounded min-heap (an item that cannot enter it is rejected
before any call); with a prior, popular items are offered (most popular first)
until ``k`` offered or positively scored ones outrank every item not yet
offered. Then the sum goes on to the next checkpoint. A validation grid over
``(m, w)`` thus sums each row's votes once, for its largest ``m``; the partial
sum after ``m`` neighbours is, addition by addition, the sum of a call with
only those ``m`` columns, so each checkpoint's output equals that call's.
Ties go to the smaller item id.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _worse(
    s_a: float, i_a: int, s_b: float, i_b: int
) -> bool:  # pragma: no cover - compiled
    """Entry a ranks below entry b (lower score, or same score and larger id)."""
    return s_a < s_b or (s_a == s_b and i_a > i_b)


@numba.njit(nogil=True)
def _sift_down(
    hs: np.ndarray, hi: np.ndarray, size: int, pos: int
) -> None:  # pragma: no cover - compiled
    """Restore the min-heap (worst entry at the root) below ``pos``."""
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        if child + 1 < size and _worse(
            hs[child + 1], hi[child + 1], hs[child], hi[child]
        ):
            child += 1
        if not _worse(hs[child], hi[child], hs[pos], hi[pos]):
            return
        hs[pos], hs[child] = hs[child], hs[pos]
        hi[pos], hi[child] = hi[child], hi[pos]
        pos = child


@numba.njit(nogil=True)
def _push(  # noqa: PLR0917 - numba has no keyword-only args
    hs: np.ndarray, hi: np.ndarray, size: int, k: int, s: float, i: int
) -> int:  # pragma: no cover - compiled
    """Offer ``(s, i)`` to the heap of at most ``k`` entries; the new size."""
    if size < k:
        pos = size
        hs[pos] = s
        hi[pos] = i
        while pos > 0:
            parent = (pos - 1) // 2
            if not _worse(hs[pos], hi[pos], hs[parent], hi[parent]):
                break
            hs[pos], hs[parent] = hs[parent], hs[pos]
            hi[pos], hi[parent] = hi[parent], hi[pos]
            pos = parent
        return size + 1
    if _worse(hs[0], hi[0], s, i):
        hs[0] = s
        hi[0] = i
        _sift_down(hs, hi, size, 0)
    return size


@numba.njit(nogil=True)
def _extract_topk(  # noqa: PLR0913, PLR0917 - numba has no keyword-only args
    cand: np.ndarray,
    cand_x: np.ndarray,
    cand_share: np.ndarray,
    n_c: int,
    acc: np.ndarray,
    seen: np.ndarray,
    own: np.ndarray,
    r: int,
    top: np.float32,
    w: np.float32,
    share: np.ndarray,
    pop_order: np.ndarray,
    clip_negative: bool,
    hs: np.ndarray,
    hi: np.ndarray,
    items_row: np.ndarray,
    scores_row: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Best ``k = hs.size`` items of row ``r`` for one popularity weight ``w``,
    written best first into ``items_row`` / ``scores_row`` (left as filled
    beyond the last one).

    ``cand[:n_c]`` are the row's scored candidates: summed vote ``cand_x``
    (non-zero, not an own item) and popularity share ``cand_share``; ``top``
    is the row's largest ``|vote|`` (1 if none). ``acc`` holds the votes of
    the items with ``seen[i] == r``, ``own[i] == r`` marks the user's excluded
    items.
    """
    k = hs.size
    size = 0
    for a in range(n_c):
        i = cand[a]
        x = cand_x[a]
        s = x if w == 0 else (1 - w) * (x / top) + w * cand_share[a]
        if (s > 0 or (not clip_negative and s != 0)) and (
            size < k or _worse(hs[0], hi[0], s, i)  # else _push would drop it
        ):
            size = _push(hs, hi, size, k, s, i)
    if w > 0:
        # popular items join the candidates, most popular first,
        # until k of them would outrank any item not yet offered
        good = 0
        for b in range(pop_order.size):
            if good >= k:
                break
            i = pop_order[b]
            if own[i] == r:
                continue
            if seen[i] == r and acc[i] != 0:  # scored above
                good += acc[i] > 0
                continue
            s = w * share[i]
            if s <= 0:  # the rest are never engaged with
                break
            size = _push(hs, hi, size, k, s, i)
            good += 1
    for pos in range(size - 1, -1, -1):  # pop the worst into the back
        scores_row[pos] = hs[0]
        items_row[pos] = hi[0]
        last = size - 1
        hs[0] = hs[last]
        hi[0] = hi[last]
        size = last
        _sift_down(hs, hi, size, 0)


@numba.njit(parallel=True, nogil=True, cache=True)
def score_topk(  # noqa: PLR0913, PLR0917 - numba has no keyword-only args
    indptr: np.ndarray,
    indices: np.ndarray,
    nbr: np.ndarray,
    wts: np.ndarray,
    query: np.ndarray,
    share: np.ndarray,
    pop_order: np.ndarray,
    m_stops: np.ndarray,
    weights: np.ndarray,
    exclude_train: bool,
    clip_negative: bool,
    rows_per_task: int,
    items_out: np.ndarray,
    scores_out: np.ndarray,
) -> None:  # pragma: no cover - compiled (tested against a dense reference)
    """Top-``k`` items of every query row for every neighbour count and
    popularity weight.

    Args:
        indptr, indices: the binary user x item train matrix (CSR).
        nbr: ``int64 [n_q, m]`` neighbours, most similar first (``-1`` = none).
        wts: ``float32 [n_q, m]`` their weights (0 = no vote).
        query: ``int64 [n_q]`` the query users.
        share: ``float32 [n_items]`` train popularity / the largest.
        pop_order: ``int64`` items, the most popular first.
        m_stops: ``int64 [n_m]`` neighbour counts, increasing, at most ``m``:
            checkpoint ``c`` scores the first ``m_stops[c]`` columns.
        weights: ``float64 [n_w]`` popularity weights ``w`` in ``[0, 1)``.
        exclude_train: drop each query user's own train items.
        clip_negative: keep scores ``> 0`` only (else every non-zero score).
        rows_per_task: query rows per parallel task.
        items_out: ``int64 [n_m, n_w, n_q, k]`` filled with ``-1`` (written).
        scores_out: ``float32 [n_m, n_w, n_q, k]`` filled with ``-inf``
            (written).
    """
    n_q = nbr.shape[0]
    n_items = share.size
    n_w = weights.size
    k = items_out.shape[3]
    n_tasks = (n_q + rows_per_task - 1) // rows_per_task
    for task in numba.prange(n_tasks):
        acc = np.zeros(n_items, np.float32)
        seen = np.full(n_items, -1, np.int64)
        own = np.full(n_items, -1, np.int64)
        touched = np.empty(n_items, np.int64)
        cand = np.empty(n_items, np.int64)
        cand_x = np.empty(n_items, np.float32)
        cand_share = np.empty(n_items, np.float32)
        hs = np.empty(k, np.float32)
        hi = np.empty(k, np.int64)
        for r in range(task * rows_per_task, min((task + 1) * rows_per_task, n_q)):
            if exclude_train:
                u = query[r]
                for p in range(indptr[u], indptr[u + 1]):
                    own[indices[p]] = r
            n_t = 0
            done = 0  # neighbour columns summed so far
            for c in range(m_stops.size):
                for j in range(done, m_stops[c]):
                    v = nbr[r, j]
                    wv = wts[r, j]
                    if v < 0 or wv == 0:
                        continue
                    for p in range(indptr[v], indptr[v + 1]):
                        i = indices[p]
                        if seen[i] != r:
                            seen[i] = r
                            acc[i] = 0.0
                            touched[n_t] = i
                            n_t += 1
                        acc[i] += wv
                done = m_stops[c]
                top = np.float32(0.0)  # over every touched item, own ones too
                n_c = 0
                for a in range(n_t):
                    i = touched[a]
                    x = acc[i]
                    top = max(top, abs(x))
                    if x != 0 and own[i] != r:
                        cand[n_c] = i
                        cand_x[n_c] = x
                        cand_share[n_c] = share[i]
                        n_c += 1
                if top == 0:
                    top = np.float32(1.0)
                for wi in range(n_w):
                    _extract_topk(
                        cand,
                        cand_x,
                        cand_share,
                        n_c,
                        acc,
                        seen,
                        own,
                        r,
                        top,
                        np.float32(weights[wi]),
                        share,
                        pop_order,
                        clip_negative,
                        hs,
                        hi,
                        items_out[c, wi, r],
                        scores_out[c, wi, r],
                    )
