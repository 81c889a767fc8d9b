"""Objectives on hand-worked cases, and the registry."""

from __future__ import annotations

import math

import pytest
import torch

from hgt_cluster_kedro.models.embedding_som import EmbeddingSOM
from hgt_cluster_kedro.training.hgt import OBJECTIVES, HGTTrainConfig, LinkBatch
from hgt_cluster_kedro.training.hgt.objectives import (
    JointSOMObjective,
    LinkObjective,
)

ET = ("user", "like", "item")


def _batch() -> LinkBatch:
    return LinkBatch(
        ET,
        src_index=torch.tensor([0]),
        dst_index=torch.tensor([1]),
        src_neg_index=torch.tensor([[1]]),
        dst_neg_index=torch.tensor([[0]]),
        src_neg_mask=torch.tensor([[True]]),
        dst_neg_mask=torch.tensor([[True]]),
    )


def test_link_loss_by_hand():
    # users u0 = (1, 0), u1 = (0, 1); items i0 = (0, 1), i1 = (1, 0)
    out = {
        "user": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        "item": torch.tensor([[0.0, 1.0], [1.0, 0.0]]),
    }
    params = LinkObjective.Params(scale=2.0)
    loss = LinkObjective(params).loss(_batch(), out)
    # positive (u0, i1): cos 1; negative item i0 for u0: cos 0; negative user u1
    # for i1: cos 0. Each side: softplus(-2 * (1 - 0)) = log(1 + e^-2).
    assert float(loss) == pytest.approx(math.log1p(math.exp(-2.0)))
    masked = _batch()
    masked.dst_neg_mask = torch.tensor([[False]])
    loss = LinkObjective(params).loss(masked, out)
    # the masked side has no kept pair: 0; the other side as above, halved
    assert float(loss) == pytest.approx(0.5 * math.log1p(math.exp(-2.0)))


def test_som_loss_is_the_squared_distance_to_the_winner():
    som = EmbeddingSOM(2, 2)
    som.initialise(torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]), seed=0)
    model = torch.nn.Module()
    model.som = som
    objective = JointSOMObjective(JointSOMObjective.Params(num_centres=2), model)
    out = {"user": torch.tensor([[0.5, 0.0], [2.0, 2.0]]), "item": torch.zeros(2, 2)}
    winner = som.centres[som.assign(out["user"][:1])][0]
    expected = float(((out["user"][0] - winner) ** 2).sum())
    assert float(objective.loss(_batch(), out)) == pytest.approx(expected)
    before = som.centres.clone()
    objective.after_step(_batch(), out, None)
    assert not torch.equal(before, som.centres)  # the map moved
    assert "val_som_loss" in objective.validate(out["user"])


def test_registry_and_config():
    assert {"link", "som"} <= set(OBJECTIVES)
    cfg = HGTTrainConfig(objectives={"link": {"weight": 0.5}, "som": {}})
    assert cfg.objectives.link.weight == 0.5 and cfg.objectives.link.scale == 2
    assert cfg.objectives.som.weight == 0.3  # the objective's own default
    with pytest.raises(ValueError, match="extra"):
        HGTTrainConfig(objectives={"link": {"scael": 1.0}})
    with pytest.raises(ValueError, match="at least one objective"):
        HGTTrainConfig(objectives={})


def _two_pairs_graph():
    """Users 0 and 1 share item 0 (like), users 2 and 3 share item 1 (buy)."""
    from types import SimpleNamespace

    from hgt_cluster_kedro.graph.csr import HeteroCSR

    csr = HeteroCSR.from_coo(
        {"user": 4, "item": 2},
        {
            ("user", "like", "item"): (torch.tensor([0, 1]), torch.tensor([0, 0])),
            ("user", "buy", "item"): (torch.tensor([2, 3]), torch.tensor([1, 1])),
        },
    )
    schema = SimpleNamespace(
        user_type="user",
        item_type="item",
        target_relations=["like", "buy"],
        edge_type=lambda r: ("user", r, "item"),
    )
    return SimpleNamespace(csr=csr, schema=schema)


def test_coengagement_pairs_are_users_sharing_an_item():
    from hgt_cluster_kedro.training.hgt.objectives import CoEngagementObjective

    graph = _two_pairs_graph()
    params = CoEngagementObjective.Params(batch_size=4, num_neg=1)
    objective = CoEngagementObjective(params, None, graph)
    seen = set()
    for seed in range(20):
        users, ends = objective.pairs(seed)
        assert users.numel() == 4  # every user has exactly one co-engaged peer
        seen |= set(zip(users.tolist(), ends.tolist(), strict=True))
    assert seen == {(0, 1), (1, 0), (2, 3), (3, 2)}
    # the loss is lower when co-engaged users are close than when they are not
    close = {"user": torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])}
    apart = {"user": torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0], [0, 1.0]])}
    batch = _batch()
    assert float(objective.loss(batch, close)) < float(objective.loss(batch, apart))
    # by hand for "close": anchor and positive cos 1; the negative (another
    # pair's end) cos 0 -> softplus(-2) on both sides
    assert float(objective.loss(batch, close)) == pytest.approx(
        math.log1p(math.exp(-2.0))
    )


def test_coengagement_needs_the_full_graph(tmp_path):
    from hgt_cluster_kedro.training.hgt import train_hgt
    from tests.hgt import planted_artifact

    graph, val, _ = planted_artifact()
    cfg = {
        "mode": "sampled",
        "objectives": {"link": {}, "coengagement": {}},
        "epochs": 1,
        "progress": False,
        "device": "cpu",
        "batch_size": 64,
    }
    with pytest.raises(ValueError, match="'coengagement' needs the full-graph mode"):
        train_hgt(graph, val, cfg)
