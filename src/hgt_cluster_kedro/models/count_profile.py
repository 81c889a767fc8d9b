"""Count-profile baseline: each user's normalised count profile over the nodes a
metapath reaches, e.g. author -> paper -> venue.

Row ``u`` of the profile counts the paths ``u -> … -> v`` along the metapath for
every end node ``v`` (products of the train graph's CSR matrices, so held-out
pairs are not used), divided by the row sum: the share of ``u``'s paths that end
in ``v``. Above ``max_dim`` end nodes (e.g. user -> note -> user on the fake
data) the profile is reduced by a seeded truncated SVD. No training: a learned
method is only worth its cost where it beats this.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from hgt_cluster_kedro.graph.csr import EdgeType, HeteroCSR

logger = logging.getLogger(__name__)

#: one metapath step: a relation name (``rev_*`` for reverse twins) or several
#: relations between the same two node types, whose counts are summed
Step = str | list[str]


@dataclass
class CountProfile:
    """The profile of every node of the start type.

    Attributes:
        matrix: ``[n, dim]`` ``float32`` embeddings (the profile, or its SVD).
        node_types: node type at each position of the metapath.
        profile_dim: number of end nodes (columns before any reduction).
        nnz: non-zeros of the profile.
        reduced: whether the truncated SVD was applied.
        explained_variance: share of the variance the SVD keeps (``None``
            without reduction).
        empty_rows: start nodes without any path (all-zero rows).
    """

    matrix: np.ndarray
    node_types: list[str]
    profile_dim: int
    nnz: int
    reduced: bool
    explained_variance: float | None
    empty_rows: int


def _edge_type(csr: HeteroCSR, relation: str, src_type: str) -> EdgeType:
    matches = [et for et in csr.edge_types if et[1] == relation]
    if not matches:
        known = sorted({et[1] for et in csr.edge_types})
        raise ValueError(f"metapath: unknown relation {relation!r}; known: {known}")
    et = matches[0]
    if et[0] != src_type:
        here = sorted(e[1] for e in csr.edge_types if e[0] == src_type)
        raise ValueError(
            f"metapath: relation {relation!r} starts at {et[0]!r}, but the path is at "
            f"{src_type!r}; relations from {src_type!r}: {here}"
        )
    return et


def adjacency(csr: HeteroCSR, edge_type: EdgeType) -> sp.csr_matrix:
    """Binary ``scipy`` CSR adjacency of one edge type (rows = sources)."""
    indptr = csr.indptr[edge_type].numpy()
    indices = csr.indices[edge_type].numpy()
    shape = (csr.num_nodes[edge_type[0]], csr.num_nodes[edge_type[2]])
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def metapath_counts(
    csr: HeteroCSR, start_type: str, metapath: list[Step]
) -> tuple[sp.csr_matrix, list[str]]:
    """Path counts ``start_type -> … -> end`` along ``metapath`` (sparse).

    Returns:
        The ``[n_start, n_end]`` count matrix and the node type at each position.

    Raises:
        ValueError: an empty metapath, an unknown relation, or a step that does
            not start where the previous one ended.
    """
    if not metapath:
        raise ValueError("metapath: needs at least one relation")
    counts: sp.csr_matrix | None = None
    types = [start_type]
    for step in metapath:
        names = [step] if isinstance(step, str) else list(step)
        if not names:
            raise ValueError("metapath: a step lists no relation")
        ets = [_edge_type(csr, name, types[-1]) for name in names]
        ends = {et[2] for et in ets}
        if len(ends) != 1:
            raise ValueError(
                f"metapath: the relations {names} of one step end at different "
                f"node types {sorted(ends)}"
            )
        step_matrix = adjacency(csr, ets[0])
        for et in ets[1:]:
            step_matrix = step_matrix + adjacency(csr, et)
        counts = step_matrix if counts is None else counts @ step_matrix
        types.append(ets[0][2])
    assert counts is not None
    return counts.tocsr(), types


def count_profile(
    csr: HeteroCSR,
    start_type: str,
    metapath: list[Step],
    *,
    max_dim: int = 64,
    seed: int = 0,
) -> CountProfile:
    """Row-normalised metapath count profile, reduced by truncated SVD when wide.

    Args:
        csr: the train message-passing graph (with ``rev_*`` relations).
        start_type: node type whose profiles are computed (the user type).
        metapath: relation names, one per hop (a list sums several relations).
        max_dim: above this many end nodes, ``TruncatedSVD(max_dim)`` (seeded).
        seed: seed of the SVD.

    Returns:
        A :class:`CountProfile`.
    """
    if max_dim < 1:
        raise ValueError(f"max_dim must be >= 1, got {max_dim}")
    start = time.perf_counter()
    counts, types = metapath_counts(csr, start_type, metapath)
    sums = np.asarray(counts.sum(axis=1)).ravel()
    empty = int((sums == 0).sum())
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    profile = sp.diags(scale.astype(np.float32)) @ counts
    dim = profile.shape[1]
    explained = None
    if dim > max_dim:
        from sklearn.decomposition import TruncatedSVD

        svd = TruncatedSVD(n_components=max_dim, random_state=seed)
        matrix = svd.fit_transform(profile).astype(np.float32)
        explained = float(svd.explained_variance_ratio_.sum())
    else:
        matrix = np.asarray(profile.todense(), dtype=np.float32)
    logger.info(
        "Count profile %s: %d x %d (%d non-zeros, %d without paths)%s in %.2f s",
        " -> ".join(types),
        profile.shape[0],
        dim,
        profile.nnz,
        empty,
        f", SVD to {max_dim} (explained variance {explained:.3f})"
        if explained is not None
        else "",
        time.perf_counter() - start,
    )
    return CountProfile(
        matrix=matrix,
        node_types=types,
        profile_dim=dim,
        nnz=int(profile.nnz),
        reduced=explained is not None,
        explained_variance=explained,
        empty_rows=empty,
    )
