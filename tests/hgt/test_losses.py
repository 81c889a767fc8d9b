"""The symmetric cosine loss against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from hgt_cluster_kedro.models.losses import cosine_pair_loss, symmetric_cosine_loss


def _cos(a, b):
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _softplus(x):
    return math.log1p(math.exp(x))


def test_symmetric_loss_matches_hand_computation():
    # Two positives, one negative per side (2-d vectors, not normalised).
    u = [[1.0, 0.0], [0.0, 2.0]]
    v = [[1.0, 1.0], [0.0, 1.0]]
    v_neg = [[[0.0, 1.0]], [[1.0, 0.0]]]  # negative items of u[0], u[1]
    u_neg = [[[-1.0, 0.0]], [[3.0, 4.0]]]  # negative users of v[0], v[1]
    s = 2.0
    side_u = [
        _softplus(-s * (_cos(u[i], v[i]) - _cos(u[i], v_neg[i][0]))) for i in range(2)
    ]
    side_v = [
        _softplus(-s * (_cos(v[i], u[i]) - _cos(v[i], u_neg[i][0]))) for i in range(2)
    ]
    # cos(u0,v0)=1/sqrt2, cos(u0,v0-)=0 ; cos(u1,v1)=1, cos(u1,v1-)=0
    # cos(v0,u0-)=-1/sqrt2 ; cos(v1,u1-)=4/5
    expected = 0.5 * sum(side_u) / 2 + 0.5 * sum(side_v) / 2
    manual = 0.5 * (
        _softplus(-2 * (2**-0.5)) / 2
        + _softplus(-2.0) / 2
        + _softplus(-2 * (2**-0.5 + 2**-0.5)) / 2
        + _softplus(-2 * (1 - 0.8)) / 2
    )
    assert expected == pytest.approx(manual, rel=1e-12)
    got = symmetric_cosine_loss(
        torch.tensor(u, dtype=torch.float64),
        torch.tensor(v, dtype=torch.float64),
        torch.tensor(u_neg, dtype=torch.float64),
        torch.tensor(v_neg, dtype=torch.float64),
        scale=s,
    )
    assert float(got) == pytest.approx(expected, rel=1e-10)


def test_masked_negatives_are_left_out_of_the_mean():
    g = torch.Generator().manual_seed(0)
    a, p, n = (torch.randn(*s, generator=g) for s in ((4, 3), (4, 3), (4, 2, 3)))
    mask = torch.tensor([[True, False], [True, True], [False, False], [True, False]])
    full = torch.nn.functional.softplus(
        -3.0
        * (
            torch.cosine_similarity(a, p).unsqueeze(1)
            - torch.cosine_similarity(a.unsqueeze(1), n, dim=-1)
        )
    )
    expected = full[mask].mean()
    got = cosine_pair_loss(a, p, n, scale=3.0, mask=mask)
    assert torch.allclose(got, expected)
    none = cosine_pair_loss(a, p, n, mask=torch.zeros(4, 2, dtype=torch.bool))
    assert float(none) == 0.0


def test_loss_is_low_when_positives_are_closer():
    u = torch.eye(3)
    good = symmetric_cosine_loss(u, u, -u.unsqueeze(1), -u.unsqueeze(1))
    bad = symmetric_cosine_loss(u, -u, u.unsqueeze(1), u.unsqueeze(1))
    assert float(good) < float(bad)
    assert float(good) == pytest.approx(_softplus(-4.0))


@pytest.mark.parametrize(
    ("shapes", "match"),
    [
        (((4,), (4,), (4, 1, 1)), "anchor must be"),
        (((4, 3), (5, 3), (4, 1, 3)), "positive shape"),
        (((4, 3), (4, 3), (4, 3)), "negatives must be"),
    ],
)
def test_shape_errors(shapes, match):
    a, p, n = (torch.zeros(*s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        cosine_pair_loss(a, p, n)


def test_scale_must_be_positive():
    x = torch.ones(2, 2)
    with pytest.raises(ValueError, match="scale must be > 0"):
        cosine_pair_loss(x, x, x.unsqueeze(1), scale=0.0)
