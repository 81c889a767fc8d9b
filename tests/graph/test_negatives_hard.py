"""PinSage hard negatives (Ying et al., KDD 2018, section 3.3): the walk
estimate of the personalised PageRank against hand-computed visit
probabilities, the rank band, the curriculum and the masking of positives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hgt_cluster_kedro.graph.csr import HeteroCSR
from hgt_cluster_kedro.graph.negatives import (
    InBatchNegatives,
    PinSageHardNegatives,
    PinSageHardParams,
    UniformNegatives,
    make_negative_sampler,
    positive_test,
)

CLICK = ("user", "click", "item")
LIKE = ("user", "like", "item")


def _fan() -> HeteroCSR:
    """User 0 clicks item 0; item 0 is also clicked by users 1 and 2; user 1
    likes item 1, user 2 likes items 1 and 2 (two relations: the walk graph is
    their union). From user 0 a walk of two items goes item 0, then user 0, 1
    or 2 (1/3 each), then one of that user's items:

    * item 0: 1/3 + 1/6 + 1/9 = 11/18 (a known positive of user 0: masked),
    * item 1: 1/6 + 1/9 = 5/18 (rank 0),
    * item 2: 1/9 = 2/18 (rank 1).
    """
    click = (torch.tensor([0, 1, 2]), torch.tensor([0, 0, 0]))
    like = (torch.tensor([1, 2, 2]), torch.tensor([1, 1, 2]))
    return HeteroCSR.from_coo({"user": 3, "item": 3}, {CLICK: click, LIKE: like})


def _sampler(graph: HeteroCSR, num_neg: int = 2, **params) -> PinSageHardNegatives:
    return PinSageHardNegatives(
        num_neg, graph=graph, edge_types=[CLICK, LIKE], params=params
    )


def test_walk_counts_match_the_hand_computed_visit_probabilities():
    neg = _sampler(_fan(), walks=20_000, walk_length=2)
    row, item, count = neg.walk_counts(np.array([0]), np.random.default_rng(0))
    assert row.tolist() == [0, 0, 0] and item.tolist() == [0, 1, 2]
    # step 1 always visits item 0; step 2 by the probabilities of the docstring
    expected = 20_000 * np.array([1 + 11 / 18, 5 / 18, 2 / 18])
    np.testing.assert_allclose(count, expected, rtol=0.03)


@pytest.mark.parametrize(
    ("lo", "hi", "items", "short"),
    # [5, 10) asks more than the 2 visited items: [min(5, 2 // 2), 2) = rank 1
    [(0, 1, {1}, 0), (1, 2, {2}, 0), (5, 10, {2}, 1)],
)
def test_hard_negatives_come_from_the_rank_band(lo, hi, items, short):
    graph = _fan()
    neg = _sampler(
        graph,
        num_neg=2,
        easy="uniform",
        hard_start=2,
        hard_rank_lo=lo,
        hard_rank_hi=hi,
        walks=2000,
        walk_length=2,
    )
    src, dst = torch.tensor([0, 0]), torch.tensor([0, 0])
    draw = neg.draw(
        src,
        dst,
        num_src=3,
        num_dst=3,
        rng=np.random.default_rng(1),
        is_positive=positive_test(graph, CLICK, src, dst),
    )
    assert set(draw.dst_neg.flatten().tolist()) == items
    assert not draw.dst_bad.any()  # the known positive (item 0) is masked
    assert neg.last_stats == {"users": 1, "short_band": short, "no_band": 0}


def test_curriculum_replaces_more_columns_each_epoch_and_is_seeded():
    graph = _fan()
    params = dict(
        easy="in_batch",
        hard_start=0,
        hard_per_epoch=1,
        hard_max=2,
        hard_rank_lo=1,
        hard_rank_hi=2,
        walks=2000,
        walk_length=2,
    )
    neg = _sampler(graph, num_neg=3, **params)
    easy = InBatchNegatives(3)
    src, dst = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 0, 1, 2])

    def draw(sampler):
        return sampler.draw(
            src,
            dst,
            num_src=3,
            num_dst=3,
            rng=np.random.default_rng(7),
            is_positive=positive_test(graph, CLICK, src, dst),
        )

    base = draw(easy)
    assert neg.num_hard() == 0  # epoch 0: no hard negatives (PinSage)
    torch.testing.assert_close(draw(neg).dst_neg, base.dst_neg)
    for epoch, n_hard in ((1, 1), (2, 2), (5, 2)):  # capped by hard_max
        neg.set_epoch(epoch)
        assert neg.num_hard() == n_hard
        got = draw(neg)
        # the easy columns and the item side are the easy sampler's
        torch.testing.assert_close(
            got.dst_neg[:, : 3 - n_hard], base.dst_neg[:, : 3 - n_hard]
        )
        torch.testing.assert_close(got.src_neg, base.src_neg)
        # user 0's hard negatives: rank 1 of its walks = item 2
        assert set(got.dst_neg[:2, 3 - n_hard :].flatten().tolist()) == {2}
        # flags = the graph's edges / batch positives, recomputed for hard columns
        pos = positive_test(graph, CLICK, src, dst)
        flat = pos(src.unsqueeze(1).expand(4, 3).flatten(), got.dst_neg.flatten())
        torch.testing.assert_close(got.dst_bad, flat.view(4, 3))
        torch.testing.assert_close(draw(neg).dst_neg, got.dst_neg)  # seeded


def test_user_without_band_keeps_its_easy_negatives():
    # user 1 likes the only item; walks visit only known positives
    graph = HeteroCSR.from_coo(
        {"user": 2, "item": 2},
        {CLICK: (torch.tensor([0, 1]), torch.tensor([0, 1]))},
    )
    neg = PinSageHardNegatives(
        2,
        graph=graph,
        edge_types=[CLICK],
        params={"easy": "uniform", "hard_start": 2, "walks": 10},
    )
    src, dst = torch.tensor([0]), torch.tensor([0])
    rng = np.random.default_rng(3)
    got = neg.draw(
        src,
        dst,
        num_src=2,
        num_dst=2,
        rng=rng,
        is_positive=positive_test(graph, CLICK, src, dst),
    )
    ref = UniformNegatives(2).draw(
        src,
        dst,
        num_src=2,
        num_dst=2,
        rng=np.random.default_rng(3),
        is_positive=positive_test(graph, CLICK, src, dst),
    )
    torch.testing.assert_close(got.dst_neg, ref.dst_neg)
    assert neg.last_stats["no_band"] == 1


def test_errors_name_the_parameter():
    graph = _fan()
    with pytest.raises(ValueError, match="hard_rank_hi=5 must be > hard_rank_lo=5"):
        PinSageHardParams(hard_rank_lo=5, hard_rank_hi=5)
    with pytest.raises(ValueError, match="walks"):
        PinSageHardParams(walks=0)
    with pytest.raises(ValueError, match="hard_max=4 must be <= num_neg=2"):
        _sampler(graph, num_neg=2, hard_max=4)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        _sampler(graph).set_epoch(-1)
    with pytest.raises(ValueError, match="needs graph and edge_types"):
        make_negative_sampler("pinsage_hard", 2)
    with pytest.raises(ValueError, match="takes no params"):
        make_negative_sampler("in_batch", 2, params={"walks": 3})
    with pytest.raises(ValueError, match="same node types"):
        PinSageHardNegatives(
            2, graph=graph, edge_types=[CLICK, ("item", "rev_click", "user")]
        )
    neg = make_negative_sampler(
        "pinsage_hard", 2, graph=graph, edge_types=[CLICK], params=None
    )
    assert isinstance(neg, PinSageHardNegatives) and neg.min_batch() == 3


def test_config_block():
    from hgt_cluster_kedro.training.hgt import HGTTrainConfig

    cfg = HGTTrainConfig(
        neg_mode="pinsage_hard", hard_negatives={"hard_start": 4}, num_neg=63
    )
    assert cfg.hard_negatives.hard_start == 4
    with pytest.raises(
        ValueError, match="hard_negatives is set but neg_mode='in_batch'"
    ):
        HGTTrainConfig(hard_negatives={"hard_start": 4})
    with pytest.raises(ValueError, match="hard_max=9 must be <= num_neg=8"):
        HGTTrainConfig(
            neg_mode="pinsage_hard", num_neg=8, hard_negatives={"hard_max": 9}
        )
    with pytest.raises(ValueError, match="batch_size=8 is too small"):
        HGTTrainConfig(neg_mode="pinsage_hard", num_neg=8, batch_size=8)
    with pytest.raises(ValueError, match="extra"):
        HGTTrainConfig(neg_mode="pinsage_hard", hard_negatives={"walk": 3})
