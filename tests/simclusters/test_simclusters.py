"""SimClusters domain code on tiny planted graphs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import normalized_mutual_info_score

from hgt_cluster_kedro.simclusters import (
    SimClustersConfig,
    interested_in,
    item_embeddings,
    knownfor,
    modularity,
    producer_embeddings,
    producer_similarity,
    top_community,
    top_n_per_row,
    u2i_recommend,
)


def planted(
    *,
    n_users: int = 600,
    n_producers: int = 240,
    k: int = 4,
    per_user: int = 15,
    p_in: float = 0.85,
    seed: int = 0,
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Follow matrix with ``k`` planted communities: ``(A, user_comm, prod_comm)``."""
    rng = np.random.default_rng(seed)
    user_comm = rng.integers(0, k, n_users)
    prod_comm = np.arange(n_producers) % k
    by_comm = [np.flatnonzero(prod_comm == c) for c in range(k)]
    rows, cols = [], []
    for u in range(n_users):
        inside = rng.random(per_user) < p_in
        own = rng.choice(by_comm[user_comm[u]], inside.sum())
        other = rng.integers(0, n_producers, (~inside).sum())
        picked = np.unique(np.concatenate([own, other]))
        rows += [u] * picked.size
        cols += picked.tolist()
    a = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_producers)
    )
    return a, user_comm, prod_comm


@pytest.fixture(scope="module")
def graph():
    return planted()


def test_similarity_is_cosine_top_n_symmetric(graph):
    a, _, _ = graph
    sim = producer_similarity(a, top_n=10, threshold=0.05)
    assert (abs(sim - sim.T) > 1e-6).nnz == 0
    assert sim.diagonal().sum() == 0
    # every kept value is the exact cosine of the two consumer sets
    dense = a.toarray()
    r, c = sim.nonzero()
    norms = np.linalg.norm(dense, axis=0)
    cos = (dense[:, r] * dense[:, c]).sum(0) / (norms[r] * norms[c])
    np.testing.assert_allclose(sim[r, c].A1, cos, rtol=1e-5)
    assert sim.data.min() >= 0.05
    # each producer's own 10 best neighbours are kept (plus those choosing it)
    full = dense.T @ dense / np.outer(norms, norms)
    np.fill_diagonal(full, 0.0)
    best = np.argsort(-full, axis=1, kind="stable")[:, :9]
    assert (sim.toarray()[np.arange(full.shape[0])[:, None], best] > 0).all()
    assert sim.nnz < full.size / 5


def test_top_n_per_row_keeps_largest():
    m = sp.csr_matrix(np.array([[0.1, 0.5, 0.3, 0.0], [0.2, 0.0, 0.0, 0.9]]))
    out = top_n_per_row(m, 2).toarray()
    np.testing.assert_allclose(out, [[0, 0.5, 0.3, 0], [0.2, 0, 0, 0.9]])


def _top_n_reference(mat: sp.csr_matrix, n: int) -> np.ndarray:
    """Dense: per row the n largest stored entries, ties to the smaller column."""
    mat = sp.csr_matrix(mat).sorted_indices()
    out = np.zeros(mat.shape)
    for r in range(mat.shape[0]):
        cols = mat.indices[mat.indptr[r] : mat.indptr[r + 1]]
        vals = mat.data[mat.indptr[r] : mat.indptr[r + 1]]
        for j in np.lexsort((cols, -vals))[:n]:
            out[r, cols[j]] = vals[j]
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_top_n_per_row_equals_a_reference_with_ties_and_empty_rows(n):
    rng = np.random.default_rng(n)
    dense = rng.integers(0, 4, size=(40, 12)).astype(np.float32)  # many ties
    dense[rng.random(dense.shape) < 0.4] = 0
    dense[[5, 38, 39]] = 0  # empty rows, the last two included
    mat = sp.csr_matrix(dense)
    shuffled = sp.csr_matrix(mat.copy())  # same entries, columns out of order
    for r in range(shuffled.shape[0]):
        lo, hi = shuffled.indptr[r], shuffled.indptr[r + 1]
        perm = lo + rng.permutation(hi - lo)
        shuffled.indices[lo:hi] = shuffled.indices[perm]
        shuffled.data[lo:hi] = shuffled.data[perm]
    shuffled.has_sorted_indices = False
    want = _top_n_reference(mat, n)
    for given in (mat, shuffled):
        out = top_n_per_row(given, n)
        np.testing.assert_array_equal(out.toarray(), want)
        assert out.has_sorted_indices and (out.getnnz(axis=1) <= n).all()


def test_knownfor_recovers_planted_communities(graph):
    a, _, prod_comm = graph
    sim = producer_similarity(a, top_n=20, threshold=0.0)
    kf = knownfor(sim, 4, epochs=30, seed=3)
    assert kf.labels.max() < 4
    assert (kf.labels >= 0).mean() > 0.95
    assert normalized_mutual_info_score(prod_comm, kf.labels) > 0.9
    assert modularity(sim, kf.labels) > modularity(sim, np.zeros_like(kf.labels))
    v = kf.matrix()
    assert v.shape == (a.shape[1], 4) and (v.getnnz(axis=1) <= 1).all()
    assert 0.0 <= kf.scores.min() and kf.scores.max() <= 1.0


def test_knownfor_is_seeded(graph):
    a, _, _ = graph
    sim = producer_similarity(a, top_n=20)
    one, two = knownfor(sim, 4, seed=5), knownfor(sim, 4, seed=5)
    np.testing.assert_array_equal(one.labels, two.labels)
    assert one.history["objective"] == two.history["objective"]


def test_knownfor_random_init_also_recovers(graph):
    a, _, prod_comm = graph
    sim = producer_similarity(a, top_n=20)
    kf = knownfor(sim, 4, epochs=40, init="random", seed=1)
    assert normalized_mutual_info_score(prod_comm, kf.labels) > 0.8


def test_interested_in_recovers_users_and_is_sparse(graph):
    a, user_comm, _ = graph
    kf = knownfor(producer_similarity(a, top_n=20), 4, seed=3)
    u = interested_in(a, kf.matrix(), top_m=2, min_score=0.1, block_rows=128)
    assert u.shape == (a.shape[0], 4)
    assert u.getnnz(axis=1).max() <= 2
    assert u.data.min() >= 0.1
    labels = top_community(u)
    assert normalized_mutual_info_score(user_comm, labels) > 0.8


def test_interested_in_dask_equals_local(graph):
    distributed = pytest.importorskip("distributed")
    a, _, _ = graph
    v = knownfor(producer_similarity(a, top_n=20), 4, seed=3).matrix()
    local = interested_in(a, v, top_m=3, min_score=0.05, block_rows=100)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = interested_in(
            a, v, top_m=3, min_score=0.05, block_rows=100, client=client
        )
    assert (local != remote).nnz == 0
    np.testing.assert_array_equal(local.indptr, remote.indptr)
    np.testing.assert_array_equal(local.indices, remote.indices)
    np.testing.assert_array_equal(local.data, remote.data)


def test_top_community_ties_and_empty_rows():
    u = sp.csr_matrix(np.array([[0.2, 0.5, 0.5], [0, 0, 0], [0.9, 0.1, 0]]))
    np.testing.assert_array_equal(top_community(u), [1, -1, 0])


def test_embeddings_and_u2i(graph):
    a, user_comm, prod_comm = graph
    kf = knownfor(producer_similarity(a, top_n=20), 4, seed=3)
    u = interested_in(a, kf.matrix(), top_m=2, min_score=0.1)
    prod = producer_embeddings(a, u, top_m=2)
    assert prod.shape == (a.shape[1], 4) and prod.getnnz(axis=1).max() <= 2
    assert prod.data.max() <= 1.0 + 1e-6
    # a producer's strongest community is its KnownFor one
    agree = top_community(prod) == kf.labels
    assert agree[kf.labels >= 0].mean() > 0.9
    items = item_embeddings(a, u, top_m=3)
    assert items.getnnz(axis=1).max() <= 3
    rec, scores = u2i_recommend(u, items, a, np.arange(50), 10, items_per_cluster=40)
    assert rec.shape == (50, 10)
    # never the user's own train items, and items of the user's community first
    own = a[np.arange(50)].toarray().astype(bool)
    assert not own[np.arange(50)[:, None], np.maximum(rec, 0)][rec >= 0].any()
    in_comm = (
        prod_comm[rec[rec >= 0]] == np.repeat(user_comm[:50], 10)[rec.ravel() >= 0]
    )
    assert in_comm.mean() > 0.8
    assert (np.diff(scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        (("similarity", "threshold"), 1.5, "simclusters.similarity.threshold"),
        (("similarity", "threshold"), -0.1, "simclusters.similarity.threshold"),
        (("interested_in", "min_score"), 2.0, "simclusters.interested_in.min_score"),
        (("knownfor", "k"), 0, "simclusters.knownfor.k"),
        (
            ("knownfor", "compare_leiden"),
            "maybe",
            "simclusters.knownfor.compare_leiden",
        ),
    ],
)
def test_config_names_bad_parameter(path, value, needle):
    params = {"follow_relation": "f", "engagement_relations": ["f"]}
    params[path[0]] = {path[1]: value}
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        SimClustersConfig.parse(params)


def test_empty_similarity_graph_is_an_error():
    a = sp.identity(5, format="csr", dtype=np.float32)  # no shared consumers
    with pytest.raises(ValueError, match="similarity graph is empty"):
        producer_similarity(a, threshold=0.5)


def test_k_larger_than_producers_is_an_error(graph):
    a, _, _ = graph
    sim = producer_similarity(a, top_n=5)
    with pytest.raises(ValueError, match=r"simclusters\.knownfor\.k"):
        knownfor(sim, a.shape[1] + 1)


def test_knownfor_degree_null_model_and_restarts(graph):
    a, _, prod_comm = graph
    sim = producer_similarity(a, top_n=20)
    one = knownfor(sim, 4, null_model="degree", seed=2)
    best = knownfor(sim, 4, null_model="degree", restarts=3, seed=2)
    assert normalized_mutual_info_score(prod_comm, best.labels) > 0.9
    # the first chain of the restarts is the single run; the best is kept
    assert best.history["restart_objectives"][0] == one.history["objective"][-1]
    assert best.history["objective"][-1] == max(best.history["restart_objectives"])
    with pytest.raises(ValueError, match="null_model"):
        knownfor(sim, 4, null_model="cosine")


def test_knownfor_chains_on_threads_equal_the_chains_one_by_one(graph):
    import numba

    a, _, _ = graph
    sim = producer_similarity(a, top_n=20)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = knownfor(sim, 4, restarts=4, seed=5, epochs=5)
    finally:
        numba.set_num_threads(threads)
    parallel = knownfor(sim, 4, restarts=4, seed=5, epochs=5)
    assert (
        parallel.history["restart_objectives"] == serial.history["restart_objectives"]
    )
    np.testing.assert_array_equal(parallel.labels, serial.labels)
    # chain r is the single run with seed + 2 r
    third = knownfor(sim, 4, seed=9, epochs=5)
    assert serial.history["restart_objectives"][2] == third.history["objective"][-1]


def test_similarity_kernels_agree(graph):
    a, _, _ = graph
    for kwargs in ({"top_n": 7, "threshold": 0.0}, {"top_n": 30, "threshold": 0.1}):
        fast = producer_similarity(a, kernel="numba", **kwargs)
        ref = producer_similarity(a, kernel="scipy", block_producers=50, **kwargs)
        assert (fast != ref).nnz == 0 or abs(fast - ref).max() < 1e-6
        np.testing.assert_array_equal(fast.indptr, ref.indptr)
        np.testing.assert_array_equal(fast.indices, ref.indices)
