"""The multi-relation link objective (``relations``): loss by hand and by a
plain-PyTorch reference, relation weights, no held-out positives, determinism,
and a short full-graph training run."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from hgt_cluster_kedro.graph import GraphArtifact, GraphSchema, HeteroCSR
from hgt_cluster_kedro.training.hgt import OBJECTIVES, LinkBatch, train_hgt
from hgt_cluster_kedro.training.hgt.objectives import MultiRelationLinkObjective

KEY = "hgt.train.objectives.relations.relation_weights"


def _schema() -> GraphSchema:
    """user -click-> item (target), item -tagged-> tag."""
    return GraphSchema.model_validate(
        {
            "node_types": {
                "user": {"id_column": "u"},
                "item": {"id_column": "i"},
                "tag": {"id_column": "t"},
            },
            "relations": {
                "click": {
                    "src": "user",
                    "dst": "item",
                    "src_column": "u",
                    "dst_column": "i",
                },
                "tagged": {
                    "src": "item",
                    "dst": "tag",
                    "src_column": "i",
                    "dst_column": "t",
                },
            },
            "user_type": "user",
            "item_type": "item",
            "target_relations": ["click"],
        }
    )


def _graph(click: list[tuple[int, int]], tagged: list[tuple[int, int]]):
    def coo(pairs):
        a = torch.tensor(pairs).T
        return a[0], a[1]

    csr = HeteroCSR.from_coo(
        {"user": 3, "item": 3, "tag": 3},
        {("user", "click", "item"): coo(click), ("item", "tagged", "tag"): coo(tagged)},
    )  # with the rev_ relations, which the objective must skip
    return SimpleNamespace(schema=_schema(), csr=csr)


def _batch(seed: int = 0) -> LinkBatch:
    z = torch.zeros(1, 1, dtype=torch.long)
    return LinkBatch(
        ("user", "click", "item"), z[0], z[0], z, z, z.bool(), z.bool(), seed
    )


def _objective(graph, **params) -> MultiRelationLinkObjective:
    return MultiRelationLinkObjective(
        MultiRelationLinkObjective.Params(**params), None, graph
    )


def test_registered_and_relations_chosen():
    assert OBJECTIVES["relations"] is MultiRelationLinkObjective
    assert MultiRelationLinkObjective.needs_full_graph
    graph = _graph([(0, 0), (1, 1)], [(0, 0), (1, 1)])
    # default: the target relation is left to the link objective; no rev_*
    assert _objective(graph).relations() == [("item", "tagged", "tag")]
    both = _objective(graph, include_targets=True).relations()
    assert both == [("user", "click", "item"), ("item", "tagged", "tag")]
    off = _objective(graph, include_targets=True, relation_weights={"tagged": 0})
    assert off.relations() == [("user", "click", "item")]


def test_loss_by_hand():
    # one relation, two edges item0 -> tag0, item1 -> tag1; items and tags on
    # the axes: cos(positive) = 1, cos(negative) = 0, so each side of each
    # positive is softplus(-2 * (1 - 0)) = log(1 + e^-2)
    graph = _graph([(0, 0), (1, 1)], [(0, 0), (1, 1)])
    eye = torch.eye(3)
    out = {"user": torch.randn(3, 3), "item": eye, "tag": 5.0 * eye}
    loss = _objective(graph, num_neg=1, scale=2.0).loss(_batch(), out)
    assert float(loss) == pytest.approx(math.log1p(math.exp(-2.0)))


def _reference(graph, out, weights, scale) -> float:
    """Plain PyTorch: every other positive of the relation is a negative (the
    batch holds all edges, num_neg = edges - 1), masked when equal to the
    positive's endpoint or joined to the anchor by an edge."""
    total, wsum = 0.0, 0.0
    for name, w in weights.items():
        et = graph.schema.edge_type(name)
        src, dst = graph.csr.to_coo(et)
        edges = set(zip(src.tolist(), dst.tolist(), strict=True))
        pairs = sorted(edges)
        a, b = out[et[0]], out[et[2]]

        def cos(x, y):
            return float(F.cosine_similarity(x, y, dim=0))

        dst_side, src_side = [], []
        for s, d in pairs:
            for s2, d2 in pairs:
                if (s2, d2) == (s, d):
                    continue
                if d2 != d and (s, d2) not in edges:  # negative tail of s
                    x = cos(a[s], b[d]) - cos(a[s], b[d2])
                    dst_side.append(math.log1p(math.exp(-scale * x)))
                if s2 != s and (s2, d) not in edges:  # negative head of d
                    x = cos(b[d], a[s]) - cos(b[d], a[s2])
                    src_side.append(math.log1p(math.exp(-scale * x)))
        loss = 0.5 * (np.mean(dst_side) if dst_side else 0.0)
        loss += 0.5 * (np.mean(src_side) if src_side else 0.0)
        total += w * loss
        wsum += w
    return total / wsum


def test_loss_matches_plain_pytorch_reference():
    # click: 3 edges; tagged: 4 edges, item 0 has tags 0 and 1 (so tag 1 is a
    # known positive of item 0 and is masked as its negative), items 1 and 2
    # share tag 2 (equal endpoints: masked)
    graph = _graph([(0, 0), (1, 1), (2, 0)], [(0, 0), (0, 1), (1, 2), (2, 2)])
    g = torch.Generator().manual_seed(3)
    out = {t: torch.randn(3, 4, generator=g) for t in ("user", "item", "tag")}
    weights = {"click": 2.0, "tagged": 0.5}
    obj = _objective(
        graph,
        include_targets=True,
        relation_weights=weights,
        num_neg=63,  # capped at edges - 1: every other positive
        scale=3.0,
    )
    expected = _reference(graph, out, weights, 3.0)
    for seed in (0, 1, 7):  # any draw order: the batch holds every edge
        assert float(obj.loss(_batch(seed), out)) == pytest.approx(expected, rel=1e-5)
    # the weights matter: equal weights give another value
    equal = _objective(graph, include_targets=True, num_neg=63, scale=3.0)
    assert float(equal.loss(_batch(), out)) == pytest.approx(
        _reference(graph, out, {"click": 1.0, "tagged": 1.0}, 3.0), rel=1e-5
    )
    assert abs(float(equal.loss(_batch(), out)) - expected) > 1e-3
    # gradients reach both endpoint tables
    leaf = {t: x.clone().requires_grad_() for t, x in out.items()}
    obj.loss(_batch(), leaf).backward()
    assert all(float(leaf[t].grad.abs().sum()) > 0 for t in ("user", "item", "tag"))


def test_relation_weights_are_validated():
    graph = _graph([(0, 0), (1, 1)], [(0, 0), (1, 1)])
    with pytest.raises(ValueError, match=rf"{KEY}: 'venue' is not a relation"):
        _objective(graph, relation_weights={"venue": 1.0})
    with pytest.raises(ValueError, match=rf"{KEY}: 'rev_tagged' is not a relation"):
        _objective(graph, relation_weights={"rev_tagged": 1.0})
    with pytest.raises(ValueError, match=rf"{KEY}.tagged must be >= 0 \(got -1.0\)"):
        _objective(graph, relation_weights={"tagged": -1.0})
    with pytest.raises(ValueError, match="'click' is a target relation"):
        _objective(graph, relation_weights={"click": 1.0})
    with pytest.raises(ValueError, match="no relation to score"):
        _objective(graph, relation_weights={"tagged": 0.0})
    with pytest.raises(ValueError, match="extra"):
        MultiRelationLinkObjective.Params(relation_weight={"tagged": 1.0})


def test_same_seed_same_pairs_and_uniform_draw():
    graph = _graph([(0, 0), (1, 1)], [(i, j) for i in range(3) for j in range(3)])
    obj = _objective(graph, batch_size=4)
    a, b, c = obj.pairs(11), obj.pairs(11), obj.pairs(12)
    assert all(
        torch.equal(x[1], y[1]) and torch.equal(x[2], y[2])
        for x, y in zip(a, b, strict=True)
    )
    assert any(
        not torch.equal(x[1], y[1]) or not torch.equal(x[2], y[2])
        for x, y in zip(a, c, strict=True)
    )
    # 4 of 9 edges per step; over many steps every edge is drawn
    seen = set()
    for seed in range(50):
        ((_, s, d),) = obj.pairs(seed)
        assert s.numel() == 4
        seen |= set(zip(s.tolist(), d.tolist(), strict=True))
    assert seen == {(i, j) for i in range(3) for j in range(3)}


def test_positives_never_include_held_out_target_edges():
    """Through the real split and graph build: valid / test pairs are not in
    graph.csr, so no step draws one (include_targets: the target relations)."""
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
    obj = _objective(graph, include_targets=True, batch_size=64)
    assert len(obj.relations()) == 2  # follow_note and share_note
    drawn = set()
    for seed in range(30):
        for _, s, d in obj.pairs(seed):
            drawn |= set(zip(s.tolist(), d.tolist(), strict=True))
    assert not drawn & held_pairs
    assert drawn <= train_pairs and len(drawn) > 0.9 * len(train_pairs)


def _planted_with_topics():
    """The planted user-item graph plus item -in_topic-> topic (the item's
    community, 10 % noise): a relation beyond the target ones."""
    from tests.hgt import planted_artifact

    base, val, communities = planted_artifact()
    csr, n_items = base.csr, base.csr.num_nodes["item"]
    rng = np.random.default_rng(5)
    topic = np.arange(n_items) % 4
    noisy = rng.random(n_items) < 0.1
    topic[noisy] = rng.integers(0, 4, int(noisy.sum()))
    edges = {
        et: csr.to_coo(et) for et in csr.edge_types if not et[1].startswith("rev_")
    }
    edges[("item", "in_topic", "topic")] = (
        torch.arange(n_items),
        torch.from_numpy(topic),
    )
    new_csr = HeteroCSR.from_coo({**csr.num_nodes, "topic": 4}, edges)
    schema = base.schema.model_dump()
    schema["node_types"]["topic"] = {"id_column": "t"}
    schema["relations"]["in_topic"] = {
        "src": "item",
        "dst": "topic",
        "src_column": "i",
        "dst_column": "t",
    }
    ids = {**base.ids, "topic": pd.Index(np.arange(4))}
    graph = GraphArtifact(
        GraphSchema.model_validate(schema), new_csr, ids, dict(base.features)
    )
    return graph, val


def test_train_hgt_full_mode_with_link_and_relations():
    graph, val = _planted_with_topics()
    cfg = {
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
        "epochs": 4,
        "patience": None,
        "progress": False,
        "num_threads": 1,
        "device": "cpu",
    }
    rel = {"batch_size": 64, "num_neg": 15, "relation_weights": {"in_topic": 1.0}}
    _, h_link = train_hgt(graph, val, {**cfg, "objectives": {"link": {}}})
    _, h = train_hgt(graph, val, {**cfg, "objectives": {"link": {}, "relations": rel}})
    assert h["mode"] == "full" and h["total_steps"] == h_link["total_steps"]
    loss = h["train_loss"]
    assert all(math.isfinite(x) for x in loss) and loss[-1] < 0.8 * loss[0]
    assert h["train_loss"] != pytest.approx(h_link["train_loss"])  # it took part
    assert h["best_val_recall"] is not None and h["best_val_recall"] > 0
    # refused in sampled mode
    with pytest.raises(ValueError, match="'relations' needs the full-graph mode"):
        train_hgt(
            graph,
            val,
            {**cfg, "mode": "sampled", "objectives": {"link": {}, "relations": rel}},
        )


@pytest.mark.slow
def test_full_mode_two_ranks_when_an_output_is_unread(tmp_path):
    """torchrun, 2 ranks, full mode, the link objective alone on a graph with
    topics: no objective reads the topics' outputs, so the last layer's topic
    weights get no gradient; DDP must allow it (it stopped the DBLP run with
    "Expected to have finished reduction" before find_unused_parameters)."""
    from hgt_cluster_kedro.training.distributed import train_distributed
    from tests.hgt.test_distributed import _loopback

    graph, val = _planted_with_topics()
    cfg = {
        "mode": "full",
        "neg_mode": "in_batch",
        "num_neg": 15,
        "full_batch_size": 128,
        "hidden": 16,
        "heads": 2,
        "epochs": 2,
        "patience": None,
        "progress": False,
        "device": "cpu",
        "log_every": 0,
        "objectives": {"link": {}},
    }
    _, history = train_distributed(
        graph, val, cfg, tmp_path / "run", **_loopback(nproc_per_node=2)
    )
    assert history["mode"] == "full" and history["stop_reason"] == "epochs"
    assert history["total_steps"] > 2 and history["restarts"] == []
