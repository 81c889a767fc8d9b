"""Numba kernels of the fused HGT attention (:mod:`.hgt_attention`) on CPU.

Imported lazily, so importing the models never pays the numba import or a JIT
compile. ``cache=True`` compiles once per signature; ``parallel=True`` spreads
the rows over numba's threads (set to torch's thread count by the caller).

Layout: ``q [n, H, D]`` (one row per destination node), ``k``/``v [m, H, D]``
(one row per (incoming relation, source node)), edges grouped by destination
(``ptr``/``col``, CSR) with their relation ``rel`` and a ``keep`` flag (0 = the
edge is absent for this call, e.g. a training target). The transposed view
``tptr``/``tperm`` lists the edges of each source row, so the backward pass
accumulates ``dk``/``dv`` per source row without atomics.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(parallel=True, nogil=True, cache=True)
def attention_forward(  # noqa: PLR0913, PLR0917 - numba has no keyword-only args
    ptr: np.ndarray,
    col: np.ndarray,
    rel: np.ndarray,
    keep: np.ndarray,
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    prior: np.ndarray,
    scale: float,
    out: np.ndarray,
    att: np.ndarray,
    raw: np.ndarray,
) -> None:  # pragma: no cover - compiled (tested against the torch reference)
    """``out[i, h] = sum_e softmax_e(raw[e, h] prior[rel[e], h]) v[col[e], h]``.

    ``raw[e, h] = scale * q[i, h] . k[col[e], h]`` and the attention ``att`` are
    written for the backward pass (0 for edges with ``keep[e] == 0``).
    """
    n, heads, dim = q.shape
    for i in numba.prange(n):
        begin, end = ptr[i], ptr[i + 1]
        for h in range(heads):
            top = -np.inf
            for e in range(begin, end):
                if keep[e] == 0:
                    att[e, h] = 0.0
                    raw[e, h] = 0.0
                    continue
                j = col[e]
                dot = 0.0
                for d in range(dim):
                    dot += q[i, h, d] * k[j, h, d]
                raw[e, h] = dot * scale
                s = raw[e, h] * prior[rel[e], h]
                att[e, h] = s
                top = max(top, s)
            for d in range(dim):
                out[i, h, d] = 0.0
            if top == -np.inf:
                continue  # no kept in-edge: the aggregate is 0
            total = 0.0
            for e in range(begin, end):
                if keep[e] != 0:
                    w = math.exp(att[e, h] - top)
                    att[e, h] = w
                    total += w
            for e in range(begin, end):
                if keep[e] != 0:
                    w = att[e, h] / total
                    att[e, h] = w
                    j = col[e]
                    for d in range(dim):
                        out[i, h, d] += w * v[j, h, d]


@numba.njit(parallel=True, nogil=True, cache=True)
def attention_backward_dst(  # noqa: PLR0913, PLR0917
    ptr: np.ndarray,
    col: np.ndarray,
    rel: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    prior: np.ndarray,
    scale: float,
    att: np.ndarray,
    gout: np.ndarray,
    gq: np.ndarray,
    gscore: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Per destination row: ``gscore[e, h]`` (gradient of the pre-softmax score
    ``raw * prior``) and ``gq``."""
    n, heads, dim = gout.shape
    for i in numba.prange(n):
        begin, end = ptr[i], ptr[i + 1]
        for h in range(heads):
            mean = 0.0
            for e in range(begin, end):
                j = col[e]
                ga = 0.0
                for d in range(dim):
                    ga += gout[i, h, d] * v[j, h, d]
                gscore[e, h] = ga
                mean += att[e, h] * ga
            for d in range(dim):
                gq[i, h, d] = 0.0
            for e in range(begin, end):
                g = att[e, h] * (gscore[e, h] - mean)
                gscore[e, h] = g
                c = g * prior[rel[e], h] * scale
                if c != 0.0:
                    j = col[e]
                    for d in range(dim):
                        gq[i, h, d] += c * k[j, h, d]


@numba.njit(parallel=True, nogil=True, cache=True)
def attention_backward_src(  # noqa: PLR0913, PLR0917
    tptr: np.ndarray,
    tperm: np.ndarray,
    dst: np.ndarray,
    rel: np.ndarray,
    q: np.ndarray,
    prior: np.ndarray,
    scale: float,
    att: np.ndarray,
    gscore: np.ndarray,
    gout: np.ndarray,
    gk: np.ndarray,
    gv: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Per source row ``j``: ``gk[j]`` and ``gv[j]`` over the edges leaving it."""
    m, heads, dim = gk.shape
    for j in numba.prange(m):
        for h in range(heads):
            for d in range(dim):
                gk[j, h, d] = 0.0
                gv[j, h, d] = 0.0
        for t in range(tptr[j], tptr[j + 1]):
            e = tperm[t]
            i = dst[e]
            for h in range(heads):
                a = att[e, h]
                c = gscore[e, h] * prior[rel[e], h] * scale
                if a == 0.0 and c == 0.0:
                    continue
                for d in range(dim):
                    gk[j, h, d] += c * q[i, h, d]
                    gv[j, h, d] += a * gout[i, h, d]
