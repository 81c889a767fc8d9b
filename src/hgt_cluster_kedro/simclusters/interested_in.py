"""InterestedIn: consumer communities of SimClusters (Satuluri et al., KDD 2020,
§3.3).

``U = A · V``: a consumer is interested in the communities its producers are
known for. Each row is normalised (``l1`` or ``l2``), then noise removal keeps
its ``top_m`` entries that are at least ``min_score``.

The work is split into fixed blocks of ``block_rows`` consumers. ``local`` mode
runs the blocks in this process; ``dask`` mode runs one task per block on a dask
cluster (``V`` broadcast once). Each block is computed by the same function on
the same rows, so both modes give bit-identical matrices; the number of workers
never changes the output.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from .similarity import top_n_per_row

logger = logging.getLogger(__name__)


def _normalise_rows(mat: sp.csr_matrix, norm: str) -> sp.csr_matrix:
    if norm == "l1":
        size = np.asarray(abs(mat).sum(axis=1)).ravel()
    elif norm == "l2":
        size = np.sqrt(np.asarray(mat.multiply(mat).sum(axis=1)).ravel())
    else:
        raise ValueError(
            f"simclusters.interested_in.norm must be l1 or l2, got {norm!r}"
        )
    inv = np.divide(1.0, size, out=np.zeros_like(size), where=size > 0)
    return (sp.diags(inv.astype(np.float32)) @ mat).tocsr()


def sparsify_rows(
    mat: sp.csr_matrix, *, top_m: int, min_score: float, norm: str
) -> sp.csr_matrix:
    """Row-normalise, keep the ``top_m`` largest entries ``>= min_score`` per row."""
    out = _normalise_rows(sp.csr_matrix(mat, dtype=np.float32), norm)
    if min_score > 0.0:
        out.data[out.data < min_score] = 0.0
        out.eliminate_zeros()
    out = top_n_per_row(out, top_m)
    out.sort_indices()
    return out


def interested_in_block(
    follow_block: sp.csr_matrix,
    knownfor: sp.csr_matrix,
    top_m: int,
    min_score: float,
    norm: str,
) -> sp.csr_matrix:
    """InterestedIn of one block of consumers (rows of the follow matrix)."""
    prod = (sp.csr_matrix(follow_block, dtype=np.float32) @ knownfor).tocsr()
    return sparsify_rows(prod, top_m=top_m, min_score=min_score, norm=norm)


def _check(
    follow: sp.csr_matrix, knownfor: sp.csr_matrix, top_m, min_score, block_rows
):
    if follow.shape[1] != knownfor.shape[0]:
        raise ValueError(
            f"follow matrix has {follow.shape[1]} producers but KnownFor has "
            f"{knownfor.shape[0]} rows"
        )
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(
            f"simclusters.interested_in.min_score must be in [0, 1], got {min_score}"
        )
    if top_m < 1 or block_rows < 1:
        raise ValueError(
            "simclusters.interested_in: top_m and block_rows must be >= 1, got "
            f"{top_m}, {block_rows}"
        )


def interested_in(
    follow: sp.csr_matrix,
    knownfor: sp.csr_matrix,
    *,
    top_m: int = 5,
    min_score: float = 0.05,
    norm: str = "l2",
    block_rows: int = 65536,
    client: Any = None,
) -> sp.csr_matrix:
    """``[n_consumers, k]`` InterestedIn matrix (CSR, ``float32``).

    Args:
        follow: ``[n_consumers, n_producers]`` follow matrix ``A`` (weights as
            given: 1 for a plain follow).
        knownfor: ``[n_producers, k]`` KnownFor matrix ``V``.
        top_m: communities kept per consumer.
        min_score: normalised entries below this are dropped.
        norm: ``l1`` or ``l2`` row normalisation.
        block_rows: consumers per block (one dask task each in dask mode).
        client: a ``distributed.Client`` for dask mode; ``None`` = local.

    Returns:
        The noise-removed InterestedIn ``U``.
    """
    follow = sp.csr_matrix(follow, dtype=np.float32)
    knownfor = sp.csr_matrix(knownfor, dtype=np.float32)
    _check(follow, knownfor, top_m, min_score, block_rows)
    starts = range(0, follow.shape[0], block_rows)
    blocks = [follow[s : s + block_rows] for s in starts]
    args = (top_m, float(min_score), norm)
    if client is None:
        parts = [interested_in_block(b, knownfor, *args) for b in blocks]
    else:
        [v] = client.scatter([knownfor], broadcast=True)
        futures = client.map(
            interested_in_block,
            blocks,
            [v] * len(blocks),
            *([a] * len(blocks) for a in args),
            pure=False,
        )
        parts = client.gather(futures)
        logger.info("InterestedIn: %d blocks on dask", len(blocks))
    if not parts:
        return sp.csr_matrix((0, knownfor.shape[1]), dtype=np.float32)
    out = sp.vstack(parts, format="csr").astype(np.float32)
    out.sort_indices()
    logger.info(
        "InterestedIn: %d consumers, %.2f communities each, %d empty",
        out.shape[0],
        out.nnz / max(out.shape[0], 1),
        int((np.diff(out.indptr) == 0).sum()),
    )
    return out


def top_community(u: sp.csr_matrix) -> np.ndarray:
    """``int64`` community of each row's largest entry (``-1`` for empty rows;
    ties: the smaller community)."""
    u = sp.csr_matrix(u)
    counts = np.diff(u.indptr)
    out = np.full(u.shape[0], -1, dtype=np.int64)
    rows = np.repeat(np.arange(u.shape[0], dtype=np.int64), counts)
    if rows.size == 0:
        return out
    order = np.lexsort((u.indices, -u.data, rows))
    first = np.ones(order.size, dtype=bool)
    first[1:] = rows[order][1:] != rows[order][:-1]
    out[rows[order][first]] = u.indices[order][first]
    return out
