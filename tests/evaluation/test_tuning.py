"""The u2u2i channel tuned on the validation split: the popularity prior against
a dense reference, the grid choice, that test pairs never move it, and that
one neighbour search serves the plain, boosted and tuned channels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hgt_cluster_kedro.evaluation import (
    evaluate_u2u2i,
    interactions_csr,
    neighbor_rows,
    ranking_metrics,
    recommend_from_neighbors,
    relevant_csr,
    retrieval,
    top_m_similar,
    tuning,
)
from hgt_cluster_kedro.evaluation.retrieval import outside_train
from hgt_cluster_kedro.evaluation.tuning import (
    check_grid,
    choose_u2u2i,
    tuned_u2u2i,
    validation_queries,
)


@pytest.fixture(scope="module")
def data():
    """300 users in 3 communities over 90 items, a popular head of 10 items."""
    rng = np.random.default_rng(1)
    n_users, n_items, d = 300, 90, 8
    comm = np.arange(n_users) % 3
    emb = (rng.normal(size=(3, d))[comm] * 2 + rng.normal(size=(n_users, d))).astype(
        np.float32
    )
    user = np.repeat(np.arange(n_users), 10)
    head = rng.random(user.size) < 0.4
    item = np.where(
        head,
        rng.integers(0, 10, user.size),
        10 + comm[user] * 25 + rng.integers(0, 25, user.size),
    )
    pairs = np.unique(np.stack([user, item], 1), axis=0)
    part = rng.random(len(pairs))
    split = {
        "train": pairs[part < 0.6],
        "valid": pairs[(part >= 0.6) & (part < 0.8)],
        "test": pairs[part >= 0.8],
    }
    return {
        "emb": emb,
        "n_items": n_items,
        **{k: (v[:, 0], v[:, 1]) for k, v in split.items()},
    }


def _dense_reference(nbr, sims, query, train, *, k, w):
    """``(1 - w) * score / row max + w * pop / max pop`` over every item (the
    plain sum of neighbour similarities when ``w = 0``)."""
    dense = train.toarray().astype(np.float64)
    pop = dense.sum(0)
    out = []
    for row, u in enumerate(query):
        score = np.maximum(sims[row], 0) @ dense[nbr[row]]
        top = score.max()
        if w > 0:
            score = (1 - w) * score / (top if top > 0 else 1.0) + w * pop / pop.max()
        score[dense[u] > 0] = -np.inf  # own train items
        score[score <= 0] = -np.inf  # nothing to recommend
        out.append(np.sort(score)[::-1][:k])
    return np.array(out)


@pytest.mark.parametrize("w", [0.0, 0.2, 0.7])
def test_popularity_prior_matches_a_dense_reference(data, w):
    """Scores of the sparse, candidate-restricted prior equal the dense formula
    over all items (so the k + |own| most popular are enough candidates)."""
    n_users = data["emb"].shape[0]
    train = interactions_csr(*data["train"], n_users, data["n_items"])
    query = np.arange(0, n_users, 7)
    nbr, sims = top_m_similar(data["emb"], query, 15, backend="exact")
    recs = recommend_from_neighbors(
        nbr, sims, query, train, 30, popularity_weight=w, chunk_size=16
    )
    ref = _dense_reference(nbr, sims, query, train, k=30, w=w)
    got = np.where(recs.items >= 0, recs.scores, -np.inf)
    np.testing.assert_allclose(got, ref.astype(np.float32), rtol=1e-5, atol=1e-6)
    own = train[query].toarray()
    hit = np.take_along_axis(own, np.maximum(recs.items, 0), 1) > 0
    assert not (hit & (recs.items >= 0)).any()  # never a train item


def test_no_prior_is_the_plain_channel(data):
    n_users = data["emb"].shape[0]
    train = interactions_csr(*data["train"], n_users, data["n_items"])
    query = np.arange(n_users)
    nbr, sims = top_m_similar(data["emb"], query, 20, backend="exact")
    a = recommend_from_neighbors(nbr, sims, query, train, 25)
    b = recommend_from_neighbors(nbr, sims, query, train, 25, popularity_weight=0.0)
    np.testing.assert_array_equal(a.items, b.items)


def test_choice_is_the_best_valid_recall_of_the_grid(data):
    n_users = data["emb"].shape[0]
    train = interactions_csr(*data["train"], n_users, data["n_items"])
    rel = relevant_csr(*data["valid"], n_users, data["n_items"])
    rel = (rel.astype(np.int8) - rel.multiply(train).astype(np.int8)).astype(bool)
    rel.eliminate_zeros()
    query = np.flatnonzero(np.diff(rel.indptr) > 0)
    nbr, sims = top_m_similar(data["emb"], query, 40, backend="exact")
    m, w, grid = choose_u2u2i(
        nbr, sims, query, train, rel[query], m_grid=[5, 40], weight_grid=[0, 0.5]
    )
    assert set(grid) == {"m=5,w=0", "m=5,w=0.5", "m=40,w=0", "m=40,w=0.5"}
    assert grid[f"m={m},w={w:g}"] == max(grid.values())
    # each value is the recall of that setting, computed directly
    recs = recommend_from_neighbors(
        nbr[:, :5], sims[:, :5], query, train, 50, popularity_weight=0.5
    )
    direct = ranking_metrics(recs.items, rel[query], (50,))["recall@50"]
    assert grid["m=5,w=0.5"] == pytest.approx(direct)
    # the popular head carries 40 % of the pairs: the prior helps at m = 5
    assert grid["m=5,w=0.5"] > grid["m=5,w=0"]
    with pytest.raises(ValueError, match="grid needs 80"):
        choose_u2u2i(nbr, sims, query, train, rel[query], m_grid=[80], weight_grid=[0])


def test_tuned_channel_never_looks_at_test_pairs(data):
    """Two different test splits: the same (m, w) and validation grid; the
    tuned test recall is at least the plain one's where the choice is m = 50,
    w = 0 (it is in the grid)."""
    tuning = {"m_grid": [10, 50], "popularity_weights": [0.0, 0.3], "select_k": 20}
    common = {"ks": (10, 20), "m_neighbors": 50, "backend": "exact"}
    a = evaluate_u2u2i(
        data["emb"],
        data["train"],
        data["test"],
        data["n_items"],
        valid=data["valid"],
        tuning=tuning,
        **common,
    )
    other = (data["test"][0][::2], data["test"][1][::2])
    b = evaluate_u2u2i(
        data["emb"],
        data["train"],
        other,
        data["n_items"],
        valid=data["valid"],
        tuning=tuning,
        **common,
    )
    ta, tb = a["tuned"], b["tuned"]
    assert (ta["m_neighbors"], ta["popularity_weight"]) == (
        tb["m_neighbors"],
        tb["popularity_weight"],
    )
    assert ta["valid_recall"] == tb["valid_recall"]
    assert ta["n_valid_users"] > 0 and set(ta) >= {"recall@10", "ndcg@20"}
    if (ta["m_neighbors"], ta["popularity_weight"]) == (50, 0.0):
        assert ta["recall@20"] == pytest.approx(a["recall@20"])
    with pytest.raises(ValueError, match="validation pairs"):
        evaluate_u2u2i(
            data["emb"],
            data["train"],
            data["test"],
            data["n_items"],
            tuning=tuning,
            **common,
        )


@pytest.mark.parametrize(
    ("m_grid", "weights", "match"),
    [
        ([], [0.0], "at least one"),
        ([0, 5], [0.0], "positive integers"),
        ([5], [1.0], r"in \[0, 1\)"),
        ([5], [-0.1], r"in \[0, 1\)"),
    ],
)
def test_bad_grids_are_refused(m_grid, weights, match):
    with pytest.raises(ValueError, match=match):
        check_grid(m_grid, weights)


def test_prior_weight_is_checked(data):
    n_users = data["emb"].shape[0]
    train = interactions_csr(*data["train"], n_users, data["n_items"])
    nbr, sims = top_m_similar(data["emb"], np.arange(3), 5, backend="exact")
    with pytest.raises(ValueError, match="popularity_weight must be in"):
        recommend_from_neighbors(
            nbr, sims, np.arange(3), train, 5, popularity_weight=1.0
        )


def test_grid_beyond_the_number_of_users_is_capped(data):
    """m larger than the other users (a tiny graph) means all of them."""
    small = (data["train"][0] < 30, data["valid"][0] < 30, data["test"][0] < 30)
    pick = [
        tuple(a[mask] for a in pairs)
        for pairs, mask in zip(
            (data["train"], data["valid"], data["test"]), small, strict=True
        )
    ]
    out = evaluate_u2u2i(
        data["emb"][:30],
        pick[0],
        pick[2],
        data["n_items"],
        ks=(10,),
        backend="exact",
        m_neighbors=10,
        valid=pick[1],
        tuning={"m_grid": [10, 200], "popularity_weights": [0.0], "select_k": 10},
    )
    assert set(out["tuned"]["valid_recall"]) == {"m=10,w=0", "m=29,w=0"}


def test_prefix_of_a_wider_search_is_the_narrower_search(data):
    """Without tied similarities (continuous embeddings, float32 search), the
    first m neighbours of a top-40 search of a superset of users are the
    top-m search of the query users; users not searched are refused."""
    emb, users = data["emb"], np.arange(0, 300, 2)
    wide = top_m_similar(emb, users, 40, backend="exact", precision="fp32")
    assert (np.diff(wide[1], axis=1) < 0).all()  # no ties: the claim is exact
    query = np.array([298, 0, 14, 14, 100])  # any order, repeats
    for m in (1, 7, 40):
        nbr, sims = neighbor_rows((users, *wide), query, m)
        direct = top_m_similar(emb, query, m, backend="exact", precision="fp32")
        np.testing.assert_array_equal(nbr, direct[0])
        np.testing.assert_array_equal(sims, direct[1])
    with pytest.raises(ValueError, match="lack 1 query users"):
        neighbor_rows((users, *wide), np.array([0, 3]), 5)
    with pytest.raises(ValueError, match="m=41"):
        neighbor_rows((users, *wide), query, 41)


def test_one_search_serves_every_channel(data, monkeypatch):
    """evaluate_u2u2i with tuning searches once (test and validation users, the
    largest m needed), and its plain, boosted and tuned outputs equal the
    channels searched separately (no tied similarities in this data)."""
    real = retrieval.top_m_similar
    calls = []

    def counting(emb, query, m, **kwargs):
        calls.append(m)
        return real(emb, query, m, **kwargs)

    monkeypatch.setattr(retrieval, "top_m_similar", counting)
    monkeypatch.setattr(tuning, "top_m_similar", counting)
    n_users, n_items = data["emb"].shape[0], data["n_items"]
    test = (data["test"][0][::3], data["test"][1][::3])  # rows must be mapped
    grid = {"m_grid": [5, 20, 60], "popularity_weights": [0.0, 0.3], "select_k": 20}
    opts = {"ks": (10, 20), "backend": "exact", "precision": "fp32"}
    labels = np.arange(n_users) % 4
    common = {"cluster_labels": labels, "m_neighbors": 30, **opts}
    args = (data["emb"], data["train"], test, n_items)
    out = evaluate_u2u2i(*args, valid=data["valid"], tuning=grid, **common)
    assert calls == [60]
    plain = evaluate_u2u2i(*args, **common)  # its own search, m = 30
    assert calls == [60, 30]
    metric_keys = [key for key in plain if "@" in key]
    assert any("_boost" in key for key in metric_keys)
    assert {key: out[key] for key in metric_keys} == {
        key: plain[key] for key in metric_keys
    }
    train = interactions_csr(*data["train"], n_users, n_items)
    rel, _ = outside_train(relevant_csr(*test, n_users, n_items), train)
    query = np.flatnonzero(np.diff(rel.indptr) > 0)
    assert query.size < validation_queries(train, data["valid"])[1].size
    alone = tuned_u2u2i(  # searched per split: the validation users, then test
        data["emb"],
        train,
        data["valid"],
        query,
        rel[query],
        metric="cosine",
        seed=0,
        **grid,
        **opts,
    )
    assert calls == [60, 30, 60, alone["m_neighbors"]]
    for result in (out["tuned"], alone):
        result.pop("seconds")
    assert out["tuned"] == alone


def test_choice_in_blocks_of_query_users_equals_one_block():
    rng = np.random.default_rng(5)
    n_users, n_items, n_q = 60, 40, 37
    train = sp.random(n_users, n_items, density=0.15, random_state=1, format="csr")
    train.data[:] = 1.0
    query = np.sort(rng.choice(n_users, n_q, replace=False)).astype(np.int64)
    nbr = np.stack(
        [rng.permutation(np.setdiff1d(np.arange(n_users), [u]))[:12] for u in query]
    ).astype(np.int64)
    sims = np.sort(rng.random(nbr.shape).astype(np.float32), axis=1)[:, ::-1].copy()
    relevant = sp.random(n_q, n_items, density=0.1, random_state=2, format="csr")
    relevant.data[:] = 1.0
    relevant = sp.diags((np.arange(n_q) != 3).astype(float)) @ relevant
    relevant = sp.csr_matrix(relevant)  # user 3: nothing to find, in no mean
    relevant.eliminate_zeros()
    kw = {"m_grid": [3, 7, 12], "weight_grid": [0.0, 0.5], "k": 5}
    whole = choose_u2u2i(nbr, sims, query, train, relevant, **kw)
    blocks = choose_u2u2i(nbr, sims, query, train, relevant, max_rows=4, **kw)
    assert blocks[:2] == whole[:2]
    assert blocks[2] == pytest.approx(whole[2], abs=1e-12)
