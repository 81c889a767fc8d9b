"""The SwAV-style prototype objective: Sinkhorn codes, the swapped-prediction
loss on hand-worked and reference cases, gradients, and a short training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hgt_cluster_kedro.models.prototypes import (
    Prototypes,
    sinkhorn,
    swapped_prediction_loss,
)
from hgt_cluster_kedro.training.hgt import (
    OBJECTIVES,
    HGTTrainConfig,
    LinkBatch,
    load_hgt,
    save_hgt,
    train_hgt,
)
from hgt_cluster_kedro.training.hgt.objectives import PrototypeObjective
from tests.hgt import planted_artifact
from tests.hgt.test_trainer import FAST


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_sinkhorn_rows_sum_to_one_and_prototypes_share_the_mass():
    # every sample prefers prototype 0: a plain softmax would put all of them
    # there; the codes must still give each of the 2 prototypes half the mass
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.3], [0.7, 0.2], [0.95, 0.6]])
    q = sinkhorn(scores, epsilon=0.1, iters=200)
    torch.testing.assert_close(q.sum(1), torch.ones(4))
    torch.testing.assert_close(q.sum(0), torch.full((2,), 2.0), atol=1e-4, rtol=0)
    assert (q.argmax(1) == 1).any()  # a sample is moved to the unused prototype
    # one iteration, by hand: columns to 1/K, rows to 1/B, times B
    q1 = sinkhorn(scores, epsilon=0.1, iters=1)
    e = np.exp(scores.numpy().astype(np.float64) / 0.1)
    e = e / e.sum(0, keepdims=True)
    e = e / e.sum(1, keepdims=True)
    np.testing.assert_allclose(q1.numpy(), e, rtol=1e-5)
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn(scores, epsilon=0.0)
    with pytest.raises(ValueError, match="iters"):
        sinkhorn(scores, iters=0)


def test_swapped_prediction_by_hand():
    # two samples on the two axes, prototypes on the same axes, b = a: scores I.
    # The 2x2 symmetric exp(I / eps) is already balanced, so the codes are its
    # rows normalised: q = (sigmoid(1/eps), sigmoid(-1/eps)); the predictions
    # p = (sigmoid(1/t), sigmoid(-1/t)). Loss = -sum_k q_k log p_k.
    a = torch.eye(2)
    c = torch.eye(2)
    loss = swapped_prediction_loss(a, a, c, temperature=1.0, epsilon=0.5, iters=3)
    q, p = _sigmoid(2.0), _sigmoid(1.0)
    expect = -(q * math.log(p) + (1 - q) * math.log(1 - p))
    assert float(loss) == pytest.approx(expect, rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        swapped_prediction_loss(a, a, c, temperature=0.0)
    with pytest.raises(ValueError, match=r"\[K, d\]"):
        swapped_prediction_loss(a, a, torch.eye(3))


def _reference(a, b, c, *, temperature, epsilon, iters):
    """SwAV's published ``distributed_sinkhorn`` and loss, in NumPy."""

    def norm(x):
        x = x.astype(np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def codes(s):
        q = np.exp(s / epsilon).T  # [K, B]
        q /= q.sum()
        k, n = q.shape
        for _ in range(iters):
            q /= q.sum(axis=1, keepdims=True)
            q /= k
            q /= q.sum(axis=0, keepdims=True)
            q /= n
        return (q * n).T

    def log_softmax(x):
        x = x - x.max(1, keepdims=True)
        return x - np.log(np.exp(x).sum(1, keepdims=True))

    cn = norm(c)
    sa, sb = norm(a) @ cn.T, norm(b) @ cn.T
    qa, qb = codes(sa), codes(sb)
    la, lb = log_softmax(sa / temperature), log_softmax(sb / temperature)
    return -0.5 * ((qa * lb).sum(1) + (qb * la).sum(1)).mean()


def test_swapped_prediction_matches_the_reference_and_has_gradients():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(7, 5, generator=gen, requires_grad=True)
    b = torch.randn(7, 5, generator=gen, requires_grad=True)
    protos = Prototypes(3, 5)
    loss = swapped_prediction_loss(a, b, protos.weight, temperature=0.2, epsilon=0.1)
    arrays = (a.detach().numpy(), b.detach().numpy(), protos.weight.detach().numpy())
    ref = _reference(*arrays, temperature=0.2, epsilon=0.1, iters=3)
    assert float(loss.detach()) == pytest.approx(ref, rel=1e-5)
    loss.backward()
    for t in (a, b, protos.weight):
        assert t.grad is not None and float(t.grad.abs().sum()) > 0
    # the read-out: nearest prototype by cosine
    z = protos.weight.detach()[[2, 0, 1]] * 3.0
    assert protos.assign(z).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="num_prototypes"):
        Prototypes(1, 5)


def _batch() -> LinkBatch:
    return LinkBatch(
        ("user", "click", "item"),
        src_index=torch.tensor([0, 1]),
        dst_index=torch.tensor([1, 0]),
        src_neg_index=torch.tensor([[1], [0]]),
        dst_neg_index=torch.tensor([[0], [1]]),
        src_neg_mask=torch.ones(2, 1, dtype=torch.bool),
        dst_neg_mask=torch.ones(2, 1, dtype=torch.bool),
    )


def test_objective_reads_the_pairs_of_the_batch():
    assert OBJECTIVES["prototype"] is PrototypeObjective
    cfg = HGTTrainConfig(objectives={"link": {}, "prototype": {"weight": 0.5}})
    p = cfg.objectives.prototype
    assert (p.weight, p.num_prototypes, p.sinkhorn_iters) == (0.5, 16, 3)
    with pytest.raises(ValueError, match="epsilon"):
        HGTTrainConfig(objectives={"prototype": {"epsilon": 0.0}})
    assert PrototypeObjective.encoder_kwargs(p) == {
        "prototypes": {"num_prototypes": 16}
    }
    model = torch.nn.Module()
    model.prototypes = Prototypes(2, 2)
    with torch.no_grad():
        model.prototypes.weight.copy_(torch.eye(2) * 2.0)
    params = PrototypeObjective.Params(temperature=1.0, epsilon=0.5, sinkhorn_iters=3)
    objective = PrototypeObjective(params, model)
    # users (e1, e2) paired with items 1, 0 = (e1, e2): the hand case above
    out = {"user": torch.eye(2), "item": torch.eye(2)[[1, 0]]}
    q, pr = _sigmoid(2.0), _sigmoid(1.0)
    expect = -(q * math.log(pr) + (1 - q) * math.log(1 - pr))
    assert float(objective.loss(_batch(), out)) == pytest.approx(expect, rel=1e-6)
    objective.after_step(_batch(), out, None)  # back to unit prototypes
    torch.testing.assert_close(model.prototypes.weight, torch.eye(2))


def test_train_with_link_and_prototype(tmp_path):
    graph, val, communities = planted_artifact()
    objectives = {
        "link": {"scale": 2.0},
        "prototype": {"weight": 0.5, "num_prototypes": 4, "temperature": 0.1},
    }
    cfg = {**FAST, "epochs": 3, "patience": None, "objectives": objectives}
    model, history = train_hgt(graph, val, cfg)
    assert model.prototypes is not None
    w = model.prototypes.weight.detach()
    torch.testing.assert_close(w.norm(dim=1), torch.ones(4))
    # the same seed without training: the prototypes moved
    from hgt_cluster_kedro.training.hgt.loop import _new_model

    start = _new_model(HGTTrainConfig.model_validate(cfg), graph).prototypes.weight
    assert float((start.detach() - w).abs().max()) > 1e-3
    again = load_hgt(save_hgt(model, tmp_path / "m.safetensors"))
    torch.testing.assert_close(again.prototypes.weight, model.prototypes.weight)
    assert again.config["prototypes"] == {"num_prototypes": 4}
    assert all(math.isfinite(v) for v in history["train_loss"])
    # the read-out uses more than one prototype (the equipartition's point)
    from hgt_cluster_kedro.training.hgt import embed_all

    emb = torch.from_numpy(embed_all(model, graph, "user", progress=False))
    used = torch.unique(model.prototypes.assign(emb)).numel()
    assert used >= 3
