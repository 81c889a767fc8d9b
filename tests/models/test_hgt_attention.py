"""Fused full-graph HGT attention: compiled kernels vs the torch reference, the
full-graph encoder vs PyG's HGTConv path, and the keep mask vs removed edges."""

from __future__ import annotations

import pytest
import torch

from hgt_cluster_kedro.graph.csr import HeteroCSR
from hgt_cluster_kedro.models.hgt import HGTEncoder
from hgt_cluster_kedro.models.hgt_attention import (
    FullGraph,
    HGTAttention,
    attention_reference,
)

NUM = {"user": 40, "item": 30, "tag": 5}


def _graph(seed: int = 0, extra: dict | None = None) -> HeteroCSR:
    g = torch.Generator().manual_seed(seed)

    def pairs(n: int, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = torch.unique(
            torch.randint(0, a, (n,), generator=g) * b
            + torch.randint(0, b, (n,), generator=g)
        )
        return key // b, key % b

    edges = {
        ("user", "likes", "item"): pairs(150, 40, 30),
        ("user", "buys", "item"): pairs(60, 40, 30),
        ("item", "has", "tag"): pairs(40, 30, 5),
    }
    edges.update(extra or {})
    return HeteroCSR.from_coo(NUM, edges)


def _encoder(csr: HeteroCSR, dropout: float = 0.0) -> HGTEncoder:
    torch.manual_seed(0)
    model = HGTEncoder(
        (csr.node_types, csr.edge_types),
        NUM,
        {},
        hidden=16,
        heads=2,
        num_layers=2,
        dropout=dropout,
        id_embedding_types="all",
    )
    # non-trivial priors and skips, so a wrong relation index shows
    for layer in model.layers:
        for p in layer.conv.p_rel.values():
            p.data.uniform_(0.5, 2.0)
        for p in layer.conv.skip.values():
            p.data.uniform_(-1.0, 1.0)
    return model


def _full_batch(csr: HeteroCSR):
    data = csr.to_hetero_data()
    for t, n in csr.num_nodes.items():
        data[t].n_id = torch.arange(n)
    return data


@pytest.mark.parametrize("masked", [False, True])
def test_kernels_match_reference_values_and_gradients(masked: bool):
    csr = _graph()
    fg = FullGraph.from_csr(csr, csr.edge_types)
    g = fg.dst["item"]  # two relations end at items (likes, buys) + rev_has
    gen = torch.Generator().manual_seed(1)
    heads, dim = 2, 4
    q = torch.randn(g.num_dst, heads, dim, generator=gen, dtype=torch.float64)
    k = torch.randn(g.num_rows, heads, dim, generator=gen, dtype=torch.float64)
    v = torch.randn(g.num_rows, heads, dim, generator=gen, dtype=torch.float64)
    prior = torch.rand(len(g.relations), heads, generator=gen, dtype=torch.float64)
    keep = torch.ones(g.num_edges, dtype=torch.uint8)
    if masked:
        keep[torch.randperm(g.num_edges, generator=gen)[: g.num_edges // 3]] = 0
    keep[g.ptr[0] : g.ptr[1]] = 0  # item 0 keeps no in-edge: its aggregate is 0
    leaves = [t.float().requires_grad_() for t in (q, k, v, prior)]
    out = HGTAttention.apply(*leaves, g, keep)
    ref_leaves = [t.clone().requires_grad_() for t in (q, k, v, prior)]
    ref = attention_reference(*ref_leaves, g, keep=keep)
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)
    assert float(out[0].detach().abs().max()) == 0.0
    gout = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    (out * gout.float()).sum().backward()
    (ref * gout).sum().backward()
    for mine, theirs in zip(leaves, ref_leaves, strict=True):
        torch.testing.assert_close(
            mine.grad.double(), theirs.grad, rtol=1e-3, atol=1e-4
        )


def test_reference_gradients_are_autograd_exact():
    csr = _graph(seed=3)
    g = FullGraph.from_csr(csr, csr.edge_types).dst["user"]
    gen = torch.Generator().manual_seed(2)
    args = [
        torch.randn(g.num_dst, 2, 3, generator=gen, dtype=torch.float64),
        torch.randn(g.num_rows, 2, 3, generator=gen, dtype=torch.float64),
        torch.randn(g.num_rows, 2, 3, generator=gen, dtype=torch.float64),
        torch.rand(len(g.relations), 2, generator=gen, dtype=torch.float64) + 0.5,
    ]
    args = [a.requires_grad_() for a in args]
    assert torch.autograd.gradcheck(
        lambda q, k, v, p: attention_reference(q, k, v, p, g), args
    )


def test_full_graph_encoder_equals_pyg_hgtconv_path():
    csr = _graph()
    model = _encoder(csr)
    fg = FullGraph.from_csr(csr, model.edge_types)
    model.train()  # dropout 0: train mode has no randomness here
    ours = model.forward_full(fg)
    theirs = model(_full_batch(csr))
    for t in NUM:
        torch.testing.assert_close(ours[t], theirs[t], rtol=1e-4, atol=1e-5)
    gen = torch.Generator().manual_seed(5)
    weights = {t: torch.randn(ours[t].shape, generator=gen) for t in NUM}
    sum((ours[t] * weights[t]).sum() for t in NUM).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    sum((theirs[t] * weights[t]).sum() for t in NUM).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-3, atol=1e-5, msg=n)


def test_keep_mask_equals_graph_without_those_edges():
    csr = _graph()
    model = _encoder(csr).eval()
    fg = FullGraph.from_csr(csr, model.edge_types)
    likes_u, likes_i = csr.to_coo(("user", "likes", "item"))
    drop_u, drop_i = likes_u[:10], likes_i[:10]
    remove = drop_u * NUM["item"] + drop_i
    keep = fg.keep_masks(fg.pair_keys("user", "item"), remove)
    # every edge between a removed pair goes, in both directions and every
    # user-item relation (buys too, where the pair has one)
    dropped = sum(int((m == 0).sum()) for m in keep.values())
    assert dropped >= 2 * 10
    with torch.no_grad():
        masked = model.forward_full(fg, keep)
    kept = {}
    for rel in ("likes", "buys"):
        u, i = csr.to_coo(("user", rel, "item"))
        ok = ~torch.isin(u * NUM["item"] + i, remove)
        kept[("user", rel, "item")] = (u[ok], i[ok])
    kept[("item", "has", "tag")] = csr.to_coo(("item", "has", "tag"))
    reduced = HeteroCSR.from_coo(NUM, kept)
    assert reduced.edge_types == csr.edge_types
    with torch.no_grad():
        expected = model.forward_full(FullGraph.from_csr(reduced, model.edge_types))
        pyg = model(_full_batch(reduced))
    for t in NUM:
        torch.testing.assert_close(masked[t], expected[t], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(masked[t], pyg[t], rtol=1e-4, atol=1e-5)


def test_full_graph_rejects_other_edge_types():
    csr = _graph()
    model = _encoder(csr)
    fg = FullGraph.from_csr(csr, list(reversed(model.edge_types)))
    with pytest.raises(ValueError, match="edge types"):
        model.forward_full(fg)
