"""The compiled u2u2i scoring against a dense numpy reference: items and scores
(ties to the smaller item id), every option, the weight grid equal to one call
per weight and the neighbour-count grid equal to one call per prefix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hgt_cluster_kedro.evaluation import (
    recommend_from_neighbor_prefixes,
    recommend_from_neighbors,
    recommend_from_neighbors_grid,
)


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    n_users, n_items, m = 60, 40, 7
    dense = (rng.random((n_users, n_items)) < 0.15).astype(np.float32)
    dense[5] = 0  # a user without train items
    train = sp.csr_matrix(dense)
    query = np.array([0, 3, 5, 9, 17, 33, 59])
    nbr = rng.integers(0, n_users, (query.size, m))
    nbr[1, 4:] = -1  # fewer neighbours than m
    # similarities on a coarse grid: equal scores (ties) happen often
    sims = rng.integers(-2, 5, (query.size, m)).astype(np.float32) / 4
    sims[2, 0] = np.nan  # a non-finite similarity never votes
    labels = rng.integers(-1, 3, n_users)
    return dense, train, query, nbr, sims, labels


def _reference(dense, query, nbr, sims, k, *, w, clip, exclude, labels, beta):
    """Dense formula of the module docstring; ties -> smaller item id."""
    pop = dense.sum(0).astype(np.float64)
    share = pop / max(pop.max(), 1.0)
    items = np.full((query.size, k), -1)
    scores = np.full((query.size, k), -np.inf)
    for r, u in enumerate(query):
        wt = np.where(np.isfinite(sims[r]), sims[r], 0.0).astype(np.float64)
        if clip:
            wt = np.maximum(wt, 0)
        if labels is not None and beta:
            same = (labels[np.maximum(nbr[r], 0)] == labels[u]) & (labels[u] >= 0)
            wt = wt * (1 + beta * same)
        wt[nbr[r] < 0] = 0
        raw = wt @ dense[np.maximum(nbr[r], 0)]
        cand = raw != 0
        score = raw.copy()
        if w > 0:
            top = np.abs(raw).max()
            score = (1 - w) * raw / (top if top > 0 else 1.0) + w * share
            cand = cand | (share > 0)
        if exclude:
            cand &= dense[u] == 0
        cand &= score > 0 if clip else score != 0
        idx = np.flatnonzero(cand)
        order = idx[np.lexsort((idx, -score[idx]))][:k]
        items[r, : order.size] = order
        scores[r, : order.size] = score[order]
    return items, scores


@pytest.mark.parametrize("w", [0.0, 0.3])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("exclude", [True, False])
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_kernel_matches_the_dense_reference(w, clip, exclude, beta):
    dense, train, query, nbr, sims, labels = _problem()
    k = 12
    recs = recommend_from_neighbors(
        nbr,
        sims,
        query,
        train,
        k,
        popularity_weight=w,
        clip_negative=clip,
        exclude_train=exclude,
        cluster_labels=labels,
        cluster_boost=beta,
        chunk_size=2,
    )
    ref_items, ref_scores = _reference(
        dense,
        query,
        nbr,
        sims,
        k,
        w=w,
        clip=clip,
        exclude=exclude,
        labels=labels,
        beta=beta,
    )
    np.testing.assert_allclose(recs.scores, ref_scores, rtol=1e-5, atol=1e-6)
    # equal items, except where float rounding may order a tie differently
    # (exact ties, as with w = 0 here, go to the smaller id in both)
    tied = np.zeros(ref_items.shape, bool)
    if w > 0:
        gap = np.abs(ref_scores[:, :, None] - ref_scores[:, None, :])
        near = (gap < 1e-5) & ~np.eye(k, dtype=bool)
        tied = near.any(axis=2)
    assert (ref_items[tied] >= 0).sum() < tied.size / 2  # most are checked
    np.testing.assert_array_equal(recs.items[~tied], ref_items[~tied])


def test_weight_grid_equals_one_call_per_weight():
    _, train, query, nbr, sims, _ = _problem(3)
    weights = [0.0, 0.1, 0.5, 0.9]
    grid = recommend_from_neighbors_grid(
        nbr, sims, query, train, 9, popularity_weights=weights
    )
    assert len(grid) == len(weights)
    for w, got in zip(weights, grid, strict=True):
        one = recommend_from_neighbors(nbr, sims, query, train, 9, popularity_weight=w)
        np.testing.assert_array_equal(got.items, one.items)
        np.testing.assert_array_equal(got.scores, one.scores)


@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_m_grid_equals_one_call_per_prefix(clip, beta):
    """Every checkpoint of the one pass equals a call on the first m columns,
    for every weight, to the bit: negative similarities (which make a row's
    largest |vote| fall as well as rise), missing neighbours (-1), zero
    weights, own items kept, m in any order, repeated, or 0."""
    _, train, query, _, _, labels = _problem(5)
    rng = np.random.default_rng(7)
    m, k = 12, 9
    nbr = rng.integers(0, train.shape[0], (query.size, m))
    nbr[1, 3:6] = -1
    nbr[4, 8:] = -1
    sims = rng.normal(0.1, 0.5, (query.size, m)).astype(np.float32)
    sims[:, 5] = 0.0
    sims[0, :2] = 0.0
    m_grid = [12, 1, 4, 0, 4, 9]
    weights = [0.0, 0.2, 0.6]
    opts = {
        "exclude_train": False,
        "clip_negative": clip,
        "cluster_labels": labels,
        "cluster_boost": beta,
        "chunk_size": 3,
    }
    got = recommend_from_neighbor_prefixes(
        nbr, sims, query, train, k, m_grid=m_grid, popularity_weights=weights, **opts
    )
    assert len(got) == len(m_grid)
    for mm, per_w in zip(m_grid, got, strict=True):
        assert len(per_w) == len(weights)
        for w, recs in zip(weights, per_w, strict=True):
            one = recommend_from_neighbors(
                nbr[:, :mm], sims[:, :mm], query, train, k, popularity_weight=w, **opts
            )
            np.testing.assert_array_equal(recs.items, one.items, err_msg=f"{mm} {w}")
            np.testing.assert_array_equal(recs.scores, one.scores)
    assert (got[0][0].items >= 0).sum() > (got[1][0].items >= 0).sum() > 0
    with pytest.raises(ValueError, match=r"in \[0, 12\], got \[13\]"):
        recommend_from_neighbor_prefixes(
            nbr, sims, query, train, k, m_grid=[13], popularity_weights=[0.0]
        )


def test_bad_weights_are_named():
    _, train, query, nbr, sims, _ = _problem()
    with pytest.raises(ValueError, match=r"\[0, 1\), got \[0.2, 1.0\]"):
        recommend_from_neighbors_grid(
            nbr, sims, query, train, 5, popularity_weights=[0.2, 1.0]
        )
    with pytest.raises(ValueError, match="got \\[\\]"):
        recommend_from_neighbors_grid(nbr, sims, query, train, 5, popularity_weights=[])
