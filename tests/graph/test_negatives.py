"""Negative samplers: the exact in-batch construction, uniform re-draws and the
flags of drawn positives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hgt_cluster_kedro.graph.csr import HeteroCSR
from hgt_cluster_kedro.graph.negatives import (
    NEGATIVE_SAMPLERS,
    InBatchNegatives,
    UniformNegatives,
    make_negative_sampler,
    positive_test,
)

LIKE = ("user", "like", "note")


def _graph() -> HeteroCSR:
    src = torch.tensor([0, 0, 1, 2, 3, 4, 5, 5])
    dst = torch.tensor([0, 1, 1, 2, 3, 4, 5, 0])
    return HeteroCSR.from_coo({"user": 6, "note": 6}, {LIKE: (src, dst)})


def test_in_batch_negatives_are_shifted_endpoints_of_other_positives():
    graph = _graph()
    src, dst = graph.to_coo(LIKE)
    neg = InBatchNegatives(num_neg=5)
    draw = neg.draw(
        src,
        dst,
        num_src=6,
        num_dst=6,
        rng=np.random.default_rng(0),
        is_positive=positive_test(graph, LIKE, src, dst),
    )
    b = src.numel()
    assert draw.dst_neg.shape == (b, 5) and draw.src_neg.shape == (b, 5)
    # every column is one cyclic shift of the batch: column j of row i is the
    # endpoint of positive (i + s_j) % B with distinct s_j in [1, B)
    for neg_ids, ids in ((draw.dst_neg, dst), (draw.src_neg, src)):
        shifts = []
        for j in range(5):
            matches = [
                s for s in range(1, b) if torch.equal(neg_ids[:, j], ids.roll(-s))
            ]
            assert matches, j
            shifts.append(matches[0])
        assert len(set(shifts)) == 5
    # a drawn pair is flagged exactly when it is an edge of the graph
    keys = set(zip(src.tolist(), dst.tolist(), strict=True))
    for i in range(b):
        for j in range(5):
            pair = (int(src[i]), int(draw.dst_neg[i, j]))
            assert bool(draw.dst_bad[i, j]) == (pair in keys)
            pair = (int(draw.src_neg[i, j]), int(dst[i]))
            assert bool(draw.src_bad[i, j]) == (pair in keys)
    assert bool(draw.dst_bad.any())  # user 0 likes notes 0 and 1: flagged


def test_in_batch_needs_enough_positives():
    graph = _graph()
    src, dst = graph.to_coo(LIKE)
    with pytest.raises(ValueError, match="num_neg must be <= batch size - 1 = 7"):
        InBatchNegatives(num_neg=8).draw(
            src,
            dst,
            num_src=6,
            num_dst=6,
            rng=np.random.default_rng(0),
            is_positive=positive_test(graph, LIKE, src, dst),
        )
    assert InBatchNegatives(num_neg=63).min_batch() == 64


def test_uniform_redraws_positives_and_is_seeded():
    graph = _graph()
    src, dst = graph.to_coo(LIKE)

    def draw(seed: int):
        return UniformNegatives(num_neg=4, max_rounds=50).draw(
            src,
            dst,
            num_src=6,
            num_dst=6,
            rng=np.random.default_rng(seed),
            is_positive=positive_test(graph, LIKE, src, dst),
        )

    a, b = draw(3), draw(3)
    assert torch.equal(a.dst_neg, b.dst_neg) and torch.equal(a.src_neg, b.src_neg)
    assert not bool(a.dst_bad.any()) and not bool(a.src_bad.any())
    keys = set(zip(src.tolist(), dst.tolist(), strict=True))
    for i in range(src.numel()):
        for j in range(4):
            assert (int(src[i]), int(a.dst_neg[i, j])) not in keys
            assert (int(a.src_neg[i, j]), int(dst[i])) not in keys


def test_registry():
    assert set(NEGATIVE_SAMPLERS) == {"uniform", "in_batch", "pinsage_hard"}
    assert isinstance(make_negative_sampler("in_batch", 3), InBatchNegatives)
    with pytest.raises(ValueError, match="unknown negative sampler 'hard'"):
        make_negative_sampler("hard", 3)
    with pytest.raises(ValueError, match="num_neg must be >= 1"):
        InBatchNegatives(num_neg=0)
