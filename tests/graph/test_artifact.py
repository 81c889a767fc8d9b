"""The graph artifact: save/load round trip without pickle, HeteroData, id maps."""

from __future__ import annotations

import pytest
import torch

from hgt_cluster_kedro.graph import (
    GraphArtifact,
    SplitConfig,
    build_graph,
    index_tables,
    split_interactions,
)
from tests.graph._tables import user_note_schema, user_note_tables


@pytest.fixture(scope="module")
def artifact() -> GraphArtifact:
    nodes, edges = user_note_tables()
    tables = index_tables(nodes, edges, user_note_schema())
    return build_graph(tables, split_interactions(tables, SplitConfig()))


def test_reverse_relations_present(artifact):
    ets = set(artifact.csr.edge_types)
    assert ("note", "rev_follow_note", "user") in ets
    assert ("note", "rev_share_note", "user") in ets


def test_round_trip(tmp_path, artifact):
    artifact.save(tmp_path / "g")
    assert not list((tmp_path / "g").glob("*.pkl"))
    loaded = GraphArtifact.load(tmp_path / "g")
    assert loaded.num_nodes == artifact.num_nodes
    for et in artifact.csr.edge_types:
        assert torch.equal(loaded.csr.indptr[et], artifact.csr.indptr[et])
        assert torch.equal(loaded.csr.indices[et], artifact.csr.indices[et])
    assert torch.equal(loaded.features["note"], artifact.features["note"])
    assert list(loaded.ids["user"]) == list(artifact.ids["user"])
    assert loaded.schema == artifact.schema


def test_hetero_data_and_id_maps(artifact):
    data = artifact.to_hetero_data()
    assert data["user"].x.shape == (30, 1)
    assert data["user", "follow_note", "note"].edge_index.shape[0] == 2
    assert artifact.to_index("user", ["u3", "u0"]).tolist() == [3, 0]
    with pytest.raises(KeyError, match=r"user ids \['nobody'\]"):
        artifact.to_index("user", ["nobody"])
