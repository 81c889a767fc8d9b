"""Warm start: the id embeddings begin from given tables (e.g. TwHIN's)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from hgt_cluster_kedro.models.hgt import HGTEncoder
from hgt_cluster_kedro.pipelines.hgt.nodes import twhin_tables
from hgt_cluster_kedro.training.hgt import embed_all, train_hgt
from hgt_cluster_kedro.training.hgt.model_io import load_init_embeddings
from tests.hgt import nmi_of_kmeans, planted_artifact
from tests.hgt.test_trainer import FAST


@pytest.fixture(scope="module")
def planted():
    return planted_artifact()


def _encoder(planted, hidden=16) -> HGTEncoder:
    graph = planted[0]
    return HGTEncoder(
        (graph.csr.node_types, graph.csr.edge_types),
        graph.csr.num_nodes,
        {},
        hidden=hidden,
        heads=2,
        num_layers=2,
        id_embedding_types="all",
    )


def test_tables_are_standardised_to_the_replaced_scale(planted, tmp_path):
    model = _encoder(planted)
    before_item = model.id_embeddings["item"].weight.detach().clone()
    std = float(model.id_embeddings["user"].weight.detach().std())
    table = torch.randn(120, 16) * 5.0 + 3.0
    path = tmp_path / "t.safetensors"
    save_file({"user": table}, str(path))
    assert load_init_embeddings(model, str(path)) == ["user"]
    got = model.id_embeddings["user"].weight.detach()
    expect = (table - table.mean(0)) / table.std(0) * std
    torch.testing.assert_close(got, expect)
    # a type without a table keeps its initialisation
    torch.testing.assert_close(model.id_embeddings["item"].weight, before_item)


def test_bad_tables_are_named(planted, tmp_path):
    model = _encoder(planted)
    path = tmp_path / "t.safetensors"
    save_file({"item": torch.zeros(160, 8)}, str(path))
    with pytest.raises(ValueError, match=r"table 'item' has shape \(160, 8\).*16"):
        load_init_embeddings(model, str(path))
    with pytest.raises(ValueError, match="init_embeddings .* is not a file"):
        load_init_embeddings(model, str(tmp_path / "missing.safetensors"))


def test_twhin_tables_need_the_hgt_width():
    state = {"tensors": {"embeddings.user": torch.zeros(3, 32), "translations": 0}}
    with pytest.raises(ValueError, match=r"twhin.dim \(\[32\]\).*hgt.train.hidden"):
        twhin_tables(state, 64)
    assert set(twhin_tables(state, 32)) == {"user"}
    with pytest.raises(ValueError, match="embedding tables"):
        twhin_tables({"tensors": {"x": torch.zeros(1)}}, 32)


def test_a_warm_start_carries_the_tables_structure(planted, tmp_path):
    """Tables that encode the communities (as a trained TwHIN's do) give an
    encoder whose user embeddings cluster by community after a few steps;
    the same steps from a random start do not."""
    graph, val, comm = planted
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 3.0
    users = centres[torch.as_tensor(comm)] + torch.randn(120, 16, generator=g)
    path = tmp_path / "tables.safetensors"
    save_file({"user": users}, str(path))
    cfg = {
        **FAST,
        "use_features": False,
        "id_embedding_types": "all",
        "epochs": 1,
        "max_steps": 2,
        "lr": 1e-3,
        "patience": None,
    }
    nmi = {}
    for name, extra in (("warm", {"init_embeddings": str(path)}), ("cold", {})):
        model, _ = train_hgt(graph, val, {**cfg, **extra})
        emb = embed_all(model, graph, "user", fanouts="full", progress=False)
        nmi[name] = nmi_of_kmeans(emb, comm, 4)
    assert nmi["warm"] > 0.8 and nmi["cold"] < 0.5, nmi
