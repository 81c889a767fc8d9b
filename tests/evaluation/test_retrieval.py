"""u2u2i retrieval: neighbour search, scoring formula, cluster boost, baselines,
the evaluation entry point and its input checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hgt_cluster_kedro.evaluation import (
    evaluate_u2u2i,
    interactions_csr,
    popularity_recommend,
    random_recommend,
    recommend_from_neighbors,
    top_m_similar,
    u2u2i_recommend,
)


@pytest.fixture(scope="module")
def planted():
    """400 users in 4 communities; each community prefers its own 30 items."""
    rng = np.random.default_rng(0)
    n_users, n_items, n_comm, d = 400, 120, 4, 16
    comm = np.arange(n_users) % n_comm
    centers = rng.normal(size=(n_comm, d)) * 2
    emb = (centers[comm] + rng.normal(size=(n_users, d))).astype(np.float32)
    user = np.repeat(np.arange(n_users), 12)
    own = comm[user] * 30 + rng.integers(0, 30, user.size)
    item = np.where(
        rng.random(user.size) < 0.8, own, rng.integers(0, n_items, user.size)
    )
    pairs = np.unique(np.stack([user, item], 1), axis=0)
    test = rng.random(len(pairs)) < 0.25
    return {
        "emb": emb,
        "comm": comm,
        "n_items": n_items,
        "train": (pairs[~test, 0], pairs[~test, 1]),
        "test": (pairs[test, 0], pairs[test, 1]),
    }


def _brute_neighbors(emb, query, m, metric):
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True) if metric == "cosine" else emb
    s = x[query] @ x.T
    s[np.arange(query.size), query] = -np.inf
    idx = np.argsort(-s, axis=1, kind="stable")[:, :m]
    return idx, np.take_along_axis(s, idx, 1)


@pytest.mark.parametrize("metric", ["cosine", "dot"])
@pytest.mark.parametrize(
    ("precision", "overfetch"), [("fp32", None), ("bf16", None), ("bf16", 1)]
)
def test_exact_search_matches_bruteforce(planted, metric, precision, overfetch):
    """bf16 screening is verified and redone where unproven (overfetch=1 forces
    many redos): the same neighbours as float32."""
    emb = planted["emb"]
    query = np.array([0, 5, 399, 17, 5])
    nbr, sim = top_m_similar(
        emb,
        query,
        7,
        metric=metric,
        backend="exact",
        chunk_size=2,
        precision=precision,
        overfetch=overfetch,
    )
    ref_idx, ref_sim = _brute_neighbors(emb, query, 7, metric)
    np.testing.assert_allclose(sim, ref_sim, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(nbr, ref_idx)
    assert nbr.dtype == np.int64 and sim.dtype == np.float32
    assert not (nbr == query[:, None]).any()


def test_faiss_flat_equals_exact_and_ann_is_close(planted):
    emb = planted["emb"]
    exact, s_exact = top_m_similar(emb, None, 10, backend="exact")
    flat, s_flat = top_m_similar(emb, None, 10, backend="faiss", faiss_index="flat")
    np.testing.assert_allclose(s_flat, s_exact, atol=1e-4)
    assert (np.sort(flat, 1) == np.sort(exact, 1)).mean() > 0.99
    for kind in ("hnsw", "ivf"):
        ann, _ = top_m_similar(
            emb, None, 10, backend="faiss", faiss_index=kind, ivf_nlist=8, ivf_nprobe=4
        )
        recall = np.mean(
            [len(set(a) & set(b)) / 10 for a, b in zip(ann, exact, strict=True)]
        )
        assert recall > 0.9, kind
    auto, _ = top_m_similar(emb, None, 10, backend="auto", faiss_threshold=100)
    assert (np.sort(auto, 1) == np.sort(exact, 1)).mean() > 0.99


def _brute_u2u2i(nbr, sims, query, train_pairs, *, n_items, k, labels, beta):
    own = {}
    for u, i in zip(*train_pairs, strict=True):
        own.setdefault(int(u), set()).add(int(i))
    items, scores = [], []
    for q, nb, sm in zip(query, nbr, sims, strict=True):
        acc = np.zeros(n_items)
        for v, s in zip(nb, sm, strict=True):
            w = max(float(s), 0.0)
            if labels is not None and labels[v] == labels[q]:
                w *= 1.0 + beta
            for i in own.get(int(v), ()):
                acc[i] += w
        for i in own.get(int(q), ()):
            acc[i] = 0.0
        order = [i for i in np.argsort(-acc, kind="stable") if acc[i] > 0][:k]
        items.append(order + [-1] * (k - len(order)))
        scores.append(acc[order])
    return np.array(items), scores


@pytest.mark.parametrize("beta", [0.0, 0.7])
def test_u2u2i_matches_bruteforce(planted, beta):
    emb, n_items, train = planted["emb"], planted["n_items"], planted["train"]
    query = np.arange(0, 400, 37)
    labels = planted["comm"] if beta else None
    recs = u2u2i_recommend(
        emb,
        *train,
        n_items,
        query,
        m_neighbors=15,
        k=20,
        backend="exact",
        cluster_labels=labels,
        cluster_boost=beta,
        chunk_size=3,
    )
    nbr, sims = top_m_similar(emb, query, 15, backend="exact")
    ref_items, ref_scores = _brute_u2u2i(
        nbr, sims, query, train, n_items=n_items, k=20, labels=labels, beta=beta
    )
    for row, (got, ref, ref_s) in enumerate(
        zip(recs.items, ref_items, ref_scores, strict=True)
    ):
        n = len(ref_s)
        np.testing.assert_allclose(recs.scores[row, :n], ref_s, rtol=1e-5)
        assert set(got[:n]) == set(ref[:n])  # ties may come in another order
        assert (got[n:] == -1).all() and np.isneginf(recs.scores[row, n:]).all()
    own = interactions_csr(*train, 400, n_items)
    assert not any(
        own[q, i]
        for q, row in zip(query, recs.items, strict=True)
        for i in row
        if i >= 0
    )


def test_cluster_boost_formula_by_hand():
    # query 0 has neighbours 1 (sim .5, other cluster) and 2 (sim .4, same cluster)
    train = interactions_csr([1, 2], [10, 20], n_users=3, n_items=30)
    nbr = np.array([[1, 2]])
    sims = np.array([[0.5, 0.4]], dtype=np.float32)
    q = np.array([0])
    plain = recommend_from_neighbors(nbr, sims, q, train, 2)
    assert plain.items.tolist() == [[10, 20]]
    boosted = recommend_from_neighbors(
        nbr, sims, q, train, 2, cluster_labels=np.array([7, 3, 7]), cluster_boost=0.5
    )
    assert boosted.items.tolist() == [[20, 10]]  # 0.4 * 1.5 = 0.6 > 0.5
    np.testing.assert_allclose(boosted.scores, [[0.6, 0.5]], rtol=1e-6)
    noise = recommend_from_neighbors(  # negative labels never match
        nbr, sims, q, train, 2, cluster_labels=np.array([-1, 3, -1]), cluster_boost=0.5
    )
    assert noise.items.tolist() == [[10, 20]]


def test_negative_similarities_are_clipped():
    train = interactions_csr([1, 2], [4, 5], n_users=3, n_items=6)
    nbr, q = np.array([[1, 2]]), np.array([0])
    sims = np.array([[0.3, -0.2]], dtype=np.float32)
    clipped = recommend_from_neighbors(nbr, sims, q, train, 3)
    assert clipped.items.tolist() == [[4, -1, -1]]
    signed = recommend_from_neighbors(nbr, sims, q, train, 3, clip_negative=False)
    assert signed.items.tolist() == [[4, 5, -1]]
    np.testing.assert_allclose(signed.scores[0, :2], [0.3, -0.2])


def test_baselines(planted):
    train, n_items = planted["train"], planted["n_items"]
    query = np.arange(0, 400, 3)
    own = interactions_csr(*train, 400, n_items)
    pop = popularity_recommend(*train, n_items, query, 25, n_users=400)
    counts = np.diff(own.tocsc().indptr)
    assert (np.diff(pop.scores, axis=1) <= 0).all()  # popularity descending
    np.testing.assert_array_equal(pop.scores, counts[pop.items])
    a = random_recommend(*train, n_items, query, 25, seed=3, n_users=400)
    b = random_recommend(*train, n_items, query, 25, seed=3, n_users=400)
    c = random_recommend(*train, n_items, query, 25, seed=4, n_users=400)
    np.testing.assert_array_equal(a.items, b.items)
    assert not np.array_equal(a.items, c.items)
    for recs in (pop, a):
        assert recs.items.shape == (query.size, 25) and (recs.items >= 0).all()
        assert all(len(set(r)) == 25 for r in recs.items)
        assert not any(
            own[q, i] for q, r in zip(query, recs.items, strict=True) for i in r
        )
    few = random_recommend([0, 0], [0, 1], 4, [0, 1], 3, n_users=2)
    assert sorted(few.items[0][:2]) == [2, 3] and few.items[0][2] == -1
    assert len(set(few.items[1])) == 3 and (few.items[1] >= 0).all()


def test_popularity_does_not_depend_on_blocks(planted):
    train, n_items = planted["train"], planted["n_items"]
    query = np.arange(399, -1, -2)  # unsorted
    one = popularity_recommend(*train, n_items, query, 30, n_users=400)
    tiny = popularity_recommend(*train, n_items, query, 30, n_users=400, chunk_size=7)
    np.testing.assert_array_equal(one.items, tiny.items)
    np.testing.assert_array_equal(one.scores, tiny.scores)


def test_random_is_uniform_over_allowed_items_next_to_a_heavy_user():
    """User 0 owns 5 of 20 items, user 1 owns 18 (it blocks with light users
    no more): each of user 0's 15 allowed items is drawn with probability
    5 / 15; user 1 gets its 2 allowed items and padding."""
    users = [0] * 5 + [1] * 18
    items = list(range(5)) + list(range(18))
    counts = np.zeros(20)
    for seed in range(300):
        recs = random_recommend(users, items, 20, [0, 1], 5, seed=seed, n_users=2)
        assert len(set(recs.items[0])) == 5 and recs.items[0].min() >= 5
        assert sorted(recs.items[1][:2]) == [18, 19]
        assert (recs.items[1][2:] == -1).all()
        counts[recs.items[0]] += 1
    assert counts[:5].sum() == 0
    # expected 100 each (binomial sd 8.2): within 4 sd
    assert np.abs(counts[5:] - 100).max() < 33


def test_evaluate_u2u2i_reports_and_beats_baselines(planted):
    p = planted
    res = evaluate_u2u2i(
        p["emb"],
        p["train"],
        p["test"],
        p["n_items"],
        ks=(5, 20),
        m_neighbors=20,
        cluster_labels=p["comm"],
        cluster_boost=1.0,
        baselines=("popularity", "random"),
    )
    for key in (
        "recall@5",
        "ndcg@20",
        "hitrate@20",
        "recall@20_boost",
        "recall@20_boost_delta",
        "popularity/recall@20",
        "random/ndcg@5",
        "seconds_search",
        "seconds_total",
        "n_query_users",
        "n_test_pairs",
    ):
        assert key in res, key
    assert res["backend"] == "exact" and res["k"] == 20
    assert res["recall@20_boost_delta"] == pytest.approx(
        res["recall@20_boost"] - res["recall@20"]
    )
    assert res["recall@20"] > 2 * res["popularity/recall@20"]
    assert res["recall@20"] > 2 * res["random/recall@20"]
    faiss_res = evaluate_u2u2i(
        p["emb"],
        p["train"],
        p["test"],
        p["n_items"],
        ks=(5, 20),
        m_neighbors=20,
        backend="faiss",
    )
    assert faiss_res["recall@20"] == pytest.approx(res["recall@20"], abs=0.01)


def test_test_pairs_in_train_are_dropped(planted):
    p = planted
    tr_u, tr_i = p["train"]
    te = (np.r_[p["test"][0], tr_u[:5]], np.r_[p["test"][1], tr_i[:5]])
    res = evaluate_u2u2i(p["emb"], p["train"], te, p["n_items"], ks=(10,))
    assert res["n_test_in_train"] == 5
    assert res["n_test_pairs"] == len(p["test"][0])


def test_input_errors(planted):
    p = planted
    emb, train, test, n_items = p["emb"], p["train"], p["test"], p["n_items"]
    bad = emb.copy()
    bad[[3, 250]] = np.nan
    with pytest.raises(ValueError, match=r"2 rows with NaN/inf, e.g. users \[3, 250\]"):
        evaluate_u2u2i(bad, train, test, n_items)
    keep = train[0] < 300  # embeddings for 300 users, test ids up to 399
    with pytest.raises(
        ValueError, match=r"test user \(n_users=300.* outside \[0, 300\)"
    ):
        evaluate_u2u2i(emb[:300], (train[0][keep], train[1][keep]), test, n_items)
    with pytest.raises(ValueError, match="test is empty"):
        evaluate_u2u2i(emb, train, (np.array([], int), np.array([], int)), n_items)
    with pytest.raises(ValueError, match=r"k in ks must be a positive integer"):
        evaluate_u2u2i(emb, train, test, n_items, ks=(0, 10))
    with pytest.raises(ValueError, match=r"m_neighbors must be a positive integer"):
        evaluate_u2u2i(emb, train, test, n_items, m_neighbors=0)
    with pytest.raises(ValueError, match=r"k must be a positive integer"):
        u2u2i_recommend(emb, *train, n_items, k=-1)
    with pytest.raises(ValueError, match=r"m=400 neighbours but only 399"):
        top_m_similar(emb, None, 400)
    with pytest.raises(ValueError, match="backend must be one of"):
        top_m_similar(emb, None, 5, backend="annoy")
    with pytest.raises(ValueError, match=r"cluster_labels has shape \(3,\)"):
        evaluate_u2u2i(emb, train, test, n_items, cluster_labels=np.zeros(3, int))


def test_rows_without_candidates_are_padded():
    train = interactions_csr([1], [2], n_users=4, n_items=5)
    nbr = np.array([[1, 2], [2, 3], [3, 2]])  # users 2 and 3 have no train items
    sims = np.full((3, 2), 0.9, dtype=np.float32)
    recs = recommend_from_neighbors(nbr, sims, np.array([0, 1, 2]), train, 2)
    assert recs.items.tolist() == [[2, -1], [-1, -1], [-1, -1]]
    assert np.isneginf(recs.scores[1:]).all()


def test_in_train_shared_candidates_equal_the_general_search():
    from hgt_cluster_kedro.evaluation.retrieval import _in_train

    rng = np.random.default_rng(0)
    train = sp.random(50, 40, density=0.2, format="csr", random_state=1).astype(bool)
    q = rng.permutation(50)[:30]
    ranked = rng.permutation(40)[:25]
    shared = np.broadcast_to(ranked, (q.size, ranked.size))  # the fast path
    general = np.ascontiguousarray(shared)
    np.testing.assert_array_equal(
        _in_train(train, q, shared), _in_train(train, q, general)
    )
    assert _in_train(train, q, shared).any()
    repeated = np.broadcast_to(np.r_[ranked, ranked[:3]], (q.size, 28))  # duplicates
    np.testing.assert_array_equal(
        _in_train(train, q, repeated),
        _in_train(train, q, np.ascontiguousarray(repeated)),
    )
