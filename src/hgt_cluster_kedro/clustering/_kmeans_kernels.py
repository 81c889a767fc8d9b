"""Numba kernel of :func:`~hgt_cluster_kedro.clustering.kmeans.kmeans` on CPU.

Imported lazily (CPU fits with bf16 screening only), so importing the clustering
package never pays the numba import or a JIT compile. ``cache=True`` (compiled
once per signature, then loaded from ``__pycache__``) and ``nogil=True`` (the
fit's worker threads run it in parallel).

:func:`screen_block` is the post-processing of one block of screened squared
distances: the nearest and second-nearest centroid of every row, the proven
error bound and the undecided rows, in one pass over the bf16 block. PyTorch
needs six passes for the same (widen to float32, pack the index into the low
bits, ``amin``, mask, ``amin``, bound arithmetic) and they took 80 % of the
screening time (``benchmarks/bench_kmeans.py``). :func:`bound_block` is
Hamerly's bound update and test, one pass instead of eight. Together they took
a 1M x 64, k = 64 fit from 2.21 to 1.71 s (overlapping data) and 1.54 to 1.34 s
(separated blobs) on 2 cores; the torch versions stay the path on GPUs and
without numba.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_INT16_MAX = np.int16(0x7FFF)
_ZERO16 = np.int16(0)


@numba.njit(nogil=True, cache=True)
def screen_block(  # noqa: PLR0917 - numba has no keyword-only arguments
    keys: np.ndarray,
    norm: np.ndarray,
    err_a: float,
    err_b: float,
    cmax: float,
    u: float,
    labels: np.ndarray,
    d1: np.ndarray,
    d2: np.ndarray,
    unsure: np.ndarray,
) -> int:  # pragma: no cover - compiled (tested through kmeans)
    """Nearest / second-nearest centroid of each row of a bf16 distance block.

    Args:
        keys: ``int16 [m, k]``, the bit patterns of the bf16 squared distances.
            Non-negative bf16 values order like their ``int16`` patterns; a
            negative one (a distance within rounding of zero) is taken as zero,
            which keeps the bounds below valid.
        norm: ``float32 [m]`` point norms (for the error bound).
        err_a, err_b, cmax: the error bound ``err_a ||x|| + err_b (||x|| +
            cmax)^2`` of a screened distance (see ``_make_centroids``).
        u: unit roundoff of bf16 (the final rounding of each key).
        labels: ``int64 [m]`` out: nearest centroid (ties: lowest index).
        d1: ``float32 [m]`` out: upper bound of the distance to it.
        d2: ``float32 [m]`` out: lower bound of the distance to every other.
        unsure: ``int64 [m]`` out: its first ``return`` entries are the rows
            whose bounds overlap (to recompute exactly).

    Returns:
        The number of undecided rows.
    """
    m, k = keys.shape
    bits = np.empty(2, np.uint32)
    val = bits.view(np.float32)
    count = 0
    for i in range(m):
        row = keys[i]
        best = _INT16_MAX
        for j in range(k):
            best = min(best, row[j])
        arg = 0
        for j in range(k):
            if row[j] == best:
                arg = j
                break
        second = _INT16_MAX
        for j in range(k):
            second = min(second, row[j] if j != arg else _INT16_MAX)
        bits[0] = np.uint32(max(best, _ZERO16)) << 16
        bits[1] = np.uint32(max(second, _ZERO16)) << 16
        x = norm[i]
        err = x * err_a + (x + cmax) * (x + cmax) * err_b
        hi1 = val[0] * (1.0 + 2.0 * u) + err  # >= the true nearest d^2
        lo2 = val[1] * (1.0 - 2.0 * u) - err  # <= every other true d^2
        labels[i] = arg
        d1[i] = math.sqrt(max(hi1, 0.0))
        d2[i] = math.sqrt(max(lo2, 0.0))
        if hi1 >= lo2:
            unsure[count] = i
            count += 1
    return count


@numba.njit(nogil=True, cache=True)
def bound_block(  # noqa: PLR0917 - numba has no keyword-only arguments
    labels: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    s_half: np.ndarray,
    drift: np.ndarray,
    top: int,
    v0: float,
    v1: float,
    apply: bool,
    found: np.ndarray,
) -> int:  # pragma: no cover - compiled (tested through kmeans)
    """Hamerly's test over a block of rows, in one pass.

    With ``apply``, first moves the bounds by the centroid drifts:
    ``upper += drift[a]``, ``lower -= v1 if a == top else v0`` (the largest
    drift of the other centroids). Then writes the rows with ``upper >
    max(s_half[a], lower)`` (they may change cluster) into ``found``.

    Returns:
        The number of rows written to ``found``.
    """
    count = 0
    for i in range(labels.shape[0]):
        a = labels[i]
        up = upper[i]
        lo = lower[i]
        if apply:
            up += drift[a]
            lo -= v1 if a == top else v0
            upper[i] = up
            lower[i] = lo
        if up > max(s_half[a], lo):
            found[count] = i
            count += 1
    return count
