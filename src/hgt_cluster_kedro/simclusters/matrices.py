"""Sparse matrices of graph relations (scipy CSR views of the graph artifact).

Every matrix is read from the graph's CSR, i.e. the train message-passing graph:
the target relations (user <-> item, both directions) lost their valid / test
pairs when the graph was built (:func:`hgt_cluster_kedro.graph.split.train_edges`),
the other relations are whole. A metapath's product therefore only walks train
pairs of the target relations: no held-out pair reaches the follow graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from hgt_cluster_kedro.graph.csr import HeteroCSR
from hgt_cluster_kedro.models.count_profile import adjacency, metapath_counts

#: binary ``[n_src, n_dst]`` CSR of one relation of the (train) graph: the count
#: profile's adjacency, under the name this package exports
relation_matrix = adjacency


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
        mat = adjacency(csr, et)
        if weights is not None:
            mat = mat * np.float32(weights[j])
        total = mat if total is None else total + mat
    total = sp.csr_matrix(total)
    if weights is None:
        total.data[:] = 1.0
    return total


def metapath_matrix(
    csr: HeteroCSR,
    edge_types: Sequence[tuple[str, str, str]],
    *,
    weighting: str = "count",
) -> sp.csr_matrix:
    """``[n_start, n_end]`` CSR along a metapath: the sparse product of its hops'
    binary adjacencies, so ``M[u, p]`` counts the paths ``u -> … -> p``
    (``weighting="count"``) or is 1 where there is one (``"binary"``).

    The product is the count profile's (:func:`~hgt_cluster_kedro.models.
    count_profile.metapath_counts`): hops must chain type to type, ``rev_``
    twins are read like any relation of the CSR, and it stays sparse.
    """
    if not edge_types:
        raise ValueError("metapath: needs at least one relation")
    if weighting not in ("count", "binary"):
        raise ValueError(
            f"metapath weighting must be count or binary, got {weighting!r}"
        )
    out, _ = metapath_counts(csr, edge_types[0][0], [et[1] for et in edge_types])
    out.eliminate_zeros()
    out.sort_indices()
    if weighting == "binary":
        out.data[:] = 1.0
    return out.astype(np.float32)


def follow_matrix(
    csr: HeteroCSR,
    paths: Sequence[Sequence[tuple[str, str, str]]],
    weights: Sequence[float] | None = None,
    *,
    metapath_weighting: str = "count",
) -> sp.csr_matrix:
    """Consumer × producer follow matrix ``A`` of SimClusters' follow entries.

    ``paths`` holds one entry per follow relation: a single edge type (binary
    adjacency) or a metapath (:func:`metapath_matrix`). Entries are united by
    their weighted sum ``Σ_e w_e M_e`` with ``weights``, else by their
    element-wise maximum. With single relations only this is exactly
    :func:`engagement_matrix` (binary union, or the weighted sum).
    """
    if not paths:
        raise ValueError("follow matrix: no follow relation")
    if all(len(p) == 1 for p in paths):
        return engagement_matrix(csr, [p[0] for p in paths], weights)
    total: sp.csr_matrix | None = None
    for j, path in enumerate(paths):
        mat = metapath_matrix(csr, path, weighting=metapath_weighting)
        if weights is not None:
            mat = mat * np.float32(weights[j])
            total = mat if total is None else total + mat
        else:
            total = mat if total is None else total.maximum(mat)
    assert total is not None
    total = sp.csr_matrix(total, dtype=np.float32)
    total.sort_indices()
    return total
