"""KnownFor: producer communities by Metropolis–Hastings sampling.

SimClusters (Satuluri et al., "SimClusters: Community-Based Representations for
Heterogeneous Recommendations at Twitter", KDD 2020, §3.2) assigns every
producer of the similarity graph to *at most one* of ``k`` communities (a
maximally sparse binary factorisation ``V``) by maximising

    F(Z) = Σ_{i<j, z_i = z_j ≠ ∅} (w_ij − λ)

— the paper's ``α · (similar pairs inside) − (non-similar pairs inside)`` with
weighted edges, written with ``λ = penalty × mean pair similarity`` (``α = 1/λ``)
so one setting fits graphs of any density. Sampling is the paper's
neighbourhood-aware Metropolis–Hastings: each producer, in a seeded random
order, proposes the community of a random neighbour (or, with probability
``p_random``, a uniformly random community or none), and accepts with
probability ``min(1, exp(β · ΔF_i / s_i))`` where ``ΔF_i`` is the change of its
own terms and ``s_i`` its similarity strength. One sweep costs ``O(edges)``;
the sweep is a compiled (numba) kernel.

The KnownFor score of a producer is the share of its similarity that falls in
its community (``W_i(z_i) / s_i`` in ``[0, 1]``).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numba
import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

#: cost of a pair inside a community: ``uniform`` (the paper's non-edge count)
#: or ``degree`` (its expected similarity ``s_i s_j / 2m``, as modularity)
NULL_MODELS = ("uniform", "degree")


@dataclass
class KnownFor:
    """Result of :func:`knownfor`.

    Attributes:
        labels: ``int64 [n_producers]`` community of each producer, ``-1`` none.
        scores: ``float32 [n_producers]`` share of its similarity inside it.
        k: number of communities.
        history: objective and moved producers per epoch, seconds.
    """

    labels: np.ndarray
    scores: np.ndarray
    k: int
    history: dict[str, list[float]] = field(default_factory=dict)

    def matrix(self) -> sp.csr_matrix:
        """KnownFor ``V``: ``[n_producers, k]`` CSR holding the scores."""
        rows = np.flatnonzero(self.labels >= 0)
        return sp.csr_matrix(
            (self.scores[rows], (rows, self.labels[rows])),
            shape=(self.labels.size, self.k),
            dtype=np.float32,
        )


@numba.njit(cache=True, nogil=True)
def _init_neighbors(indptr, indices, k, seed):  # pragma: no cover - compiled
    np.random.seed(seed)
    n = indptr.size - 1
    z = np.full(n, -1, np.int64)
    order = np.random.permutation(n)
    c = 0
    for t in range(n):
        if c == k:
            break
        i = order[t]
        if z[i] >= 0 or indptr[i + 1] == indptr[i]:
            continue
        z[i] = c
        for p in range(indptr[i], indptr[i + 1]):
            if z[indices[p]] < 0:
                z[indices[p]] = c
        c += 1
    return z


@numba.njit(cache=True)
def _objective(  # noqa: PLR0917 - numba has no keyword-only arguments
    indptr, indices, weights, mass, z, k, lam
):  # pragma: no cover - compiled
    inside = 0.0
    total = np.zeros(k, np.float64)
    squares = 0.0
    for i in range(indptr.size - 1):
        if z[i] < 0:
            continue
        total[z[i]] += mass[i]
        squares += mass[i] * mass[i]
        for p in range(indptr[i], indptr[i + 1]):
            if z[indices[p]] == z[i]:
                inside += weights[p]
    pairs = 0.0
    for c in range(k):
        pairs += total[c] * total[c]
    return inside / 2.0 - lam * (pairs - squares) / 2.0


@numba.njit(cache=True, nogil=True)
def _sweeps(  # noqa: PLR0917 - numba has no keyword-only arguments
    indptr,
    indices,
    weights,
    strength,
    mass,
    z,
    k,
    epochs,
    lam,
    beta,
    p_random,
    tol,
    seed,
):  # pragma: no cover - compiled
    np.random.seed(seed)
    n = indptr.size - 1
    size = np.zeros(k, np.float64)  # community mass: producers, or strength
    for i in range(n):
        if z[i] >= 0:
            size[z[i]] += mass[i]
    acc = np.zeros(k, np.float64)
    objective = np.zeros(epochs, np.float64)
    moved_hist = np.zeros(epochs, np.int64)
    run = 0
    for ep in range(epochs):
        order = np.random.permutation(n)
        moved = 0
        for t in range(n):
            i = order[t]
            s, e = indptr[i], indptr[i + 1]
            if e == s:
                continue
            for p in range(s, e):
                c = z[indices[p]]
                if c >= 0:
                    acc[c] += weights[p]
            cur = z[i]
            if np.random.random() < p_random:
                prop = np.random.randint(-1, k)
            else:
                prop = z[indices[s + np.random.randint(0, e - s)]]
            if prop != cur:
                m = mass[i]
                g_cur = 0.0 if cur < 0 else acc[cur] - lam * m * (size[cur] - m)
                g_new = 0.0 if prop < 0 else acc[prop] - lam * m * size[prop]
                delta = (g_new - g_cur) / strength[i]
                if delta >= 0.0 or np.random.random() < np.exp(beta * delta):
                    if cur >= 0:
                        size[cur] -= m
                    if prop >= 0:
                        size[prop] += m
                    z[i] = prop
                    moved += 1
            for p in range(s, e):
                c = z[indices[p]]
                if c >= 0:
                    acc[c] = 0.0
            if cur >= 0:
                acc[cur] = 0.0
        objective[ep] = _objective(indptr, indices, weights, mass, z, k, lam)
        moved_hist[ep] = moved
        run = ep + 1
        if moved < tol * n:
            break
    return objective[:run], moved_hist[:run]


@numba.njit(cache=True)
def _scores(indptr, indices, weights, strength, z):  # pragma: no cover
    n = indptr.size - 1
    out = np.zeros(n, np.float32)
    for i in range(n):
        if z[i] < 0 or strength[i] <= 0.0:
            continue
        inside = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            if z[indices[p]] == z[i]:
                inside += weights[p]
        out[i] = inside / strength[i]
    return out


def _check_graph(sim: sp.csr_matrix) -> sp.csr_matrix:
    sim = sp.csr_matrix(sim, dtype=np.float64)
    if sim.shape[0] != sim.shape[1]:
        raise ValueError(f"similarity graph must be square, got shape {sim.shape}")
    if sim.nnz == 0:
        raise ValueError("similarity graph is empty (simclusters.similarity)")
    if (sim.data < 0).any() or not np.isfinite(sim.data).all():
        raise ValueError("similarity graph weights must be finite and >= 0")
    sim.sort_indices()
    return sim


def knownfor(
    sim: sp.csr_matrix,
    k: int,
    *,
    epochs: int = 30,
    penalty: float = 1.0,
    inverse_temperature: float = 20.0,
    p_random: float = 0.05,
    init: str = "neighbors",
    null_model: str = "uniform",
    tolerance: float = 0.001,
    restarts: int = 1,
    seed: int = 0,
) -> KnownFor:
    """Metropolis–Hastings KnownFor communities of a symmetric similarity graph.

    Args:
        sim: ``[n, n]`` symmetric non-negative similarity graph (no diagonal).
        k: number of communities (``1 <= k <= n``).
        epochs: most sweeps.
        penalty: non-similar-pair cost in units of the mean pair similarity.
        inverse_temperature: ``β`` of the acceptance probability.
        p_random: probability of a uniformly random proposal.
        init: ``neighbors`` or ``random``.
        null_model: ``uniform`` (``λ = penalty ×`` mean pair similarity, every
            pair inside costs ``λ``) or ``degree`` (a pair costs
            ``penalty · s_i s_j / 2m``: the modularity null model, robust to hub
            producers).
        tolerance: stop once fewer than ``tolerance * n`` producers move.
        restarts: independent chains (seeds ``seed``, ``seed + 2``, …); the one
            with the highest final objective is kept.
        seed: random seed (same seed, same result).

    Returns:
        :class:`KnownFor`.
    """
    sim = _check_graph(sim)
    n = sim.shape[0]
    if not 1 <= k <= n:
        raise ValueError(
            f"simclusters.knownfor.k={k} must be in [1, {n}] (number of producers)"
        )
    if init not in ("neighbors", "random"):
        raise ValueError(
            f"simclusters.knownfor.init must be 'neighbors' or 'random', got {init!r}"
        )
    if restarts < 1:
        raise ValueError(f"simclusters.knownfor.restarts must be >= 1, got {restarts}")
    if null_model not in NULL_MODELS:
        raise ValueError(
            f"simclusters.knownfor.null_model must be one of {NULL_MODELS}, "
            f"got {null_model!r}"
        )
    if not 0.0 <= p_random <= 1.0:
        raise ValueError(
            f"simclusters.knownfor.p_random must be in [0, 1], got {p_random}"
        )
    start = time.perf_counter()
    indptr = sim.indptr.astype(np.int64)
    indices = sim.indices.astype(np.int64)
    weights = sim.data.astype(np.float64)
    strength = np.asarray(sim.sum(axis=1)).ravel()
    if null_model == "uniform":  # the paper: every pair inside costs the same
        mass = np.ones(n)
        lam = penalty * weights.sum() / max(n * (n - 1), 1)
    else:  # degree-corrected: a pair costs its expected similarity s_i s_j / 2m
        mass = strength.copy()
        lam = penalty / max(weights.sum(), 1e-30)

    def chain(run: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One seeded chain (its random draws stay in its thread: numba's
        generator is per thread and seeded at the start of each call)."""
        run_seed = seed + 2 * run
        if init == "neighbors":
            z = _init_neighbors(indptr, indices, k, run_seed)
        else:
            rng = np.random.default_rng(run_seed)
            z = rng.integers(0, k, size=n).astype(np.int64)
            z[strength == 0] = -1
        objective, moved = _sweeps(
            indptr,
            indices,
            weights,
            strength,
            mass,
            z,
            k,
            epochs,
            lam,
            float(inverse_temperature),
            float(p_random),
            float(tolerance),
            run_seed + 1,
        )
        return z, objective, moved

    # independent chains on numba's thread budget (compiled without the GIL);
    # results in run order, so the choice is the sequential one
    workers = max(1, min(restarts, numba.get_num_threads()))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        runs = list(pool.map(chain, range(restarts)))
    best = None
    finals = []
    for z, objective, moved in runs:
        finals.append(float(objective[-1]))
        if best is None or finals[-1] > best[0]:
            best = (finals[-1], z, objective, moved)
    _, z, objective, moved = best
    scores = _scores(indptr, indices, weights, strength, z)
    seconds = time.perf_counter() - start
    logger.info(
        "KnownFor (MH): %d producers, k=%d, %d restarts, %d epochs in %.2f s, "
        "%d assigned, objective %.4g",
        n,
        k,
        restarts,
        objective.size,
        seconds,
        int((z >= 0).sum()),
        objective[-1] if objective.size else float("nan"),
    )
    return KnownFor(
        labels=z,
        scores=scores,
        k=k,
        history={
            "objective": objective.tolist(),
            "moved": moved.astype(float).tolist(),
            "seconds": [seconds],
            "penalty_lambda": [lam],
            "restart_objectives": finals,
        },
    )


def modularity(sim: sp.csr_matrix, labels: np.ndarray) -> float:
    """Newman modularity of ``labels`` on the weighted graph ``sim`` (symmetric,
    both directions stored); producers labelled ``-1`` count as singletons."""
    sim = sp.csr_matrix(sim)
    labels = np.asarray(labels, dtype=np.int64)
    two_m = float(sim.data.sum())
    if two_m <= 0:
        return float("nan")
    lab = labels.copy()
    free = lab < 0
    lab[free] = lab.max(initial=-1) + 1 + np.arange(int(free.sum()))
    rows = np.repeat(np.arange(sim.shape[0]), np.diff(sim.indptr))
    same = lab[rows] == lab[sim.indices]
    inside = float(sim.data[same].sum())
    strength = np.asarray(sim.sum(axis=1)).ravel()
    per_comm = np.bincount(lab, weights=strength)
    return inside / two_m - float((per_comm**2).sum()) / two_m**2


def leiden(
    sim: sp.csr_matrix, *, resolution: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Leiden (Traag et al. 2019, ``leidenalg``) on the same similarity graph:
    ``(labels, seconds)``; isolated producers get ``-1``.

    Raises:
        ImportError: ``leidenalg`` / ``igraph`` missing (the ``bench`` extra).
    """
    try:
        import igraph as ig
        import leidenalg
    except ImportError as err:  # pragma: no cover - depends on the extra
        raise ImportError(
            "Leiden needs the 'bench' extra (pip install -e '.[bench]'): "
            "leidenalg and igraph; or set simclusters.knownfor.compare_leiden: false"
        ) from err
    sim = sp.triu(sp.csr_matrix(sim), k=1).tocoo()
    start = time.perf_counter()
    graph = ig.Graph(
        n=sim.shape[0],
        edges=np.column_stack([sim.row, sim.col]).tolist(),
        directed=False,
    )
    part = leidenalg.find_partition(
        graph,
        leidenalg.RBConfigurationVertexPartition,
        weights=sim.data.astype(float).tolist(),
        resolution_parameter=resolution,
        seed=seed,
    )
    labels = np.asarray(part.membership, dtype=np.int64)
    seconds = time.perf_counter() - start
    deg = np.bincount(np.concatenate([sim.row, sim.col]), minlength=sim.shape[0])
    labels[deg == 0] = -1
    return labels, seconds
