"""Fused HGT attention over a whole graph (full-graph mode of the encoder).

HGT (Hu et al., *Heterogeneous Graph Transformer*, WWW 2020, arXiv 2003.01332)
aggregates, for every destination node ``i`` and head ``h``::

    raw_e  = q_i . k_{r(e), j} / sqrt(D)                 (k already relation-transformed)
    a_e    = softmax over every in-edge e of i, all relations, of raw_e * mu_{r(e), h}
    agg_i  = sum_e a_e v_{r(e), j}

PyG's :class:`~torch_geometric.nn.HGTConv` computes this edge-wise with
``index_select`` / ``scatter``; on a whole graph (0.7 M edges) autograd then keeps
and revisits several ``[E, H, D]`` tensors per layer. :class:`HGTAttention` does
the same arithmetic in three compiled passes (forward; backward per destination
row; backward per source row, so no atomics) that keep only ``[E, H]`` scalars.
Outputs equal PyG's within float tolerance (``tests/models/test_hgt_attention.py``
checks values and gradients against :func:`attention_reference`, and the encoder
against ``HGTConv``). On CUDA, or without numba, :func:`attention_reference` (pure
torch) is the path.

:class:`FullGraph` holds the static structure once per graph: for every
destination type the in-edges of all its relations grouped by destination
(CSR), their relation, and the transposed order. ``keep`` masks (one flag per
edge) remove edges for one call, e.g. the target edges a training step scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..runtime import match_numba_threads

EdgeType = tuple[str, str, str]

__all__ = ["DstGraph", "FullGraph", "HGTAttention", "attention", "attention_reference"]


@dataclass
class DstGraph:
    """In-edges of one destination node type, all relations together.

    Attributes:
        relations: indices (into the encoder's edge types) of the relations
            ending at this type, in row-block order of the combined ``k``/``v``.
        src_types: source type of each relation.
        offsets: first combined row of each relation (``len(relations) + 1``).
        num_dst: destination nodes.
        ptr: ``int64 [num_dst + 1]`` CSR pointer over the edges sorted by
            destination.
        col: ``int64 [E]`` combined source row of each edge.
        rel: ``int64 [E]`` position of the edge's relation in ``relations``.
        dst: ``int64 [E]`` destination of each edge.
        src: ``int64 [E]`` source node id (within its type) of each edge.
        tptr: ``int64 [M + 1]`` pointer of the transposed order (by source row).
        tperm: ``int64 [E]`` edges in source-row order.
    """

    relations: list[int]
    src_types: list[str]
    offsets: list[int]
    num_dst: int
    ptr: Tensor
    col: Tensor
    rel: Tensor
    dst: Tensor
    src: Tensor
    tptr: Tensor
    tperm: Tensor

    @property
    def num_edges(self) -> int:
        return int(self.col.numel())

    @property
    def num_rows(self) -> int:
        return int(self.offsets[-1])


def _pointer(index: Tensor, size: int) -> Tensor:
    counts = torch.bincount(index, minlength=size)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


@dataclass
class FullGraph:
    """The whole message-passing graph in the layout of :class:`HGTAttention`.

    Build it once per graph with :meth:`from_csr`; it does not depend on the
    model's weights.

    Attributes:
        edge_types: the encoder's edge types (relation indices refer to them).
        num_nodes: nodes per type.
        dst: :class:`DstGraph` per destination type with at least one relation.
    """

    edge_types: list[EdgeType]
    num_nodes: dict[str, int]
    dst: dict[str, DstGraph]

    @classmethod
    def from_csr(cls, csr: Any, edge_types: Sequence[EdgeType]) -> FullGraph:
        """From a :class:`~hgt_cluster_kedro.graph.csr.HeteroCSR` (every edge
        type of ``edge_types`` present in it is used; others are skipped)."""
        edge_types = [tuple(et) for et in edge_types]
        num_nodes = {t: int(n) for t, n in csr.num_nodes.items()}
        parts: dict[str, list[tuple[int, str, Tensor, Tensor]]] = {}
        for r, et in enumerate(edge_types):
            if et not in csr.indptr:
                continue
            src, dst = csr.to_coo(et)
            parts.setdefault(et[2], []).append((r, et[0], src.long(), dst.long()))
        out: dict[str, DstGraph] = {}
        for t, rels in parts.items():
            offsets, cols, rel_ids, dsts, srcs = [0], [], [], [], []
            for pos, (_, s, src, dst) in enumerate(rels):
                cols.append(src + offsets[-1])
                rel_ids.append(torch.full_like(src, pos))
                dsts.append(dst)
                srcs.append(src)
                offsets.append(offsets[-1] + num_nodes[s])
            dst = torch.cat(dsts)
            order = torch.sort(dst, stable=True).indices
            col = torch.cat(cols)[order].contiguous()
            dst = dst[order].contiguous()
            tperm = torch.sort(col, stable=True).indices.contiguous()
            out[t] = DstGraph(
                relations=[r for r, _, _, _ in rels],
                src_types=[s for _, s, _, _ in rels],
                offsets=offsets,
                num_dst=num_nodes[t],
                ptr=_pointer(dst, num_nodes[t]),
                col=col,
                rel=torch.cat(rel_ids)[order].contiguous(),
                dst=dst,
                src=torch.cat(srcs)[order].contiguous(),
                tptr=_pointer(col, offsets[-1]),
                tperm=tperm,
            )
        return cls(edge_types=edge_types, num_nodes=num_nodes, dst=out)

    def pair_keys(self, user_type: str, item_type: str) -> dict[str, Tensor]:
        """Per destination type, ``user * num_items + item`` of every edge that
        joins a ``user_type`` and an ``item_type`` node (either direction), else
        -1: what :meth:`keep_masks` matches target pairs against."""
        n_items = self.num_nodes[item_type]
        keys = {}
        for t, g in self.dst.items():
            key = torch.full((g.num_edges,), -1, dtype=torch.long)
            for pos, s in enumerate(g.src_types):
                mask = g.rel == pos
                if s == user_type and t == item_type:
                    key[mask] = g.src[mask] * n_items + g.dst[mask]
                elif s == item_type and t == user_type:
                    key[mask] = g.dst[mask] * n_items + g.src[mask]
            keys[t] = key
        return keys

    @staticmethod
    def keep_masks(keys: Mapping[str, Tensor], remove: Tensor) -> dict[str, Tensor]:
        """``uint8`` keep flags per destination type: 0 for the edges whose pair
        key is in ``remove`` (sorted or not), 1 elsewhere."""
        return {
            t: (~torch.isin(key, remove)).to(torch.uint8) for t, key in keys.items()
        }

    def to(self, device: torch.device | str) -> FullGraph:
        """A copy with every index tensor on ``device``."""
        moved = {}
        for t, g in self.dst.items():
            moved[t] = DstGraph(
                relations=g.relations,
                src_types=g.src_types,
                offsets=g.offsets,
                num_dst=g.num_dst,
                **{
                    name: getattr(g, name).to(device)
                    for name in ("ptr", "col", "rel", "dst", "src", "tptr", "tperm")
                },
            )
        return FullGraph(self.edge_types, dict(self.num_nodes), moved)


def attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    prior: Tensor,
    g: DstGraph,
    *,
    keep: Tensor | None = None,
) -> Tensor:
    """The aggregate in plain torch ops (autograd, any device): the oracle of
    :class:`HGTAttention` and its path on CUDA."""
    heads, dim = q.shape[1], q.shape[2]
    col, rel, dst = g.col, g.rel, g.dst
    if keep is not None:
        mask = keep.bool()
        col, rel, dst = col[mask], rel[mask], dst[mask]
    raw = (q.index_select(0, dst) * k.index_select(0, col)).sum(-1) / math.sqrt(dim)
    score = raw * prior.index_select(0, rel)
    top = torch.full((g.num_dst, heads), -math.inf, dtype=q.dtype, device=q.device)
    top = top.scatter_reduce(0, dst.view(-1, 1).expand_as(score), score, "amax")
    w = (score - top.index_select(0, dst).detach()).exp()
    total = torch.zeros(g.num_dst, heads, dtype=q.dtype, device=q.device)
    total = total.index_add(0, dst, w)
    att = w / total.index_select(0, dst)
    out = torch.zeros_like(q)
    return out.index_add(0, dst, att.unsqueeze(-1) * v.index_select(0, col))


class HGTAttention(torch.autograd.Function):
    """The aggregate by the compiled kernels of :mod:`._hgt_kernels` (CPU)."""

    @staticmethod
    def forward(  # type: ignore[override]  # noqa: PLR0917
        ctx: Any,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        prior: Tensor,
        g: DstGraph,
        keep: Tensor,
    ) -> Tensor:
        from . import _hgt_kernels as kern

        match_numba_threads()
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        prior = prior.contiguous()
        heads, dim = q.shape[1], q.shape[2]
        out = torch.empty_like(q)
        att = torch.empty(g.num_edges, heads, dtype=q.dtype)
        raw = torch.empty(g.num_edges, heads, dtype=q.dtype)
        scale = 1.0 / math.sqrt(dim)
        kern.attention_forward(
            g.ptr.numpy(),
            g.col.numpy(),
            g.rel.numpy(),
            keep.numpy(),
            q.detach().numpy(),
            k.detach().numpy(),
            v.detach().numpy(),
            prior.detach().numpy(),
            scale,
            out.numpy(),
            att.numpy(),
            raw.numpy(),
        )
        ctx.save_for_backward(q, k, v, prior, att, raw)
        ctx.graph = g
        return out

    @staticmethod
    def backward(ctx: Any, gout: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        from . import _hgt_kernels as kern

        match_numba_threads()
        q, k, v, prior, att, raw = ctx.saved_tensors
        g: DstGraph = ctx.graph
        gout = gout.contiguous()
        scale = 1.0 / math.sqrt(q.shape[2])
        gq = torch.empty_like(q)
        gk = torch.empty_like(k)
        gv = torch.empty_like(v)
        gscore = torch.empty_like(att)
        qn, kn, vn, pn = (t.detach().numpy() for t in (q, k, v, prior))
        kern.attention_backward_dst(
            g.ptr.numpy(),
            g.col.numpy(),
            g.rel.numpy(),
            kn,
            vn,
            pn,
            scale,
            att.numpy(),
            gout.numpy(),
            gq.numpy(),
            gscore.numpy(),
        )
        kern.attention_backward_src(
            g.tptr.numpy(),
            g.tperm.numpy(),
            g.dst.numpy(),
            g.rel.numpy(),
            qn,
            pn,
            scale,
            att.numpy(),
            gscore.numpy(),
            gout.numpy(),
            gk.numpy(),
            gv.numpy(),
        )
        # d score / d prior = raw (pre-prior score): one [E, H] product per edge
        gprior = torch.zeros_like(prior).index_add_(0, g.rel, gscore * raw)
        return gq, gk, gv, gprior, None, None


def _numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    return True


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    prior: Tensor,
    g: DstGraph,
    *,
    keep: Tensor | None = None,
) -> Tensor:
    """The HGT aggregate ``[num_dst, H, D]`` of one destination type.

    Args:
        q: ``[num_dst, H, D]`` queries.
        k: ``[g.num_rows, H, D]`` relation-transformed keys (relations stacked
            in ``g.relations`` order).
        v: ``[g.num_rows, H, D]`` relation-transformed values.
        prior: ``[len(g.relations), H]`` relation priors ``mu``.
        g: the destination type's :class:`DstGraph`.
        keep: ``uint8 [E]`` edge flags (0 = absent), or ``None`` (all edges).
    """
    if q.shape[0] != g.num_dst or k.shape[0] != g.num_rows:
        raise ValueError(
            f"q has {q.shape[0]} rows for {g.num_dst} nodes and k {k.shape[0]} for "
            f"{g.num_rows} source rows"
        )
    if q.device.type == "cpu" and q.dtype == torch.float32 and _numba_available():
        if keep is None:
            keep = torch.ones(g.num_edges, dtype=torch.uint8)
        return HGTAttention.apply(q, k, v, prior, g, keep.to(torch.uint8))
    return attention_reference(q, k, v, prior, g, keep=keep)
