"""Partition a heterogeneous graph into ``num_parts`` parts (METIS or hash baseline).

All node types are laid out as one homogeneous, symmetrised graph (node type ``i``
occupies ids ``offset[i] .. offset[i] + num_nodes - 1``, in ``graph.node_types``
order); METIS (through ``pymetis``) minimises the number of cut edges of that graph
while balancing the number of nodes per part. The hash baseline assigns every node
by a seeded hash of ``(node type, id)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hgt_cluster_kedro.graph.csr import HeteroCSR, reverse_edge_type

_METHODS = ("metis", "hash")


@dataclass
class Partitioning:
    """Result of :func:`partition_graph`.

    Attributes:
        owner: part id (``int64``) of every node, per node type; every node is owned
            by exactly one part.
        num_parts: number of parts.
        method: ``"metis"`` or ``"hash"``.
        seconds: wall time of the assignment (for METIS including the build of
            its symmetrised input graph; the hash needs no graph).
        hops: halo depth used by :meth:`halo` and :meth:`report`.
        edge_cut_fraction: fraction of the graph's stored edges (all edge types)
            whose endpoints are owned by different parts.
    """

    owner: dict[str, Tensor]
    num_parts: int
    method: str
    seconds: float
    hops: int
    edge_cut_fraction: float
    _offsets: dict[str, int] = field(repr=False)
    _indptr: Tensor = field(repr=False)  # symmetrised homogeneous CSR
    _indices: Tensor = field(repr=False)
    _halo_cache: dict[int, dict[str, Tensor]] = field(default_factory=dict, repr=False)

    @property
    def node_types(self) -> list[str]:
        """Node types, in the order of the homogeneous layout."""
        return list(self.owner)

    def _global_owner(self) -> Tensor:
        return torch.cat([self.owner[t] for t in self.node_types])

    def _split(self, global_ids: Tensor) -> dict[str, Tensor]:
        out = {}
        for t in self.node_types:
            lo = self._offsets[t]
            hi = lo + self.owner[t].numel()
            sel = global_ids[(global_ids >= lo) & (global_ids < hi)]
            out[t] = sel - lo
        return out

    def _check_part(self, part: int) -> int:
        if not 0 <= int(part) < self.num_parts:
            raise ValueError(f"part must be in [0, {self.num_parts}) (got {part})")
        return int(part)

    def nodes(self, part: int) -> dict[str, Tensor]:
        """Global ids (per node type, sorted) of the nodes owned by ``part``."""
        part = self._check_part(part)
        return {t: (o == part).nonzero().view(-1) for t, o in self.owner.items()}

    def halo(self, part: int, hops: int | None = None) -> dict[str, Tensor]:
        """Global ids (per node type, sorted) of the nodes *not* owned by ``part``
        within ``hops`` hops (either edge direction) of a node it owns."""
        part = self._check_part(part)
        hops = self.hops if hops is None else int(hops)
        if hops < 0:
            raise ValueError(f"hops must be >= 0 (got {hops})")
        if hops == self.hops and part in self._halo_cache:
            return self._halo_cache[part]
        owned = self._global_owner() == part
        reached = owned.clone()
        frontier = owned.nonzero().view(-1)
        for _ in range(hops):
            if frontier.numel() == 0:
                break
            start = self._indptr[frontier]
            deg = self._indptr[frontier + 1] - start
            total = int(deg.sum())
            shift = torch.cumsum(deg, 0) - deg - start
            pos = torch.arange(total) - torch.repeat_interleave(
                shift, deg, output_size=total
            )
            nbr = self._indices[pos].long()
            nbr = nbr[~reached[nbr]]
            reached[nbr] = True
            frontier = torch.unique(nbr)
        out = self._split((reached & ~owned).nonzero().view(-1))
        if hops == self.hops:
            self._halo_cache[part] = out
        return out

    def report(self) -> dict[str, Any]:
        """Summary: edge cut, balance, halo ratio, sizes per part, timing."""
        owner = self._global_owner()
        sizes = torch.bincount(owner, minlength=self.num_parts)
        halos = [
            sum(int(v.numel()) for v in self.halo(p).values())
            for p in range(self.num_parts)
        ]
        mean_size = float(sizes.float().mean())
        by_type = {
            t: torch.bincount(o, minlength=self.num_parts).tolist()
            for t, o in self.owner.items()
        }
        return {
            "method": self.method,
            "num_parts": self.num_parts,
            "hops": self.hops,
            "seconds": self.seconds,
            "edge_cut_fraction": self.edge_cut_fraction,
            "balance": float(sizes.max()) / mean_size if mean_size else 0.0,
            "halo_ratio": (sum(halos) / len(halos)) / mean_size if mean_size else 0.0,
            "part_sizes": sizes.tolist(),
            "halo_sizes": halos,
            "part_sizes_by_type": by_type,
        }


def partition_graph(
    graph: HeteroCSR,
    num_parts: int = 20,
    *,
    method: str = "metis",
    user_type: str,
    item_type: str,
    seed: int = 0,
    hops: int = 2,
) -> Partitioning:
    """Assign every node of ``graph`` to one of ``num_parts`` parts.

    Args:
        graph: the graph; every edge type is used, symmetrised (duplicates and
            self-loops dropped), as one homogeneous graph over all node types.
        num_parts: number of parts, ``1 <= num_parts <= total number of nodes``.
        method: ``"metis"`` (``pymetis.part_graph``, min edge cut) or ``"hash"``
            (seeded random hash of ``(node type, id)``, the baseline).
        user_type: the user node type (must exist; reported per type).
        item_type: the item node type (must exist; reported per type).
        seed: seed of METIS / of the hash.
        hops: halo depth for :meth:`Partitioning.halo` and the report.
    """
    if not isinstance(graph, HeteroCSR):
        raise ValueError(f"graph must be a HeteroCSR (got {type(graph).__name__})")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS} (got {method!r})")
    for name, t in (("user_type", user_type), ("item_type", item_type)):
        if t not in graph.num_nodes:
            raise ValueError(
                f"{name} '{t}' is not a node type of the graph "
                f"(known: {graph.node_types})"
            )
    total = sum(graph.num_nodes.values())
    if isinstance(num_parts, bool) or not isinstance(num_parts, int):
        raise ValueError(f"num_parts must be an int (got {num_parts!r})")
    if not 1 <= num_parts <= total:
        raise ValueError(
            f"num_parts must be in [1, number of nodes = {total}] (got {num_parts})"
        )
    if hops < 0:
        raise ValueError(f"hops must be >= 0 (got {hops})")

    t0 = time.perf_counter()
    offsets, indptr, indices = _homogeneous_csr(graph)
    if method == "metis":
        owner = _metis(indptr, indices, num_parts, seed)
        seconds = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        owner = _hash(graph, offsets, num_parts, seed)
        seconds = time.perf_counter() - t0

    per_type = {
        t: owner[offsets[t] : offsets[t] + n] for t, n in graph.num_nodes.items()
    }
    cut = 0
    stored = 0
    for et in graph.edge_types:
        src, dst = graph.to_coo(et)
        cut += int((per_type[et[0]][src] != per_type[et[2]][dst]).sum())
        stored += src.numel()
    return Partitioning(
        owner=per_type,
        num_parts=num_parts,
        method=method,
        seconds=seconds,
        hops=hops,
        edge_cut_fraction=cut / stored if stored else 0.0,
        _offsets=offsets,
        _indptr=indptr,
        _indices=indices,
    )


def _homogeneous_csr(graph: HeteroCSR) -> tuple[dict[str, int], Tensor, Tensor]:
    """Symmetrised, deduplicated, self-loop-free CSR over all node types."""
    offsets: dict[str, int] = {}
    n = 0
    for t, cnt in graph.num_nodes.items():
        offsets[t] = n
        n += cnt
    keys = []
    done: set = set()
    for et in graph.edge_types:
        if reverse_edge_type(et) in done:  # a rev_ twin adds no undirected pair
            continue
        done.add(et)
        src, dst = graph.to_coo(et)
        src = src + offsets[et[0]]
        dst = dst + offsets[et[2]]
        keep = src != dst
        src, dst = src[keep], dst[keep]
        keys.append(src * n + dst)
        keys.append(dst * n + src)
    if keys:
        key = torch.unique(torch.cat(keys))  # sorted, deduplicated
    else:
        key = torch.empty(0, dtype=torch.long)
    rows = torch.div(key, n, rounding_mode="floor") if n else key
    cols = key - rows * n
    indptr = torch.zeros(n + 1, dtype=torch.long)
    torch.cumsum(torch.bincount(rows, minlength=n), 0, out=indptr[1:])
    return offsets, indptr, cols


def _metis(indptr: Tensor, indices: Tensor, num_parts: int, seed: int) -> Tensor:
    n = indptr.numel() - 1
    if num_parts == 1:
        return torch.zeros(n, dtype=torch.long)
    if indices.numel() == 0:  # METIS needs edges; fall back to contiguous blocks
        return torch.arange(n) * num_parts // n
    import pymetis

    adjacency = pymetis.CSRAdjacency(
        np.ascontiguousarray(indptr.numpy(), dtype=np.int64),
        np.ascontiguousarray(indices.numpy(), dtype=np.int64),
    )
    options = pymetis.Options(seed=int(seed))
    _, parts = pymetis.part_graph(num_parts, adjacency=adjacency, options=options)
    return torch.from_numpy(np.asarray(parts, dtype=np.int64))


def _hash(
    graph: HeteroCSR, offsets: dict[str, int], num_parts: int, seed: int
) -> Tensor:
    """SplitMix64 of ``(type index << 40) + id`` salted by ``seed``, mod parts."""
    out = []
    with np.errstate(over="ignore"):
        for i, n in enumerate(graph.num_nodes.values()):
            x = np.arange(n, dtype=np.uint64) + np.uint64(i << 40)
            x ^= np.uint64((int(seed) * 0x9E3779B97F4A7C15) % 2**64)
            x += np.uint64(0x9E3779B97F4A7C15)
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            x ^= x >> np.uint64(31)
            out.append(torch.from_numpy((x % np.uint64(num_parts)).astype(np.int64)))
    return torch.cat(out)


def plot_report(report: dict[str, Any]) -> Any:
    """Bar chart of owned vs halo nodes per part (a ``matplotlib`` ``Figure``)."""
    from matplotlib.figure import Figure

    for key in ("part_sizes", "halo_sizes"):
        if key not in report:
            raise ValueError(f"report is missing '{key}' (use Partitioning.report())")
    owned = np.asarray(report["part_sizes"])
    halo = np.asarray(report["halo_sizes"])
    parts = np.arange(owned.size)
    fig = Figure(figsize=(max(6.0, 0.35 * owned.size + 2), 4))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.4
    ax.bar(parts - width / 2, owned, width, label="owned")
    ax.bar(
        parts + width / 2, halo, width, label=f"halo ({report.get('hops', '?')} hops)"
    )
    ax.set_xlabel("part")
    ax.set_ylabel("nodes")
    ax.set_xticks(parts)
    ax.set_title(
        f"{report.get('method', '?')}: edge cut "
        f"{report.get('edge_cut_fraction', float('nan')):.3f}, balance "
        f"{report.get('balance', float('nan')):.2f}, halo ratio "
        f"{report.get('halo_ratio', float('nan')):.2f}"
    )
    ax.legend()
    fig.tight_layout()
    return fig
