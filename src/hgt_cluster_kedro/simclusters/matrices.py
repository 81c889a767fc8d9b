"""Sparse matrices of graph relations (scipy CSR views of the graph artifact)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from hgt_cluster_kedro.graph.csr import HeteroCSR


def relation_matrix(csr: HeteroCSR, edge_type: tuple[str, str, str]) -> sp.csr_matrix:
    """Binary ``[n_src, n_dst]`` CSR of one relation of the (train) graph."""
    src, _, dst = edge_type
    indptr = csr.indptr[edge_type].numpy()
    indices = csr.indices[edge_type].numpy()
    data = np.ones(indices.size, dtype=np.float32)
    return sp.csr_matrix(
        (data, indices, indptr), shape=(csr.num_nodes[src], csr.num_nodes[dst])
    )


def engagement_matrix(
    csr: HeteroCSR,
    edge_types: Sequence[tuple[str, str, str]],
    weights: Sequence[float] | None = None,
) -> sp.csr_matrix:
    """User × item CSR of ``edge_types``: binary union (a pair engaged through
    several relations counts once) or, with ``weights``, the weighted sum
    ``Σ_r w_r A_r``."""
    total = None
    for j, et in enumerate(edge_types):
        mat = relation_matrix(csr, et)
        if weights is not None:
            mat = mat * np.float32(weights[j])
        total = mat if total is None else total + mat
    total = sp.csr_matrix(total)
    if weights is None:
        total.data[:] = 1.0
    return total
