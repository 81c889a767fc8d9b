"""Cluster → top-items channel."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hgt_cluster_kedro.evaluation.c2i import (
    c2i_recommend,
    choose_blend,
    cluster_item_counts,
    evaluate_c2i,
)
from hgt_cluster_kedro.evaluation.metrics import interactions_csr


def _planted(n_users=300, n_items=120, k=3, per_user=12, seed=0):
    """Users of cluster c engage items i with i % k == c (plus a few popular)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n_users)
    users, items = [], []
    for u in range(n_users):
        own = rng.choice(np.flatnonzero(np.arange(n_items) % k == labels[u]), per_user)
        pop = rng.integers(0, 5, 2)  # items 0..4 popular with everyone
        picked = np.unique(np.concatenate([own, pop]))
        users += [u] * picked.size
        items += picked.tolist()
    return np.array(users), np.array(items), labels, n_items


def test_counts_and_recommendations_follow_the_cluster():
    u, i, labels, n_items = _planted()
    train = interactions_csr(u, i, labels.size, n_items)
    counts, codes = cluster_item_counts(train, labels)
    assert counts.shape == (3, n_items)
    np.testing.assert_array_equal(codes, labels)
    assert counts.sum() == train.sum()
    recs = c2i_recommend(train, labels, np.arange(30), 10)
    own = train[np.arange(30)].toarray().astype(bool)
    got = recs.items
    assert (got >= 0).all()
    assert not own[np.arange(30)[:, None], got].any()  # own items excluded
    in_cluster = (got % 3 == labels[:30, None]) | (got < 5)
    assert in_cluster.all()
    assert (np.diff(recs.scores, axis=1) <= 0).all()


def test_blend_one_is_popularity():
    u, i, labels, n_items = _planted()
    train = interactions_csr(u, i, labels.size, n_items)
    pop = np.diff(train.tocsc().indptr)
    recs = c2i_recommend(train, labels, np.arange(5), 5, blend=1.0)
    for row, user in zip(recs.items, range(5), strict=True):
        allowed = np.setdiff1d(np.arange(n_items), train[user].indices)
        best = allowed[np.lexsort((allowed, -pop[allowed]))][:5]
        np.testing.assert_array_equal(row, best)


def test_choose_blend_prefers_cluster_signal():
    u, i, labels, n_items = _planted(seed=1)
    rng = np.random.default_rng(2)
    held = rng.random(u.size) < 0.2
    train = interactions_csr(u[~held], i[~held], labels.size, n_items)
    best, recall = choose_blend(
        train, labels, (u[held], i[held]), [0.0, 0.5, 1.0], k=10
    )
    assert set(recall) == {"0", "0.5", "1"}
    assert recall["0"] > recall["1"]
    assert best in (0.0, 0.5)


def test_evaluate_c2i_beats_random_clusters():
    u, i, labels, n_items = _planted(seed=3)
    rng = np.random.default_rng(4)
    split = rng.random(u.size)
    train, valid, test = split < 0.7, (split >= 0.7) & (split < 0.8), split >= 0.8
    args = (
        (u[train], i[train]),
        (u[valid], i[valid]),
        (u[test], i[test]),
    )
    sizes = {"n_users": labels.size, "n_items": n_items}
    good = evaluate_c2i(
        labels, *args, **sizes, ks=(10, 20), blend_grid=[0.0, 0.3], select_k=10
    )
    bad = evaluate_c2i(
        rng.integers(0, 3, labels.size),
        *args,
        **sizes,
        ks=(10, 20),
        blend_grid=[0.0, 0.3],
        select_k=10,
    )
    assert good["recall@10"] > bad["recall@10"] + 0.1
    assert good["c2i_blend"] in (0.0, 0.3)


def test_bad_blend_is_an_error():
    train = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="blend"):
        c2i_recommend(train, np.zeros(3, int), np.arange(3), 1, blend=1.5)
    with pytest.raises(ValueError, match="blend_grid"):
        choose_blend(train, np.zeros(3, int), (np.arange(3), np.arange(3)), [2.0])


@pytest.mark.parametrize("blend", [0.0, 0.3])
def test_blocks_do_not_change_the_lists(blend):
    """Users are processed in blocks of similar train counts, each block with
    its own candidate width: the lists equal one block per cluster, for the
    c2i channel and the community oracle alike."""
    from hgt_cluster_kedro.evaluation.baselines import community_oracle_recommend

    rng = np.random.default_rng(1)
    n_users, n_items = 600, 120
    deg = np.minimum(rng.zipf(1.5, n_users), 115)  # a few users own almost all
    user = np.repeat(np.arange(n_users), deg)
    item = np.concatenate([rng.choice(n_items, d, replace=False) for d in deg])
    train = sp.csr_matrix((np.ones(user.size), (user, item)), (n_users, n_items))
    labels = rng.integers(-1, 4, n_users)
    query = rng.permutation(n_users)[:500]
    big = c2i_recommend(train, labels, query, 20, blend=blend, chunk_size=4096)
    small = c2i_recommend(train, labels, query, 20, blend=blend, chunk_size=5)
    np.testing.assert_array_equal(big.items, small.items)
    np.testing.assert_array_equal(big.scores, small.scores)
    assert (big.items >= 0).sum(1).min() >= 5  # heavy users: what is left
    comm = np.maximum(labels, 0)
    big = community_oracle_recommend(train, comm, query, 20, chunk_size=4096)
    small = community_oracle_recommend(train, comm, query, 20, chunk_size=5)
    np.testing.assert_array_equal(big.items, small.items)
    np.testing.assert_array_equal(big.scores, small.scores)
