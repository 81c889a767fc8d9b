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
    assert cfg.objectives["link"].weight == 0.5 and cfg.objectives["link"].scale == 2
    assert cfg.objectives["som"].weight == 0.3  # the objective's own default
    with pytest.raises(ValueError, match="extra"):
        HGTTrainConfig(objectives={"link": {"scael": 1.0}})
    with pytest.raises(ValueError, match="at least one objective"):
        HGTTrainConfig(objectives={})
