"""Heterogeneous graph store: one compressed sparse row (CSR) matrix per relation.

Edge types follow the PyG convention ``(src_type, relation, dst_type)``. The CSR of
an edge type is indexed by *source* node: the destinations of source node ``u`` are
``indices[et][indptr[et][u]:indptr[et][u + 1]]``, sorted ascending. With
``add_reverse=True`` every relation ``(s, r, d)`` gets a twin ``(d, "rev_" + r, s)``
holding the transpose, so every node type that is the source of a relation also
receives messages (PyG's ``HGTConv`` returns ``None`` for node types without any
incoming edge type).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

EdgeType = tuple[str, str, str]

REV_PREFIX = "rev_"
_FORMAT = "hetero_csr"
_VERSION = 1


def edge_type_key(edge_type: EdgeType) -> str:
    """Flat string key of an edge type, e.g. ``"user__like__note"``."""
    return "__".join(edge_type)


def reverse_edge_type(edge_type: EdgeType) -> EdgeType:
    """The ``rev_`` twin of an edge type (and back): ``(s, r, d) -> (d, rev_r, s)``."""
    src, rel, dst = edge_type
    if rel.startswith(REV_PREFIX):
        return (dst, rel[len(REV_PREFIX) :], src)
    return (dst, REV_PREFIX + rel, src)


def _preview(values: Tensor, k: int = 5) -> list[int]:
    return [int(v) for v in values[:k].tolist()]


def _check_ids(ids: Tensor, n: int, what: str) -> None:
    """Raise ``ValueError`` if any id in ``ids`` lies outside ``[0, n)``."""
    if ids.numel() == 0:
        return
    bad = (ids < 0) | (ids >= n)
    if bool(bad.any()):
        offending = ids[bad]
        raise ValueError(
            f"{what} has {offending.numel()} ids out of range [0, {n}), e.g. "
            f"{_preview(offending)}"
        )


def _as_index(t: Any, what: str) -> Tensor:
    t = torch.as_tensor(t)
    if t.dim() != 1:
        raise ValueError(f"{what} must be 1-D (got shape {tuple(t.shape)})")
    if t.numel() == 0:
        return t.long()
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{what} must be an integer tensor (got {t.dtype})")
    return t.long()


def _indptr_from_rows(rows: Tensor, num_rows: int) -> Tensor:
    counts = torch.bincount(rows, minlength=num_rows)
    indptr = torch.zeros(num_rows + 1, dtype=torch.long)
    torch.cumsum(counts, 0, out=indptr[1:])
    return indptr


def _rows_of(indptr: Tensor, dtype: torch.dtype = torch.long) -> Tensor:
    """Row id of every stored edge (expanded ``indptr``)."""
    num_rows = indptr.numel() - 1
    return torch.repeat_interleave(
        torch.arange(num_rows, dtype=dtype),
        indptr.diff(),
        output_size=int(indptr[-1]),
    )


def _build_csr(
    src: Tensor, dst: Tensor, num_src: int, num_dst: int, weight: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Sorted, coalesced CSR from COO (duplicate edges merged, weights summed)."""
    key = src * num_dst
    key += dst
    key, perm = torch.sort(key, stable=True)
    if weight is not None:
        weight = weight[perm]
    del perm
    if key.numel() > 1 and bool((key[1:] == key[:-1]).any()):
        key, inverse = torch.unique_consecutive(key, return_inverse=True)
        if weight is not None:
            merged = torch.zeros(key.numel(), dtype=weight.dtype)
            weight = merged.index_add_(0, inverse, weight)
        del inverse
    rows = torch.div(key, num_dst, rounding_mode="floor")
    cols = (key - rows * num_dst).to(torch.int32)
    del key
    return _indptr_from_rows(rows, num_src), cols, weight


def _transpose_csr(
    indptr: Tensor, indices: Tensor, weight: Tensor | None, num_dst: int
) -> tuple[Tensor, Tensor, Tensor | None]:
    """CSR of the transpose: a stable sort by column keeps rows ascending."""
    order = torch.sort(indices, stable=True)[1]
    rev_indptr = _indptr_from_rows(indices.long(), num_dst)
    rev_indices = _rows_of(indptr, torch.int32)[order]
    rev_weight = weight[order] if weight is not None else None
    return rev_indptr, rev_indices, rev_weight


@dataclass
class HeteroCSR:
    """Heterogeneous graph as one CSR matrix per edge type (rows = source nodes).

    Attributes:
        num_nodes: number of nodes per node type.
        indptr: per edge type, ``int64`` row pointers of shape
            ``[num_nodes[src_type] + 1]``.
        indices: per edge type, ``int32`` destination ids, sorted by source then
            destination (no duplicate edges).
        edge_weight: optional per edge type ``float32`` weights aligned with
            ``indices``; either ``None`` or present for every edge type.

    Build it with :meth:`from_coo`; persist it with :meth:`save` / :meth:`load` (or
    :meth:`to_tensors` + :meth:`metadata` and :meth:`from_tensors`). Instances are
    treated as immutable: :meth:`remove_edges` returns a new graph sharing the
    untouched tensors.
    """

    num_nodes: dict[str, int]
    indptr: dict[EdgeType, Tensor]
    indices: dict[EdgeType, Tensor]
    edge_weight: dict[EdgeType, Tensor] | None = None

    def __post_init__(self) -> None:
        if set(self.indptr) != set(self.indices):
            raise ValueError("indptr and indices must have the same edge types")
        if self.edge_weight is not None and set(self.edge_weight) != set(self.indices):
            raise ValueError("edge_weight must cover every edge type (or be None)")
        for et in self.indptr:
            src, _, dst = et
            for t in (src, dst):
                if t not in self.num_nodes:
                    raise ValueError(
                        f"edge type {et} uses unknown node type '{t}' "
                        f"(known: {sorted(self.num_nodes)})"
                    )
            if self.indptr[et].numel() != self.num_nodes[src] + 1:
                raise ValueError(
                    f"indptr[{et}] has {self.indptr[et].numel()} entries, expected "
                    f"num_nodes['{src}'] + 1 = {self.num_nodes[src] + 1}"
                )

    # ------------------------------------------------------------------ build
    @classmethod
    def from_coo(
        cls,
        num_nodes: dict[str, int],
        edges: dict[EdgeType, tuple[Tensor, Tensor]],
        weights: dict[EdgeType, Tensor] | None = None,
        add_reverse: bool = True,
    ) -> HeteroCSR:
        """Build the store from COO edge lists ``{edge_type: (src, dst)}``.

        Duplicate edges are merged (their weights summed). Relations missing from
        ``weights`` get weight 1 when ``weights`` is given. With ``add_reverse``
        every relation ``(s, r, d)`` also gets its transpose ``(d, "rev_" + r, s)``.
        """
        num_nodes = {str(t): int(n) for t, n in num_nodes.items()}
        for t, n in num_nodes.items():
            if n < 0:
                raise ValueError(f"num_nodes['{t}'] must be >= 0 (got {n})")
        if weights is not None:
            unknown = set(weights) - set(edges)
            if unknown:
                raise ValueError(
                    f"weights has edge types not in edges: {sorted(unknown)}"
                )
        indptr: dict[EdgeType, Tensor] = {}
        indices: dict[EdgeType, Tensor] = {}
        edge_weight: dict[EdgeType, Tensor] | None = {} if weights else None
        for et, pair in edges.items():
            if not (isinstance(et, tuple) and len(et) == 3):
                raise ValueError(
                    f"edge types must be (src, rel, dst) tuples (got {et!r})"
                )
            src_t, _, dst_t = et
            for t in (src_t, dst_t):
                if t not in num_nodes:
                    raise ValueError(
                        f"edge type {et} uses unknown node type '{t}' "
                        f"(known: {sorted(num_nodes)})"
                    )
            if add_reverse and reverse_edge_type(et) in edges:
                raise ValueError(
                    f"edge type {et} and its reverse {reverse_edge_type(et)} are "
                    "both given while add_reverse=True"
                )
            src = _as_index(pair[0], f"edges[{et}] src")
            dst = _as_index(pair[1], f"edges[{et}] dst")
            if src.numel() != dst.numel():
                raise ValueError(
                    f"edges[{et}] src and dst lengths differ "
                    f"({src.numel()} vs {dst.numel()})"
                )
            _check_ids(src, num_nodes[src_t], f"edges[{et}] src ('{src_t}')")
            _check_ids(dst, num_nodes[dst_t], f"edges[{et}] dst ('{dst_t}')")
            w = None
            if edge_weight is not None:
                if et in weights:
                    w = torch.as_tensor(weights[et], dtype=torch.float32).flatten()
                    if w.numel() != src.numel():
                        raise ValueError(
                            f"weights[{et}] has {w.numel()} entries, expected "
                            f"{src.numel()}"
                        )
                else:
                    w = torch.ones(src.numel(), dtype=torch.float32)
            ip, ix, wt = _build_csr(src, dst, num_nodes[src_t], num_nodes[dst_t], w)
            del src, dst, w
            indptr[et], indices[et] = ip, ix
            if edge_weight is not None:
                edge_weight[et] = wt
            if add_reverse:
                rev = reverse_edge_type(et)
                rip, rix, rwt = _transpose_csr(ip, ix, wt, num_nodes[dst_t])
                indptr[rev], indices[rev] = rip, rix
                if edge_weight is not None:
                    edge_weight[rev] = rwt
        return cls(num_nodes, indptr, indices, edge_weight)

    # ---------------------------------------------------------------- queries
    @property
    def node_types(self) -> list[str]:
        """Node types, in insertion order."""
        return list(self.num_nodes)

    @property
    def edge_types(self) -> list[EdgeType]:
        """Edge types, in insertion order (each relation followed by its twin)."""
        return list(self.indptr)

    def _check_edge_type(self, edge_type: EdgeType) -> EdgeType:
        edge_type = tuple(edge_type)  # type: ignore[assignment]
        if edge_type not in self.indptr:
            raise ValueError(
                f"unknown edge_type {edge_type!r} (known: {self.edge_types})"
            )
        return edge_type

    def num_edges(self, edge_type: EdgeType | None = None) -> int:
        """Stored edges of one edge type, or of all edge types when ``None``."""
        if edge_type is None:
            return sum(int(ix.numel()) for ix in self.indices.values())
        return int(self.indices[self._check_edge_type(edge_type)].numel())

    def degree(self, edge_type: EdgeType) -> Tensor:
        """Out-degree (``int64``) of every source node of ``edge_type``."""
        return self.indptr[self._check_edge_type(edge_type)].diff()

    def to_coo(self, edge_type: EdgeType) -> tuple[Tensor, Tensor]:
        """``(src, dst)`` ``int64`` edge lists, sorted by source then destination."""
        et = self._check_edge_type(edge_type)
        return _rows_of(self.indptr[et]), self.indices[et].long()

    def _locate(
        self, edge_type: EdgeType, src: Tensor, dst: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Vectorised per-row binary search: ``(found, position in indices)``."""
        et = self._check_edge_type(edge_type)
        src = _as_index(src, "src")
        dst = _as_index(dst, "dst")
        if src.numel() != dst.numel():
            raise ValueError(
                f"src and dst lengths differ ({src.numel()} vs {dst.numel()})"
            )
        _check_ids(src, self.num_nodes[et[0]], f"src ('{et[0]}')")
        indptr, indices = self.indptr[et], self.indices[et]
        num_edges = indices.numel()
        if src.numel() == 0 or num_edges == 0:
            zeros = torch.zeros(src.numel(), dtype=torch.long)
            return zeros.bool(), zeros
        lo = indptr[src]
        end = indptr[src + 1]
        hi = end.clone()
        steps = int((hi - lo).max()).bit_length()
        for _ in range(steps):  # O(log max_degree) vectorised rounds
            active = lo < hi
            mid = (lo + hi) >> 1
            go_right = (indices[mid.clamp(max=num_edges - 1)] < dst) & active
            lo = torch.where(go_right, mid + 1, lo)
            hi = torch.where(go_right | ~active, hi, mid)
        pos = lo.clamp(max=num_edges - 1)
        found = (lo < end) & (indices[pos] == dst)
        return found, pos

    def has_edges(self, edge_type: EdgeType, src: Tensor, dst: Tensor) -> Tensor:
        """Boolean mask: is ``(src[i], dst[i])`` an edge of ``edge_type``?"""
        return self._locate(edge_type, src, dst)[0]

    def nbytes(self) -> int:
        """Bytes held by all tensors of the store."""
        tensors = list(self.indptr.values()) + list(self.indices.values())
        if self.edge_weight is not None:
            tensors += list(self.edge_weight.values())
        return sum(t.numel() * t.element_size() for t in tensors)

    def __repr__(self) -> str:
        rels = ", ".join(f"{et}: {self.num_edges(et)}" for et in self.edge_types)
        weighted = self.edge_weight is not None
        return (
            f"HeteroCSR(num_nodes={self.num_nodes}, edges={{{rels}}}, "
            f"weighted={weighted})"
        )

    # ------------------------------------------------------------ transforms
    def transpose(self, edge_type: EdgeType) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(indptr, indices, weight)`` of the transpose of ``edge_type``.

        Rows are destination nodes, ``indices`` are (sorted) source ids.
        """
        et = self._check_edge_type(edge_type)
        weight = self.edge_weight[et] if self.edge_weight is not None else None
        return _transpose_csr(
            self.indptr[et], self.indices[et], weight, self.num_nodes[et[2]]
        )

    def remove_edges(
        self,
        edge_type: EdgeType,
        src: Tensor,
        dst: Tensor,
        both_directions: bool = True,
    ) -> HeteroCSR:
        """New graph without the edges ``(src[i], dst[i])`` of ``edge_type``.

        With ``both_directions`` the reversed pairs are also removed from the
        ``rev_`` twin of ``edge_type`` when the graph has one. Pairs that are not
        edges are ignored.
        """
        et = self._check_edge_type(edge_type)
        src = _as_index(src, "src")
        dst = _as_index(dst, "dst")
        _check_ids(dst, self.num_nodes[et[2]], f"dst ('{et[2]}')")
        targets = [(et, src, dst)]
        twin = reverse_edge_type(et)
        if both_directions and twin in self.indptr:
            targets.append((twin, dst, src))
        indptr = dict(self.indptr)
        indices = dict(self.indices)
        edge_weight = dict(self.edge_weight) if self.edge_weight is not None else None
        for t, s, d in targets:
            found, pos = self._locate(t, s, d)
            keep = torch.ones(indices[t].numel(), dtype=torch.bool)
            keep[pos[found]] = False
            kept = torch.zeros(keep.numel() + 1, dtype=torch.long)
            torch.cumsum(keep, 0, out=kept[1:])
            indptr[t] = kept[indptr[t]]
            indices[t] = indices[t][keep]
            if edge_weight is not None:
                edge_weight[t] = edge_weight[t][keep]
        return HeteroCSR(dict(self.num_nodes), indptr, indices, edge_weight)

    def to_hetero_data(self, x: dict[str, Tensor] | None = None) -> Any:
        """Full graph as a PyG ``HeteroData`` (``edge_index`` per edge type)."""
        from torch_geometric.data import HeteroData

        data = HeteroData()
        for t, n in self.num_nodes.items():
            data[t].num_nodes = n
            if x is not None and t in x:
                if x[t].size(0) != n:
                    raise ValueError(f"x['{t}'] has {x[t].size(0)} rows, expected {n}")
                data[t].x = x[t]
        for et in self.edge_types:
            src, dst = self.to_coo(et)
            data[et].edge_index = torch.stack([src, dst])
            if self.edge_weight is not None:
                data[et].edge_weight = self.edge_weight[et]
        return data

    # ---------------------------------------------------------- persistence
    def to_tensors(self) -> dict[str, Tensor]:
        """Flat ``{"indptr/<s>__<r>__<d>": tensor, ...}`` dict (safetensors-ready)."""
        out: dict[str, Tensor] = {}
        for et in self.edge_types:
            key = edge_type_key(et)
            if f"indptr/{key}" in out:
                raise ValueError(f"edge type {et} collides with key '{key}'")
            out[f"indptr/{key}"] = self.indptr[et].contiguous()
            out[f"indices/{key}"] = self.indices[et].contiguous()
            if self.edge_weight is not None:
                out[f"edge_weight/{key}"] = self.edge_weight[et].contiguous()
        return out

    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable description needed by :meth:`from_tensors`."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "num_nodes": dict(self.num_nodes),
            "edge_types": [list(et) for et in self.edge_types],
            "weighted": self.edge_weight is not None,
        }

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, Tensor], metadata: dict[str, Any]
    ) -> HeteroCSR:
        """Inverse of :meth:`to_tensors` + :meth:`metadata`."""
        if metadata.get("format") != _FORMAT:
            raise ValueError(
                f"metadata['format'] must be '{_FORMAT}' "
                f"(got {metadata.get('format')!r})"
            )
        num_nodes = {str(t): int(n) for t, n in metadata["num_nodes"].items()}
        edge_types = [tuple(et) for et in metadata["edge_types"]]
        indptr, indices = {}, {}
        edge_weight: dict[EdgeType, Tensor] | None = (
            {} if metadata["weighted"] else None
        )
        for et in edge_types:
            key = edge_type_key(et)  # type: ignore[arg-type]
            for name in ("indptr", "indices") + (
                ("edge_weight",) if edge_weight is not None else ()
            ):
                if f"{name}/{key}" not in tensors:
                    raise ValueError(f"tensors is missing key '{name}/{key}'")
            indptr[et] = tensors[f"indptr/{key}"].long()
            indices[et] = tensors[f"indices/{key}"].to(torch.int32)
            if edge_weight is not None:
                edge_weight[et] = tensors[f"edge_weight/{key}"].float()
        return cls(num_nodes, indptr, indices, edge_weight)  # type: ignore[arg-type]

    def save(self, path: str | Path) -> None:
        """Write the store to one ``.safetensors`` file (metadata in its header)."""
        from safetensors.torch import save_file

        save_file(
            self.to_tensors(),
            str(path),
            metadata={"hetero_csr": json.dumps(self.metadata())},
        )

    @classmethod
    def load(cls, path: str | Path) -> HeteroCSR:
        """Read a store written by :meth:`save`."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        if "hetero_csr" not in header:
            raise ValueError(f"path {str(path)!r} holds no HeteroCSR metadata")
        return cls.from_tensors(load_file(str(path)), json.loads(header["hetero_csr"]))
