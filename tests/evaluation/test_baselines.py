"""EASE, item-kNN and the community oracle against dense brute force on tiny
data, the planted toy graph where the oracle must be perfect, and the
validation-only choice of hyperparameters."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from hgt_cluster_kedro.evaluation import interactions_csr, ranking_metrics
from hgt_cluster_kedro.evaluation.baselines import (
    EASE,
    ClassicalBaselinesConfig,
    ItemKNN,
    choose_on_validation,
    community_oracle_recommend,
    cooccurrence_blocks,
    ease_weights,
    evaluate_classical,
)


def _random_train(n_users=40, n_items=25, density=0.2, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    dense[:, -1] = False  # an item nobody engaged with
    dense[0] = False  # a user without train items
    u, i = np.nonzero(dense)
    return interactions_csr(u, i, n_users, n_items)


def _brute_topk(scores: np.ndarray, own: np.ndarray, k: int, drop_nonpositive: bool):
    """Stable brute-force top-k of a dense score matrix (own items banned)."""
    out = np.full((scores.shape[0], k), -1, dtype=np.int64)
    for r, row in enumerate(scores):
        allowed = [j for j in range(row.size) if not own[r, j]]
        if drop_nonpositive:
            allowed = [j for j in allowed if row[j] > 0]
        ranked = sorted(allowed, key=lambda j: (-row[j], j))[:k]
        out[r, : len(ranked)] = ranked
    return out


def test_cooccurrence_blocks_equal_dense_product():
    train = _random_train()
    dense = train.toarray()
    got = np.vstack([b for _, _, b in cooccurrence_blocks(train, 7)])
    np.testing.assert_array_equal(got, dense.T @ dense)


def test_ease_weights_match_numpy_closed_form():
    train = _random_train()
    x = train.toarray().astype(np.float64)
    lam = 3.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    expected = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
    got = ease_weights(torch.from_numpy(x.T @ x), lam).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-10)
    assert np.all(np.diag(got) == 0)
    # B is the least-squares fit: X B ~ X with the zero-diagonal constraint
    with pytest.raises(ValueError, match="l2 \\(lambda\\) must be > 0"):
        ease_weights(torch.from_numpy(x.T @ x), 0.0)


@pytest.mark.parametrize("max_items", [None, 10])
def test_ease_recommend_equals_brute_force(max_items):
    train = _random_train()
    x = train.toarray().astype(np.float64)
    model = EASE(l2=2.0, max_items=max_items, dtype="float64", block_size=4).fit(train)
    pop = x.sum(axis=0)
    kept = np.argsort(-pop, kind="stable")
    kept = kept[pop[kept] > 0][:max_items]
    np.testing.assert_array_equal(model.items_, kept)
    xk = x[:, kept]
    p = np.linalg.inv(xk.T @ xk + 2.0 * np.eye(kept.size))
    b = np.eye(kept.size) - p / np.diag(p)[None, :]
    query = np.arange(1, train.shape[0])
    k = 6
    recs = model.recommend(train, query, k)
    scores = xk[query] @ b
    brute = _brute_topk(scores, xk[query] > 0, k, drop_nonpositive=False)
    np.testing.assert_array_equal(recs.items, np.where(brute >= 0, kept[brute], -1))
    # the user without train items gets the kept items by popularity
    recs0 = model.recommend(train, [0], 3)
    np.testing.assert_array_equal(recs0.items[0], kept[:3])


def test_ease_float32_agrees_with_float64():
    train = _random_train(n_users=200, n_items=60, density=0.15, seed=3)
    query = np.arange(200)
    r32 = EASE(l2=5.0, max_items=None, dtype="float32").fit(train)
    r64 = EASE(l2=5.0, max_items=None, dtype="float64").fit(train)
    np.testing.assert_allclose(
        r32.weights_.numpy(), r64.weights_.numpy(), atol=1e-4, rtol=1e-3
    )
    a = r32.recommend(train, query, 10).items
    b = r64.recommend(train, query, 10).items
    assert (a == b).mean() > 0.97  # only near-ties may swap


def test_item_knn_equals_brute_force():
    train = _random_train(seed=1)
    x = train.toarray().astype(np.float64)
    n_items = x.shape[1]
    co = x.T @ x
    norm = np.sqrt(np.diag(co))
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(np.outer(norm, norm) > 0, co / np.outer(norm, norm), 0.0)
    np.fill_diagonal(cos, 0.0)
    n = 4
    model = ItemKNN(neighbors=n, block_size=3).fit(train)
    got = model.similarity().toarray()
    for i in range(n_items):
        # the n largest positive similarities of the row (ties may pick any item)
        expected = np.sort(cos[i][cos[i] > 0])[::-1][:n]
        np.testing.assert_allclose(
            np.sort(got[i][got[i] > 0])[::-1], expected, atol=1e-6
        )
        nz = np.flatnonzero(got[i])
        np.testing.assert_allclose(got[i, nz], cos[i, nz], atol=1e-6)
    kept = got.astype(np.float64)
    query = np.arange(train.shape[0])
    k = 5
    recs = model.recommend(train, query, k)
    scores = x @ kept
    brute = _brute_topk(scores, x > 0, k, drop_nonpositive=True)
    # same item sets and the same scores (ties may be ordered differently)
    for r in range(query.size):
        got = recs.items[r][recs.items[r] >= 0]
        exp = brute[r][brute[r] >= 0]
        np.testing.assert_allclose(
            np.sort(scores[r, got]), np.sort(scores[r, exp]), atol=1e-6
        )
        assert got.size == exp.size
        assert not np.any(x[r, got] > 0)  # own train items excluded
    assert np.all(recs.items[0] == -1)  # no train items: nothing to recommend
    # a truncated fit keeps the most similar prefix
    small = model.truncated(2)
    assert small.neighbor_ids_.shape[1] == 2
    with pytest.raises(ValueError, match="fitted with 4"):
        model.truncated(5)


def _planted_toy():
    """Two communities of 6 users, items 0-4 belong to community 0 and 5-9 to
    community 1; item 10 is globally popular (every user of community 1 and
    three of community 0 engaged with it). Each user trains on all items of
    the own community but one, which is held out."""
    users, items, test_u, test_i = [], [], [], []
    communities = np.array([0] * 6 + [1] * 6)
    for u in range(12):
        c = communities[u]
        own = list(range(5 * c, 5 * c + 5))
        held = own[u % 5]
        for i in own:
            if i != held:
                users.append(u)
                items.append(i)
        test_u.append(u)
        test_i.append(held)
        if c == 1 or u < 3:
            users.append(u)
            items.append(10)
    train = interactions_csr(np.array(users), np.array(items), 12, 11)
    test = interactions_csr(np.array(test_u), np.array(test_i), 12, 11)
    return train, test, communities


def test_oracle_is_perfect_on_planted_toy_graph():
    train, test, communities = _planted_toy()
    query = np.arange(12)
    recs = community_oracle_recommend(train, communities, query, 3)
    metrics = ranking_metrics(recs.items, test[query], (1, 3))
    # the only unseen item of the own community is the held-out one: rank 1
    assert metrics["recall@1"] == 1.0
    assert metrics["ndcg@1"] == 1.0
    assert metrics["ndcg@3"] == 1.0
    # never an own train item
    assert not np.any(train.toarray()[query[:, None], np.maximum(recs.items, 0)] > 0)
    # popularity cannot do this: the popular item 10 ranks first for users 3-5
    pop = np.asarray(train.sum(axis=0)).ravel()
    assert np.argmax(pop) == 10
    # unknown community: global popularity order
    unknown = communities.copy()
    unknown[4] = -1
    recs_u = community_oracle_recommend(train, unknown, [4], 2)
    assert recs_u.items[0, 0] == 10


def test_oracle_checks_communities():
    train, _, communities = _planted_toy()
    with pytest.raises(ValueError, match="communities must be an integer array"):
        community_oracle_recommend(train, communities[:5], [0], 2)


def test_choose_on_validation_keeps_the_first_best_and_snapshot():
    relevant = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0]], dtype=bool))
    lists = {
        "a": np.array([[2], [2]]),
        "b": np.array([[0], [2]]),
        "c": np.array([[0], [1]]),
        "d": np.array([[0], [1]]),
    }
    seen = []

    def recommend(value):
        seen.append(value)
        return type("R", (), {"items": lists[value]})()

    best, scores, kept = choose_on_validation(
        list(lists), recommend, relevant, 1, snapshot=lambda: seen[-1]
    )
    assert best == "c" and kept == "c"  # first of the tied best, its snapshot
    assert scores == {"a": 0.0, "b": 0.5, "c": 1.0, "d": 1.0}
    assert seen == ["a", "b", "c", "d"]


def test_evaluate_classical_chooses_on_valid_never_test():
    rng = np.random.default_rng(5)
    n_users, n_items = 300, 80
    communities = rng.integers(0, 4, n_users)
    topic = np.arange(n_items) % 4
    pairs = []
    for u in range(n_users):
        pool = np.flatnonzero(topic == communities[u])
        chosen = rng.choice(pool, size=10, replace=False)
        pairs += [(u, int(i)) for i in chosen]
    pairs = np.array(pairs)
    split = rng.random(len(pairs))

    def mat(mask):
        return interactions_csr(pairs[mask, 0], pairs[mask, 1], n_users, n_items)

    train, valid, test = (
        mat(split < 0.6),
        mat((split >= 0.6) & (split < 0.8)),
        mat(split >= 0.8),
    )
    config = ClassicalBaselinesConfig(
        select_k=10,
        ease={"l2": [1.0, 10.0, 100.0], "max_items": 50},
        item_knn={"neighbors": [2, 10, 40]},
    )
    out = evaluate_classical(train, valid, test, config, (10, 20))
    ease, knn = out["ease"], out["item_knn"]
    by_l2 = ease["valid_recall@10_by_l2"]
    assert ease["l2"] == float(max(by_l2, key=by_l2.get))
    by_n = knn["valid_recall@10_by_neighbors"]
    assert str(knn["neighbors"]) == max(by_n, key=by_n.get)
    assert ease["n_items_kept"] == 50
    assert 0 < ease["test_coverage"] <= 1 and 0 < ease["train_coverage"] <= 1
    for rec in (ease, knn):
        assert rec["train_seconds"] > 0
        assert 0.0 <= rec["recall@10"] <= rec["recall@20"] <= 1.0
    # the chosen value scores on test like a direct fit with that value
    direct = EASE(l2=ease["l2"], max_items=50).fit(train)
    q = np.flatnonzero(np.diff(test.indptr) > 0)
    ref = ranking_metrics(direct.recommend(train, q, 20).items, test[q], (10, 20))
    assert ease["recall@20"] == pytest.approx(ref["recall@20"])
    # several candidates but nothing to choose on
    with pytest.raises(ValueError, match="no valid pairs"):
        evaluate_classical(train, None, test, config, (10,))
    single = ClassicalBaselinesConfig(ease={"l2": [10.0]}, item_knn={"neighbors": [10]})
    assert set(evaluate_classical(train, None, test, single, (10,))) == {
        "ease",
        "item_knn",
    }


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="must be > 0"):
        ClassicalBaselinesConfig(ease={"l2": [0.0]})
    with pytest.raises(ValueError, match="unknown classical baselines"):
        ClassicalBaselinesConfig(enabled=["slim"])
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        ClassicalBaselinesConfig(ease={"lambda": [1.0]})
