"""Compiled (numba) kernels of SimClusters.

``top_n_cosine``, the producer similarity: per producer, a sparse accumulator
over the producers sharing a consumer, then its top ``n`` above the threshold —
``O(Σ_consumers degree²)`` like ``Aᵀ A``, without materialising the product
block, in parallel over chunks of producers. ``top_n_keep``: the entries of a
CSR matrix's per-row top ``n`` (``similarity.top_n_per_row``), parallel over
rows."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def top_n_cosine(  # noqa: PLR0917 - numba has no keyword-only arguments
    at_indptr, at_indices, at_data, a_indptr, a_indices, a_data, top_n, threshold, chunk
):  # pragma: no cover - compiled
    """Rows of ``Aᵀ A`` (``at`` = producers × consumers CSR, ``a`` = consumers ×
    producers CSR, both column-normalised): the ``top_n`` largest off-diagonal
    entries ``>= threshold`` per producer (ties: smaller producer first).

    Returns ``(indices [n, top_n], values [n, top_n], counts [n])``.
    """
    n = at_indptr.size - 1
    out_idx = np.full((n, top_n), -1, np.int64)
    out_val = np.zeros((n, top_n), np.float32)
    out_cnt = np.zeros(n, np.int64)
    n_chunks = (n + chunk - 1) // chunk
    for ch in numba.prange(n_chunks):
        acc = np.zeros(n, np.float64)
        seen = np.zeros(n, np.bool_)
        touched = np.empty(n, np.int64)
        for p in range(ch * chunk, min((ch + 1) * chunk, n)):
            t = 0
            for e in range(at_indptr[p], at_indptr[p + 1]):
                c = at_indices[e]
                w = at_data[e]
                for f in range(a_indptr[c], a_indptr[c + 1]):
                    q = a_indices[f]
                    if q == p:
                        continue
                    if not seen[q]:
                        seen[q] = True
                        touched[t] = q
                        t += 1
                    acc[q] += w * a_data[f]
            cols = np.sort(touched[:t])
            vals = np.empty(t, np.float64)
            for j in range(t):
                vals[j] = -acc[cols[j]]
            order = np.argsort(vals, kind="mergesort")
            kept = 0
            for j in range(t):
                if kept == top_n:
                    break
                q = cols[order[j]]
                if acc[q] >= threshold and acc[q] > 0.0:
                    out_idx[p, kept] = q
                    out_val[p, kept] = acc[q]
                    kept += 1
            out_cnt[p] = kept
            for j in range(t):
                acc[touched[j]] = 0.0
                seen[touched[j]] = False
    return out_idx, out_val, out_cnt


@numba.njit(parallel=True, cache=True)
def top_n_keep(indptr, data, n):  # pragma: no cover - compiled
    """``(mask, kept per row)`` of the entries kept by ``top_n_per_row``: per
    CSR row (column indices sorted), the ``n`` largest values, ties to the
    smaller column (a stable sort of the row's values, descending)."""
    n_rows = indptr.size - 1
    keep = np.zeros(data.size, np.bool_)
    kept = np.zeros(n_rows, np.int64)
    for r in numba.prange(n_rows):
        lo, hi = indptr[r], indptr[r + 1]
        if hi - lo <= n:
            keep[lo:hi] = True
            kept[r] = hi - lo
            continue
        order = np.argsort(-data[lo:hi], kind="mergesort")
        for j in range(n):
            keep[lo + order[j]] = True
        kept[r] = n
    return keep, kept
