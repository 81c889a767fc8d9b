"""Ranking metrics: hand-computed values, a brute-force reference, sklearn's nDCG."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from hgt_cluster_kedro.evaluation import (
    hit_matrix,
    interactions_csr,
    ranking_metrics,
    relevant_csr,
)


def _reference(rec: np.ndarray, rel: list[set[int]], k: int) -> dict[str, float]:
    """Per-user loops, straight from the definitions."""
    out = {"recall": [], "precision": [], "ndcg": [], "hitrate": []}
    for row, items in zip(rec, rel, strict=True):
        if not items:
            continue
        seen, hits, dcg = set(), 0, 0.0
        for pos, it in enumerate(row[:k]):
            if it >= 0 and it in items and it not in seen:
                hits += 1
                dcg += 1.0 / np.log2(pos + 2)
            seen.add(it)
        idcg = sum(1.0 / np.log2(p + 2) for p in range(min(k, len(items))))
        out["recall"].append(hits / len(items))
        out["precision"].append(hits / k)
        out["ndcg"].append(dcg / idcg)
        out["hitrate"].append(float(hits > 0))
    return {f"{name}@{k}": float(np.mean(v)) for name, v in out.items()}


def test_hand_computed_example():
    rec = np.array([[3, 1, 2, -1], [5, 5, 4, 0], [7, 8, 9, 6]])
    rel = [np.array([1, 2, 9]), np.array([5]), np.array([], dtype=np.int64)]
    m = ranking_metrics(rec, rel, ks=(1, 2, 4))
    assert m["n_users"] == 2  # the user without held-out items is skipped
    assert m["recall@1"] == pytest.approx(0.5)
    assert m["recall@2"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["recall@4"] == pytest.approx((2 / 3 + 1) / 2)  # duplicate 5 counts once
    assert m["precision@4"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert m["hitrate@1"] == pytest.approx(0.5)
    assert m["hitrate@2"] == pytest.approx(1.0)
    ndcg2_user0 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert m["ndcg@2"] == pytest.approx((ndcg2_user0 + 1.0) / 2)


def test_matches_bruteforce_reference():
    rng = np.random.default_rng(0)
    n_q, n_items, width = 60, 40, 12
    rec = rng.integers(-1, n_items, size=(n_q, width))  # padding and duplicates
    rel = [
        set(rng.choice(n_items, rng.integers(0, 6), replace=False)) for _ in range(n_q)
    ]
    got = ranking_metrics(
        rec, [np.array(sorted(s), dtype=np.int64) for s in rel], (3, 12)
    )
    for k in (3, 12):
        for key, val in _reference(rec, rel, k).items():
            assert got[key] == pytest.approx(val), key


def test_ndcg_agrees_with_sklearn():
    rng = np.random.default_rng(1)
    n_q, n_items, k = 30, 25, 10
    scores = rng.random((n_q, n_items))
    truth = (rng.random((n_q, n_items)) < 0.2).astype(float)
    truth[truth.sum(1) == 0, 0] = 1.0
    rec = np.argsort(-scores, axis=1)
    rel = [np.flatnonzero(t) for t in truth]
    ours = ranking_metrics(rec, rel, ks=(k,))["ndcg@10"]
    assert ours == pytest.approx(ndcg_score(truth, scores, k=k))


def test_csr_input_equals_list_input():
    user = np.array([0, 0, 2, 2, 2, 1])
    item = np.array([3, 3, 1, 4, 0, 2])  # (0, 3) twice
    rel = relevant_csr(user, item, n_users=3, n_items=5)
    assert rel.dtype == bool and rel.nnz == 5
    rec = np.array([[3, 1], [0, 2], [4, 1]])
    a = ranking_metrics(rec, rel, ks=(1, 2))
    b = ranking_metrics(rec, [[3], [2], [1, 4, 0]], ks=(1, 2))
    assert a == b
    np.testing.assert_array_equal(
        hit_matrix(rec, rel), [[True, False], [False, True], [True, True]]
    )


def test_interactions_csr_dedupes_and_checks():
    mat = interactions_csr([1, 1, 0], [2, 2, 0], n_users=2, n_items=3)
    assert mat.shape == (2, 3) and mat.nnz == 2 and mat.dtype == np.float32
    with pytest.raises(ValueError, match=r"item has 1 ids outside \[0, 3\)"):
        interactions_csr([0], [3], n_users=2, n_items=3)
    with pytest.raises(ValueError, match="differ in length"):
        interactions_csr([0, 1], [0], n_users=2, n_items=3)


def test_bad_inputs():
    rec = np.array([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=r"beyond the 2 recommended"):
        ranking_metrics(rec, [[1], [3]], ks=(3,))
    with pytest.raises(ValueError, match=r"every k in ks must be >= 1"):
        ranking_metrics(rec, [[1], [3]], ks=(0,))
    with pytest.raises(ValueError, match="no query user has a held-out item"):
        ranking_metrics(rec, [[], []], ks=(1,))
    with pytest.raises(ValueError, match="relevant has 1 rows"):
        ranking_metrics(rec, [[1]], ks=(1,))
    with pytest.raises(ValueError, match="2-D"):
        ranking_metrics(np.array([1, 2]), [[1]], ks=(1,))
