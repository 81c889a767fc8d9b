"""Tests for METIS / hash partitioning."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from hgt_cluster_kedro.graph.csr import HeteroCSR
from hgt_cluster_kedro.graph.partition import partition_graph, plot_report

LIKE = ("user", "like", "note")


@pytest.fixture
def planted_graph() -> HeteroCSR:
    """Two planted communities (users/notes 0..59 and 60..119), 95 % of the
    edges inside a community."""
    g = torch.Generator().manual_seed(0)
    n, m = 120, 3000
    src = torch.randint(0, n, (m,), generator=g)
    inside = torch.rand(m, generator=g) < 0.95
    block = torch.where(inside, src // 60, 1 - src // 60)
    dst = block * 60 + torch.randint(0, 60, (m,), generator=g)
    share = ("user", "share", "note")
    s2 = torch.randint(0, n, (m // 3,), generator=g)
    d2 = (s2 // 60) * 60 + torch.randint(0, 60, (m // 3,), generator=g)
    return HeteroCSR.from_coo(
        {"user": n, "note": n}, {LIKE: (src, dst), share: (s2, d2)}
    )


def part(graph, num_parts, method, **kw):
    return partition_graph(
        graph, num_parts, method=method, user_type="user", item_type="note", **kw
    )


@pytest.mark.parametrize("method", ["metis", "hash"])
def test_owners_cover_every_node_once(tiny_graph, method):
    p = part(tiny_graph, 4, method)
    for t, n in tiny_graph.num_nodes.items():
        assert p.owner[t].shape == (n,) and p.owner[t].dtype == torch.int64
        assert int(p.owner[t].min()) >= 0 and int(p.owner[t].max()) < 4
    for t in tiny_graph.node_types:
        owned = torch.cat([p.nodes(k)[t] for k in range(4)])
        assert torch.equal(torch.sort(owned)[0], torch.arange(tiny_graph.num_nodes[t]))
    sizes = p.report()["part_sizes"]
    assert sum(sizes) == 130 and all(s > 0 for s in sizes)


def test_metis_cuts_fewer_edges_than_hash(planted_graph):
    metis = part(planted_graph, 2, "metis")
    hashed = part(planted_graph, 2, "hash")
    assert metis.edge_cut_fraction < 0.15
    assert hashed.edge_cut_fraction > 0.35
    # METIS recovers the planted blocks: users 0..59 share a part.
    users = metis.owner["user"]
    assert torch.unique(users[:60]).numel() == 1 and int(users[0]) != int(users[-1])
    assert metis.report()["balance"] <= 1.1


def test_edge_cut_fraction_matches_owners(tiny_graph):
    p = part(tiny_graph, 3, "hash")
    cut = total = 0
    for et in tiny_graph.edge_types:
        s, d = tiny_graph.to_coo(et)
        cut += int((p.owner[et[0]][s] != p.owner[et[2]][d]).sum())
        total += s.numel()
    assert p.edge_cut_fraction == pytest.approx(cut / total)


@pytest.mark.parametrize("method", ["metis", "hash"])
def test_halo_contains_needed_neighbours(tiny_graph, method):
    p = part(tiny_graph, 5, method, hops=2)
    for k in range(5):
        owned = {t: set(v.tolist()) for t, v in p.nodes(k).items()}
        halo1 = {t: set(v.tolist()) for t, v in p.halo(k, hops=1).items()}
        halo2 = {t: set(v.tolist()) for t, v in p.halo(k).items()}
        needed1 = {t: set() for t in owned}
        for et in tiny_graph.edge_types:
            s, d = tiny_graph.to_coo(et)
            mask = torch.tensor(
                [x in owned[et[0]] for x in s.tolist()], dtype=torch.bool
            )
            needed1[et[2]] |= set(d[mask].tolist())
        for t, own in owned.items():
            assert own.isdisjoint(halo2[t])
            assert needed1[t] - own == halo1[t]  # exact 1-hop halo
            assert halo1[t] <= halo2[t]
        # 2-hop: neighbours of the 1-hop halo are owned or in the 2-hop halo.
        for et in tiny_graph.edge_types:
            s, d = tiny_graph.to_coo(et)
            mask = torch.tensor(
                [x in halo1[et[0]] for x in s.tolist()], dtype=torch.bool
            )
            assert set(d[mask].tolist()) <= owned[et[2]] | halo2[et[2]]


def test_report_and_plot(planted_graph):
    p = part(planted_graph, 3, "metis")
    rep = p.report()
    for key in (
        "edge_cut_fraction",
        "balance",
        "halo_ratio",
        "seconds",
        "method",
        "num_parts",
        "part_sizes",
        "halo_sizes",
    ):
        assert key in rep
    assert rep["method"] == "metis" and rep["num_parts"] == 3
    assert rep["balance"] >= 1.0 and rep["seconds"] >= 0
    assert len(rep["part_sizes"]) == len(rep["halo_sizes"]) == 3
    mean_halo = sum(rep["halo_sizes"]) / 3
    assert rep["halo_ratio"] == pytest.approx(mean_halo / (240 / 3))
    assert (
        rep["part_sizes_by_type"]["user"]
        and sum(rep["part_sizes_by_type"]["note"]) == 120
    )
    fig = plot_report(rep)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.containers) == 2 and len(ax.containers[0]) == 3
    with pytest.raises(ValueError, match="part_sizes"):
        plot_report({})


def test_hash_is_seeded(tiny_graph):
    a = part(tiny_graph, 4, "hash", seed=1).owner["user"]
    b = part(tiny_graph, 4, "hash", seed=1).owner["user"]
    c = part(tiny_graph, 4, "hash", seed=2).owner["user"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_single_part_and_extra_node_types():
    g = torch.Generator().manual_seed(0)
    edges = {
        LIKE: (
            torch.randint(0, 20, (80,), generator=g),
            torch.randint(0, 30, (80,), generator=g),
        ),
        ("note", "has", "tag"): (
            torch.randint(0, 30, (40,), generator=g),
            torch.randint(0, 5, (40,), generator=g),
        ),
    }
    graph = HeteroCSR.from_coo({"user": 20, "note": 30, "tag": 5}, edges)
    one = part(graph, 1, "metis")
    assert all(bool((o == 0).all()) for o in one.owner.values())
    assert one.edge_cut_fraction == 0.0
    three = part(graph, 3, "metis")
    assert three.owner["tag"].shape == (5,)
    assert set(torch.cat(list(three.owner.values())).tolist()) == {0, 1, 2}


def test_bad_arguments_raise(tiny_graph):
    with pytest.raises(ValueError, match="num_parts"):
        part(tiny_graph, 0, "metis")
    with pytest.raises(ValueError, match="num_parts"):
        part(tiny_graph, 131, "hash")
    with pytest.raises(ValueError, match="method"):
        part(tiny_graph, 2, "spectral")
    with pytest.raises(ValueError, match="user_type"):
        partition_graph(tiny_graph, 2, user_type="person", item_type="note")
    with pytest.raises(ValueError, match="item_type"):
        partition_graph(tiny_graph, 2, user_type="user", item_type="item")
    with pytest.raises(ValueError, match="hops"):
        part(tiny_graph, 2, "hash", hops=-1)
    p = part(tiny_graph, 2, "hash")
    with pytest.raises(ValueError, match="part"):
        p.halo(2)
