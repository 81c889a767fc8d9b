"""Tests for the HeteroCSR graph store."""

from __future__ import annotations

import json

import pytest
import torch

from hgt_cluster_kedro.graph.csr import HeteroCSR, edge_type_key, reverse_edge_type

from .conftest import RELATIONS, edge_set

LIKE = ("user", "like", "note")
REV_LIKE = ("note", "rev_like", "user")


def test_from_coo_round_trip(tiny, tiny_graph):
    _, edges = tiny
    for et, (src, dst) in edges.items():
        got = tiny_graph.to_coo(et)
        assert edge_set(*got) == edge_set(src, dst)
        assert got[0].numel() == len(edge_set(src, dst))  # duplicates merged


def test_layout_and_dtypes(tiny_graph):
    for et in tiny_graph.edge_types:
        indptr, indices = tiny_graph.indptr[et], tiny_graph.indices[et]
        assert indptr.dtype == torch.int64 and indices.dtype == torch.int32
        assert indptr.numel() == tiny_graph.num_nodes[et[0]] + 1
        assert int(indptr[0]) == 0 and int(indptr[-1]) == indices.numel()
        src, dst = tiny_graph.to_coo(et)
        key = src * tiny_graph.num_nodes[et[2]] + dst
        assert bool((key[1:] > key[:-1]).all())  # sorted by (src, dst), unique


def test_reverse_relation_is_transpose(tiny_graph):
    assert len(tiny_graph.edge_types) == 2 * len(RELATIONS)
    for rel in RELATIONS:
        fwd = ("user", rel, "note")
        rev = ("note", f"rev_{rel}", "user")
        assert reverse_edge_type(fwd) == rev and reverse_edge_type(rev) == fwd
        src, dst = tiny_graph.to_coo(fwd)
        rsrc, rdst = tiny_graph.to_coo(rev)
        assert edge_set(rsrc, rdst) == edge_set(dst, src)
        # Transposed degrees: in-degree of notes along fwd = out-degree along rev.
        in_deg = torch.bincount(dst, minlength=tiny_graph.num_nodes["note"])
        assert torch.equal(tiny_graph.degree(rev), in_deg)


def test_no_reverse_when_disabled(tiny):
    num_nodes, edges = tiny
    graph = HeteroCSR.from_coo(num_nodes, edges, add_reverse=False)
    assert graph.edge_types == list(edges)


def test_duplicate_edges_merge_and_sum_weights():
    graph = HeteroCSR.from_coo(
        {"user": 3, "note": 3},
        {LIKE: (torch.tensor([0, 2, 0, 1]), torch.tensor([1, 0, 1, 2]))},
        weights={LIKE: torch.tensor([1.0, 2.0, 3.0, 4.0])},
    )
    assert graph.num_edges(LIKE) == 3
    assert graph.indices[LIKE].tolist() == [1, 2, 0]
    assert graph.edge_weight[LIKE].tolist() == [4.0, 4.0, 2.0]
    # The reverse relation carries the same weights, transposed.
    assert graph.to_coo(REV_LIKE)[0].tolist() == [0, 1, 2]
    assert graph.edge_weight[REV_LIKE].tolist() == [2.0, 4.0, 4.0]


def test_missing_weights_default_to_one(tiny):
    num_nodes, edges = tiny
    w = torch.rand(edges[LIKE][0].numel())
    graph = HeteroCSR.from_coo(num_nodes, edges, weights={LIKE: w})
    comment = ("user", "comment", "note")
    # Weight 1 per listed edge, so a merged duplicate weighs its multiplicity.
    src, dst = edges[comment]
    key = src * 80 + dst
    gsrc, gdst = graph.to_coo(comment)
    multiplicity = (key.unsqueeze(0) == (gsrc * 80 + gdst).unsqueeze(1)).sum(1)
    assert torch.equal(graph.edge_weight[comment], multiplicity.float())
    assert int(multiplicity.max()) > 1
    assert graph.edge_weight[LIKE].dtype == torch.float32


@pytest.mark.parametrize("column", ["src", "dst"])
def test_out_of_range_ids_raise(column):
    src = torch.tensor([0, 1, 2])
    dst = torch.tensor([0, 1, 1])
    if column == "src":
        src = torch.tensor([0, 7, -1])
    else:
        dst = torch.tensor([0, 9, 1])
    with pytest.raises(ValueError, match=rf"like.*{column}.*out of range") as err:
        HeteroCSR.from_coo({"user": 3, "note": 2}, {LIKE: (src, dst)})
    assert ("7" in str(err.value)) if column == "src" else ("9" in str(err.value))


def test_unknown_node_type_raises():
    with pytest.raises(ValueError, match="unknown node type 'item'"):
        HeteroCSR.from_coo(
            {"user": 2, "note": 2},
            {("user", "buy", "item"): (torch.tensor([0]), torch.tensor([0]))},
        )


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="lengths differ"):
        HeteroCSR.from_coo({"user": 2, "note": 2}, {LIKE: ([0, 1], [0])})
    with pytest.raises(ValueError, match="both given"):
        HeteroCSR.from_coo(
            {"user": 2, "note": 2}, {LIKE: ([0], [0]), REV_LIKE: ([0], [0])}
        )
    with pytest.raises(ValueError, match="integer"):
        HeteroCSR.from_coo({"user": 2, "note": 2}, {LIKE: ([0.5], [0])})
    with pytest.raises(ValueError, match="num_nodes"):
        HeteroCSR.from_coo({"user": -1, "note": 2}, {})


def test_has_edges(tiny, tiny_graph):
    _, edges = tiny
    src, dst = edges[LIKE]
    assert bool(tiny_graph.has_edges(LIKE, src, dst).all())
    assert bool(tiny_graph.has_edges(REV_LIKE, dst, src).all())
    existing = edge_set(src, dst)
    g = torch.Generator().manual_seed(5)
    qs = torch.randint(0, 50, (2000,), generator=g)
    qd = torch.randint(0, 80, (2000,), generator=g)
    expected = torch.tensor(
        [(s, d) in existing for s, d in zip(qs.tolist(), qd.tolist(), strict=True)]
    )
    assert 0 < int(expected.sum()) < 2000
    assert torch.equal(tiny_graph.has_edges(LIKE, qs, qd), expected)
    # Empty queries and rows without edges.
    assert tiny_graph.has_edges(LIKE, torch.tensor([]), torch.tensor([])).numel() == 0
    graph = HeteroCSR.from_coo({"user": 3, "note": 3}, {LIKE: ([1], [2])})
    assert graph.has_edges(LIKE, [0, 1, 1, 2], [2, 2, 1, 0]).tolist() == [
        False,
        True,
        False,
        False,
    ]


def test_has_edges_validates(tiny_graph):
    with pytest.raises(ValueError, match="unknown edge_type"):
        tiny_graph.has_edges(("user", "nope", "note"), [0], [0])
    with pytest.raises(ValueError, match="out of range"):
        tiny_graph.has_edges(LIKE, [50], [0])


def test_remove_edges_both_directions(tiny, tiny_graph):
    src, dst = tiny_graph.to_coo(LIKE)
    drop = torch.arange(0, src.numel(), 3)
    out = tiny_graph.remove_edges(LIKE, src[drop], dst[drop])
    assert not bool(out.has_edges(LIKE, src[drop], dst[drop]).any())
    assert not bool(out.has_edges(REV_LIKE, dst[drop], src[drop]).any())
    keep = torch.ones(src.numel(), dtype=torch.bool)
    keep[drop] = False
    assert edge_set(*out.to_coo(LIKE)) == edge_set(src[keep], dst[keep])
    assert edge_set(*out.to_coo(REV_LIKE)) == edge_set(dst[keep], src[keep])
    # Other relations and the original graph are untouched.
    comment = ("user", "comment", "note")
    assert out.indices[comment] is tiny_graph.indices[comment]
    assert tiny_graph.num_edges(LIKE) == src.numel()
    # One direction only.
    one = tiny_graph.remove_edges(LIKE, src[drop], dst[drop], both_directions=False)
    assert one.num_edges(LIKE) == int(keep.sum())
    assert one.num_edges(REV_LIKE) == src.numel()


def test_remove_edges_from_reverse_side(tiny_graph):
    rsrc, rdst = tiny_graph.to_coo(REV_LIKE)
    out = tiny_graph.remove_edges(REV_LIKE, rsrc[:5], rdst[:5])
    assert not bool(out.has_edges(LIKE, rdst[:5], rsrc[:5]).any())
    assert out.num_edges(LIKE) == tiny_graph.num_edges(LIKE) - 5


def test_remove_edges_keeps_weights_aligned():
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    graph = HeteroCSR.from_coo(
        {"user": 2, "note": 3}, {LIKE: ([0, 0, 1, 1], [0, 2, 1, 2])}, weights={LIKE: w}
    )
    out = graph.remove_edges(LIKE, [0, 1], [2, 1])
    assert edge_set(*out.to_coo(LIKE)) == {(0, 0), (1, 2)}
    # Pairs that are not edges are ignored (their search position is a neighbour).
    same = graph.remove_edges(LIKE, [0, 1, 1], [1, 0, 0])
    assert edge_set(*same.to_coo(LIKE)) == edge_set(*graph.to_coo(LIKE))
    assert out.edge_weight[LIKE].tolist() == [1.0, 4.0]
    assert out.edge_weight[REV_LIKE].tolist() == [1.0, 4.0]


def test_sizes_and_nbytes(tiny_graph):
    total = sum(tiny_graph.num_edges(et) for et in tiny_graph.edge_types)
    assert tiny_graph.num_edges() == total
    expected = sum(
        tiny_graph.indptr[et].numel() * 8 + tiny_graph.indices[et].numel() * 4
        for et in tiny_graph.edge_types
    )
    assert tiny_graph.nbytes() == expected
    assert tiny_graph.nbytes() / total <= 24


def test_to_hetero_data(tiny_graph):
    x = {"user": torch.randn(50, 4)}
    data = tiny_graph.to_hetero_data(x)
    assert set(data.edge_types) == set(tiny_graph.edge_types)
    assert data["note"].num_nodes == 80
    assert torch.equal(data["user"].x, x["user"])
    ei = data[LIKE].edge_index
    assert edge_set(ei[0], ei[1]) == edge_set(*tiny_graph.to_coo(LIKE))
    with pytest.raises(ValueError, match="x\\['user'\\]"):
        tiny_graph.to_hetero_data({"user": torch.randn(3, 4)})


def test_tensors_round_trip(tiny):
    num_nodes, edges = tiny
    w = {et: torch.rand(s.numel()) for et, (s, _) in edges.items()}
    graph = HeteroCSR.from_coo(num_nodes, edges, weights=w)
    tensors = graph.to_tensors()
    assert f"indptr/{edge_type_key(LIKE)}" in tensors
    assert "indices/user__like__note" in tensors
    meta = json.loads(json.dumps(graph.metadata()))
    back = HeteroCSR.from_tensors(tensors, meta)
    assert back.edge_types == graph.edge_types and back.num_nodes == graph.num_nodes
    for et in graph.edge_types:
        assert torch.equal(back.indptr[et], graph.indptr[et])
        assert torch.equal(back.indices[et], graph.indices[et])
        assert torch.equal(back.edge_weight[et], graph.edge_weight[et])
    with pytest.raises(ValueError, match="missing key"):
        HeteroCSR.from_tensors({}, meta)
    with pytest.raises(ValueError, match="format"):
        HeteroCSR.from_tensors(tensors, {"format": "other"})


def test_save_load_safetensors(tmp_path, tiny_graph):
    path = tmp_path / "graph.safetensors"
    tiny_graph.save(path)
    back = HeteroCSR.load(path)
    assert back.edge_weight is None
    for et in tiny_graph.edge_types:
        assert torch.equal(back.indices[et], tiny_graph.indices[et])
