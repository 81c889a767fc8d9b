"""Producer–producer similarity of SimClusters (Satuluri et al., KDD 2020, §3.1).

Two producers are similar when the same consumers follow them: the cosine of
their consumer sets (columns of the binary follow matrix ``A``). Noise removal
keeps each producer's ``top_n`` most similar neighbours above ``threshold``; the
graph is then made symmetric (an edge survives if either end kept it) and has
no self-loops.

The product ``Aᵀ A`` is never materialised: a compiled kernel
(``_similarity_kernel.py``) accumulates one producer's row at a time and keeps
its top ``n`` (parallel over chunks of producers), or, with
``kernel="scipy"``, scipy multiplies one block of producers at a time. Memory is
bounded by ``producers × top_n``, never producers × producers.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)


def top_n_per_row(mat: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the ``n`` largest entries of every row (ties: smaller column first);
    rows stay in column order. Compiled, parallel over rows."""
    from ._similarity_kernel import top_n_keep

    mat = sp.csr_matrix(mat)
    counts = np.diff(mat.indptr)
    if counts.max(initial=0) <= n:
        return mat
    if not mat.has_sorted_indices:
        mat = mat.sorted_indices()
    keep, kept = top_n_keep(mat.indptr.astype(np.int64), mat.data, int(n))
    indptr = np.zeros(mat.shape[0] + 1, dtype=np.int64)
    np.cumsum(kept, out=indptr[1:])
    return sp.csr_matrix((mat.data[keep], mat.indices[keep], indptr), shape=mat.shape)


def producer_similarity(
    follow: sp.csr_matrix,
    *,
    top_n: int = 50,
    threshold: float = 0.0,
    min_consumers: int = 1,
    max_consumer_degree: int | None = None,
    block_producers: int = 4096,
    kernel: str = "numba",
) -> sp.csr_matrix:
    """Symmetric producer × producer cosine-similarity graph after noise removal.

    Args:
        follow: ``[n_consumers, n_producers]`` follow matrix (any non-zero value
            is a follow).
        top_n: neighbours kept per producer.
        threshold: similarities below this are dropped (``[0, 1]``).
        min_consumers: producers with fewer consumers get no edges.
        max_consumer_degree: consumers following more producers are left out
            (``None`` keeps all).
        block_producers: producers per block of the product (per parallel
            chunk of the numba kernel: at most 1024).
        kernel: ``numba`` (compiled sparse accumulator, parallel over chunks of
            producers) or ``scipy`` (blockwise ``Aᵀ A`` products); same result.

    Returns:
        ``float32`` CSR ``[n_producers, n_producers]``, symmetric, no diagonal.

    Raises:
        ValueError: a parameter out of range, or no edge left after noise
            removal (naming ``simclusters.similarity.*``).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(
            f"simclusters.similarity.threshold must be in [0, 1], got {threshold}"
        )
    if kernel not in ("numba", "scipy"):
        raise ValueError(
            f"simclusters.similarity.kernel must be numba or scipy, got {kernel!r}"
        )
    if top_n < 1 or block_producers < 1 or min_consumers < 1:
        raise ValueError(
            "simclusters.similarity: top_n, block_producers and min_consumers must "
            f"be >= 1, got {top_n}, {block_producers}, {min_consumers}"
        )
    a = sp.csr_matrix(follow, dtype=np.float32, copy=True)
    a.sum_duplicates()
    a.data[:] = 1.0
    a.eliminate_zeros()
    if max_consumer_degree is not None:
        heavy = np.diff(a.indptr) > max_consumer_degree
        if heavy.any():
            a = sp.diags((~heavy).astype(np.float32)) @ a
            a.eliminate_zeros()
            logger.info(
                "Similarity: %d consumers above max_consumer_degree=%d left out",
                int(heavy.sum()),
                max_consumer_degree,
            )
    n_prod = a.shape[1]
    deg = np.asarray(a.sum(axis=0)).ravel()
    scale = np.where(deg >= min_consumers, 1.0 / np.sqrt(np.maximum(deg, 1.0)), 0.0)
    an = (a @ sp.diags(scale.astype(np.float32))).tocsr()
    an.eliminate_zeros()
    at = an.T.tocsr()
    if kernel == "numba":
        from ._similarity_kernel import top_n_cosine

        idx, val, cnt = top_n_cosine(
            at.indptr.astype(np.int64),
            at.indices.astype(np.int64),
            at.data.astype(np.float64),
            an.indptr.astype(np.int64),
            an.indices.astype(np.int64),
            an.data.astype(np.float64),
            int(top_n),
            float(threshold),
            int(max(1, min(block_producers, 1024))),
        )
        keep = idx >= 0
        indptr = np.zeros(n_prod + 1, dtype=np.int64)
        np.cumsum(cnt, out=indptr[1:])
        sim = sp.csr_matrix((val[keep], idx[keep], indptr), shape=(n_prod, n_prod))
    else:
        blocks = []
        for start in range(0, n_prod, block_producers):
            stop = min(start + block_producers, n_prod)
            block = (at[start:stop] @ an).tocsr()
            _drop_diagonal(block, start)
            if threshold > 0.0:
                block.data[block.data < threshold] = 0.0
            block.eliminate_zeros()
            blocks.append(top_n_per_row(block, top_n))
        sim = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, 0))
    sim = sim.maximum(sim.T).tocsr().astype(np.float32)
    sim.sort_indices()
    if sim.nnz == 0:
        raise ValueError(
            "simclusters.similarity: the producer similarity graph is empty after "
            f"noise removal (threshold={threshold}, top_n={top_n}, "
            f"min_consumers={min_consumers}, max_consumer_degree="
            f"{max_consumer_degree}); lower the threshold or check follow_relation"
        )
    logger.info(
        "Similarity graph: %d producers, %d edges (%d producers isolated)",
        n_prod,
        sim.nnz // 2,
        int((np.diff(sim.indptr) == 0).sum()),
    )
    return sim


def _drop_diagonal(block: sp.csr_matrix, start: int) -> None:
    """Zero ``block[r, start + r]`` in place (self-similarity)."""
    counts = np.diff(block.indptr)
    rows = np.repeat(np.arange(block.shape[0], dtype=np.int64), counts)
    block.data[block.indices == rows + start] = 0.0
