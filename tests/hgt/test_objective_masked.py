"""The masked-edge objective (``masked_edge``, after KGRec / HGMAE): the mask is
seeded, masks a relation with its ``rev_`` twin, keeps earlier removals and
never holds a held-out pair; the reconstruction and the cross-view InfoNCE
against plain-PyTorch references and a hand-worked case; a short full-graph
training run through ``train_hgt``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from hgt_cluster_kedro.graph import GraphArtifact, GraphSchema, HeteroCSR
from hgt_cluster_kedro.models.hgt_attention import FullGraph
from hgt_cluster_kedro.training.hgt import (
    OBJECTIVES,
    HGTTrainConfig,
    LinkBatch,
    train_hgt,
)
from hgt_cluster_kedro.training.hgt.objectives import MaskedEdgeObjective, info_nce
from tests.hgt import planted_artifact

KEY = "hgt.train.objectives.masked_edge.relations"
CLICK = ("user", "click", "item")


def _batch(seed: int = 0) -> LinkBatch:
    z = torch.zeros(1, 1, dtype=torch.long)
    return LinkBatch(CLICK, z[0], z[0], z, z, z.bool(), z.bool(), seed)


def _objective(graph, **params) -> MaskedEdgeObjective:
    return MaskedEdgeObjective(MaskedEdgeObjective.Params(**params), None, graph)


def _full(graph) -> FullGraph:
    return FullGraph.from_csr(graph.csr, graph.csr.edge_types)


def _removed(full: FullGraph, keep, et) -> set[tuple[int, int]]:
    """``(src, dst)`` pairs (forward orientation of ``et`` or of its ``rev_``
    twin's forward) whose edge of type ``et`` is flagged 0 in ``keep``."""
    g = full.dst[et[2]]
    pos = [tuple(e) for e in full.edge_types].index(tuple(et))
    sel = (g.rel == g.relations.index(pos)) & (keep[et[2]] == 0)
    return set(zip(g.src[sel].tolist(), g.dst[sel].tolist(), strict=True))


def _flip(pairs):
    return {(b, a) for a, b in pairs}


def test_registered_and_configured():
    assert OBJECTIVES["masked_edge"] is MaskedEdgeObjective
    assert MaskedEdgeObjective.needs_full_graph
    cfg = HGTTrainConfig(objectives={"masked_edge": {"mask_ratio": 0.2}})
    assert cfg.objectives.masked_edge.mask_ratio == 0.2
    assert cfg.objectives.masked_edge.relations == "targets"
    with pytest.raises(ValueError, match="extra"):
        HGTTrainConfig(objectives={"masked_edge": {"mask_rate": 0.2}})
    with pytest.raises(ValueError, match="mask_ratio"):
        MaskedEdgeObjective.Params(mask_ratio=1.0)
    graph, _, _ = planted_artifact(n_users=20, n_items=40)
    assert _objective(graph).relations() == [
        ("user", "click", "item"),
        ("user", "like", "item"),
    ]
    assert _objective(graph, relations=["like"]).relations() == [
        ("user", "like", "item")
    ]
    with pytest.raises(ValueError, match=rf"{KEY}: 'rev_like' is not a relation"):
        _objective(graph, relations=["rev_like"])
    with pytest.raises(ValueError, match=rf"{KEY}: the list is empty"):
        _objective(graph, relations=[])


def test_mask_is_seeded_masks_twins_and_keeps_earlier_removals():
    graph, _, _ = planted_artifact()
    full = _full(graph)
    obj = _objective(graph, relations=["click"], mask_ratio=0.25)
    click = CLICK
    rev = ("item", "rev_click", "user")
    like, rev_like = ("user", "like", "item"), ("item", "rev_like", "user")
    a = obj.message_keep(_batch(5), None, full)
    b = _objective(graph, relations=["click"], mask_ratio=0.25).message_keep(
        _batch(5), None, full
    )
    c = obj.message_keep(_batch(6), None, full)
    assert all(torch.equal(a[t], b[t]) for t in a)  # same seed, same mask
    assert any(not torch.equal(a[t], c[t]) for t in a)  # another seed, another
    masked = _removed(full, a, click)
    n_click = graph.csr.num_edges(click)
    assert 0.15 * n_click < len(masked) < 0.35 * n_click
    # the reverse twin loses exactly the same pairs; like is untouched
    assert _flip(_removed(full, a, rev)) == masked
    assert not _removed(full, a, like) and not _removed(full, a, rev_like)
    # the masked pairs are what the reconstruction scores
    ((et, src, dst),) = obj.masked_pairs(5, full)
    assert et == click and set(zip(src.tolist(), dst.tolist(), strict=True)) == masked
    # an earlier removal (the step's targets) stays removed, and the input
    # flags are not modified in place
    base = {t: torch.ones(g.num_edges, dtype=torch.uint8) for t, g in full.dst.items()}
    base["item"][0] = 0
    out = obj.message_keep(_batch(5), base, full)
    assert int(out["item"][0]) == 0 and int(base["item"].sum()) == len(base["item"]) - 1
    assert int(out["user"].sum()) == int(a["user"].sum())
    # "all" masks every relation (here: click and like) with its twin
    both = _objective(graph, relations="all", mask_ratio=0.25)
    keep = both.message_keep(_batch(5), None, full)
    assert _removed(full, keep, like)
    assert _flip(_removed(full, keep, rev_like)) == _removed(full, keep, like)


def test_masked_edges_never_include_held_out_pairs():
    """Through the real split and graph build: valid / test pairs are not in
    the train graph, so no mask ever holds one."""
    from hgt_cluster_kedro.graph import (
        SplitConfig,
        build_graph,
        index_tables,
        split_interactions,
    )
    from tests.graph._tables import user_note_schema, user_note_tables

    nodes, edges = user_note_tables()
    tables = index_tables(nodes, edges, user_note_schema())
    inter = split_interactions(tables, SplitConfig(method="random", seed=1))
    graph = build_graph(tables, inter)
    held = inter[inter["split"] != "train"]
    held_pairs = set(zip(held["user"], held["item"], strict=True))
    train = inter[inter["split"] == "train"]
    train_pairs = set(zip(train["user"], train["item"], strict=True))
    assert held_pairs and not held_pairs & train_pairs
    full = _full(graph)
    obj = _objective(graph, mask_ratio=0.5)
    assert len(obj.relations()) == 2  # the two target relations
    drawn = set()
    for seed in range(30):
        for _, s, d in obj.masked_pairs(seed, full):
            drawn |= set(zip(s.tolist(), d.tolist(), strict=True))
    assert not drawn & held_pairs
    assert drawn <= train_pairs and len(drawn) > 0.9 * len(train_pairs)


def _tiny():
    """user -click-> item: 4 users, 4 items, edges (0,0) (1,1) (2,2) (3,3)
    (0,1); one target relation."""
    rel = {"src": "user", "dst": "item", "src_column": "u", "dst_column": "i"}
    schema = GraphSchema.model_validate(
        {
            "node_types": {"user": {"id_column": "u"}, "item": {"id_column": "i"}},
            "relations": {"click": rel},
            "user_type": "user",
            "item_type": "item",
            "target_relations": ["click"],
        }
    )
    src, dst = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([0, 1, 2, 3, 1])
    csr = HeteroCSR.from_coo({"user": 4, "item": 4}, {CLICK: (src, dst)})
    ids = {t: pd.Index(np.arange(4)) for t in ("user", "item")}
    return GraphArtifact(schema, csr, ids, {})


def _reference_reconstruction(graph, pairs, out, scale) -> float:
    """Plain PyTorch: each masked pair against every other masked pair's
    endpoints (negatives equal to the positive's endpoint, or joined to the
    anchor by a click edge, are left out), both sides, halved."""
    src, dst = graph.csr.to_coo(CLICK)
    edges = set(zip(src.tolist(), dst.tolist(), strict=True))

    def cos(x, y):
        return float(F.cosine_similarity(x, y, dim=0))

    u, v = out["user"], out["item"]
    dst_side, src_side = [], []
    for s, d in pairs:
        for s2, d2 in pairs:
            if (s2, d2) == (s, d):
                continue
            if d2 != d and (s, d2) not in edges:
                x = cos(u[s], v[d]) - cos(u[s], v[d2])
                dst_side.append(math.log1p(math.exp(-scale * x)))
            if s2 != s and (s2, d) not in edges:
                x = cos(v[d], u[s]) - cos(v[d], u[s2])
                src_side.append(math.log1p(math.exp(-scale * x)))
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    return 0.5 * mean(dst_side) + 0.5 * mean(src_side)


def test_info_nce_by_hand_and_reference():
    # two users, views equal to the axes, tau 1: logits [[1, 0], [0, 1]];
    # each row's cross-entropy is -log(e / (e + 1)) = log(1 + e^-1)
    eye = torch.eye(2)
    assert float(info_nce(eye, eye, 1.0)) == pytest.approx(math.log1p(math.exp(-1)))
    # against a loop over rows (unnormalised inputs, tau 0.3)
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    ref = 0.0
    for i in range(5):
        ref += -math.log(
            math.exp(float(a[i] @ b[i]) / 0.3)
            / sum(math.exp(float(a[i] @ b[j]) / 0.3) for j in range(5))
        )
        ref += -math.log(
            math.exp(float(b[i] @ a[i]) / 0.3)
            / sum(math.exp(float(b[i] @ a[j]) / 0.3) for j in range(5))
        )
    assert float(info_nce(z1, z2, 0.3)) == pytest.approx(ref / 10, rel=1e-5)
    with pytest.raises(ValueError, match="tau must be > 0"):
        info_nce(z1, z2, 0.0)


def test_loss_matches_plain_pytorch_reference():
    graph = _tiny()
    full = _full(graph)
    g = torch.Generator().manual_seed(1)
    out = {t: torch.randn(4, 3, generator=g) for t in ("user", "item")}
    obj = _objective(
        graph, mask_ratio=0.6, num_neg=63, batch_size=64, scale=3.0, contrast_weight=0
    )
    seen = 0
    for seed in range(12):  # every seed: the batch holds every masked pair
        batch = _batch(seed)
        obj.message_keep(batch, None, full)
        ((_, s, d),) = obj.masked_pairs(seed, full)
        pairs = list(zip(s.tolist(), d.tolist(), strict=True))
        got = float(obj.loss(batch, out))
        if len(pairs) < 2:
            assert got == 0.0  # nothing to score against
            continue
        seen += 1
        assert got == pytest.approx(
            _reference_reconstruction(graph, pairs, out, 3.0), rel=1e-5
        )
    assert seen >= 3
    # hand-worked: masked pairs (0,0) and (1,1), users and items on the axes:
    # cos(positive) = 1, cos(negative) = 0. Item 1 as negative of user 0 is
    # the edge (0,1): left out; so is user 0 as negative of item 1. Left: user
    # 1's negative item 0 and item 0's negative user 1, each softplus(-3 * 1).
    obj.masked_pairs = lambda seed, full: [  # type: ignore[method-assign]
        (CLICK, torch.tensor([0, 1]), torch.tensor([0, 1]))
    ]
    eye = {"user": torch.eye(4, 3), "item": torch.eye(4, 3)}
    assert float(obj.loss(_batch(), eye)) == pytest.approx(math.log1p(math.exp(-3)))
    assert _reference_reconstruction(
        graph, [(0, 0), (1, 1)], eye, 3.0
    ) == pytest.approx(math.log1p(math.exp(-3)))
    # the contrast term joins with its weight, read from the extra view
    obj_c = _objective(graph, mask_ratio=0.6, contrast_weight=0.5, tau=0.5)
    batch = _batch(3)
    views = obj_c.extra_views(batch, None, full)
    assert len(views) == 1 and views[0] is not None
    obj_c.message_keep(batch, None, full)
    other = {t: torch.randn(4, 3, generator=g) for t in ("user", "item")}
    batch.views["masked_edge"] = [other]
    expected = obj_c.reconstruction(3, out) + 0.5 * info_nce(
        out["user"][torch.randperm(4, generator=_gen(3))],
        other["user"][torch.randperm(4, generator=_gen(3))],
        0.5,
    )
    assert float(obj_c.loss(batch, out)) == pytest.approx(float(expected), rel=1e-5)
    # "full" view: the step's flags as given (here: every edge)
    full_view = _objective(graph, contrast_view="full")
    assert full_view.extra_views(batch, None, full) == [None]
    assert _objective(graph, contrast_weight=0).extra_views(batch, None, full) == []


def _gen(seed: int) -> torch.Generator:
    from hgt_cluster_kedro.runtime import derive_seed

    return torch.Generator().manual_seed(derive_seed(seed, 403))


CFG = {
    "mode": "full",
    "neg_mode": "in_batch",
    "num_neg": 15,
    "full_batch_size": 128,
    "remove_targets": True,
    "use_features": False,
    "hidden": 16,
    "heads": 2,
    "dropout": 0.1,
    "lr": 0.01,
    "val_k": 10,
    "epochs": 2,
    "patience": None,
    "progress": False,
    "num_threads": 1,
    "device": "cpu",
}


def test_train_hgt_full_mode_with_link_and_masked_edge():
    graph, val, _ = planted_artifact()
    masked = {"mask_ratio": 0.2, "batch_size": 64, "num_neg": 15, "contrast_batch": 64}
    _, h_link = train_hgt(graph, val, {**CFG, "objectives": {"link": {}}})
    both = {"link": {}, "masked_edge": masked}
    _, h = train_hgt(graph, val, {**CFG, "objectives": both})
    assert h["mode"] == "full" and h["total_steps"] == h_link["total_steps"]
    loss = h["train_loss"]
    assert all(math.isfinite(x) for x in loss) and loss[-1] < 0.9 * loss[0]
    assert h["train_loss"] != pytest.approx(h_link["train_loss"])  # it took part
    assert h["best_val_recall"] is not None and h["best_val_recall"] > 0
    # deterministic: the same run again gives the same losses
    _, h2 = train_hgt(graph, val, {**CFG, "objectives": both})
    assert h2["train_loss"] == h["train_loss"]
    # the loop hands the extra view over: without the contrast, other losses
    no_cl = {"link": {}, "masked_edge": {**masked, "contrast_weight": 0.0}}
    _, h4 = train_hgt(graph, val, {**CFG, "objectives": no_cl})
    assert h4["train_loss"] != pytest.approx(h["train_loss"])
    # alone, with the "full" second view
    alone = {"masked_edge": {**masked, "contrast_view": "full"}}
    _, h3 = train_hgt(graph, val, {**CFG, "epochs": 1, "objectives": alone})
    assert all(math.isfinite(x) for x in h3["train_loss"])
    with pytest.raises(ValueError, match="'masked_edge' needs the full-graph mode"):
        train_hgt(graph, val, {**CFG, "mode": "sampled", "objectives": both})
