"""HGTEncoder: forward / backward on a four-type schema, construction errors."""

from __future__ import annotations

import pytest
import torch

from hgt_cluster_kedro.graph.csr import HeteroCSR
from hgt_cluster_kedro.graph.sampler import NeighborSampler
from hgt_cluster_kedro.models.hgt import HGTEncoder

NUM = {"author": 30, "paper": 50, "term": 12, "venue": 3}


def _bibliographic(add_reverse: bool = True) -> HeteroCSR:
    g = torch.Generator().manual_seed(0)
    edges = {
        ("author", "writes", "paper"): (
            torch.randint(0, 30, (120,), generator=g),
            torch.randint(0, 50, (120,), generator=g),
        ),
        ("paper", "has_term", "term"): (
            torch.randint(0, 50, (100,), generator=g),
            torch.randint(0, 12, (100,), generator=g),
        ),
        ("paper", "in_venue", "venue"): (
            torch.arange(50),
            torch.randint(0, 3, (50,), generator=g),
        ),
    }
    return HeteroCSR.from_coo(NUM, edges, add_reverse=add_reverse)


def _encoder(csr: HeteroCSR, **kwargs) -> HGTEncoder:
    torch.manual_seed(0)
    kwargs.setdefault("features", {"author": torch.randn(30, 3)})
    return HGTEncoder(
        (csr.node_types, csr.edge_types),
        NUM,
        {"author": 3},
        hidden=16,
        heads=2,
        **kwargs,
    )


def test_forward_backward_four_node_types():
    csr = _bibliographic()
    model = _encoder(csr, dropout=0.2)
    # Only authors have features: the three other types get id embeddings.
    assert sorted(model.id_embeddings) == ["paper", "term", "venue"]
    sampler = NeighborSampler(csr, [4, 2], seed=0)
    batch = sampler.sample_links(
        ("author", "writes", "paper"),
        torch.tensor([0, 1, 2]),
        torch.tensor([3, 4, 5]),
        num_neg=2,
    )
    out = model(batch)
    assert set(out) == set(NUM)
    for t, h in out.items():
        assert h.shape == (batch[t].n_id.numel(), 16)
        assert torch.allclose(h.norm(dim=-1), torch.ones(h.shape[0]), atol=1e-5)
    sum(h.sum() for h in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_types_without_incoming_messages_keep_a_representation():
    # Without reverse relations no edge type ends at "author": PyG's HGTConv
    # returns None for it; the encoder applies the zero-aggregate update.
    csr = _bibliographic(add_reverse=False)
    model = _encoder(csr, dropout=0.0).eval()
    sampler = NeighborSampler(csr, [3, 3], seed=1)
    batch = sampler.sample_nodes({"paper": torch.arange(5), "author": torch.arange(4)})
    out = model(batch)
    assert out["author"].shape == (batch["author"].n_id.numel(), 16)
    assert torch.isfinite(out["author"]).all()
    out["author"].sum().backward()
    assert model.layers[0].conv.skip["author"].grad is not None


def test_eval_is_deterministic_and_features_can_come_from_the_batch():
    csr = _bibliographic()
    model = _encoder(csr).eval()
    batch = NeighborSampler(csr, [-1, -1]).sample_nodes({"author": torch.arange(6)})
    a = model(batch)["author"]
    assert torch.equal(a, model(batch)["author"])
    batch["author"].x = model._features_author[batch["author"].n_id]
    assert torch.allclose(a, model(batch)["author"])
    clone = HGTEncoder.from_config(model.config)
    clone.load_state_dict(model.state_dict())
    clone.attach_features({"author": model._features_author})
    assert torch.allclose(a, clone.eval()(batch)["author"])


def test_id_embedding_types_options():
    csr = _bibliographic()
    assert sorted(_encoder(csr, id_embedding_types="all").id_embeddings) == sorted(NUM)
    model = _encoder(csr, id_embedding_types=["author"])
    assert sorted(model.id_embeddings) == sorted(NUM)
    assert model.config["id_embedding_types"] == ["author", "paper", "term", "venue"]


def test_missing_features_raise():
    csr = _bibliographic()
    model = _encoder(csr, features=None)
    batch = NeighborSampler(csr, [2]).sample_nodes({"author": torch.arange(3)})
    with pytest.raises(ValueError, match="'author' has features"):
        model(batch)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden": 15, "heads": 2}, "hidden=15 must be divisible by heads=2"),
        ({"num_layers": 0}, "num_layers must be >= 1"),
        ({"feature_dims": {"author": 3, "journal": 2}}, "unknown node type 'journal'"),
        ({"feature_dims": {"author": 0}}, "must be > 0"),
        ({"id_embedding_types": ["nope"]}, r"unknown node types \['nope'\]"),
        ({"id_embedding_types": "some"}, "id_embedding_types must be"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"num_nodes": {"author": 30}}, "num_nodes has no entry"),
    ],
)
def test_construction_errors(kwargs, match):
    csr = _bibliographic()
    args = {
        "metadata": (csr.node_types, csr.edge_types),
        "num_nodes": NUM,
        "feature_dims": {"author": 3},
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        HGTEncoder(**args)


def test_unknown_edge_type_in_metadata_raises():
    with pytest.raises(ValueError, match="edge type"):
        HGTEncoder((["a"], [("a", "r", "b")]), {"a": 2}, {})
