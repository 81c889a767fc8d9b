"""Multi-hop heterogeneous neighbour sampler over a :class:`HeteroCSR`.

Stand-in for the sampling step of PyG's ``NeighborLoader`` / ``LinkNeighborLoader``
(which needs ``pyg-lib`` or ``torch-sparse``), with two backends:

* ``"numba"``: one fused compiled kernel call per hop and (source type,
  destination type) pair that draws, relabels and emits the local edge index
  (``_sampler_kernels.py``), as pyg-lib does in C++;
* ``"torch"``: every hop is a fixed number of tensor operations per pair, with no
  Python loop over nodes or edges (the fallback without numba, and for tensors
  not on the CPU).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from hgt_cluster_kedro.graph.csr import EdgeType, HeteroCSR, reverse_edge_type
from hgt_cluster_kedro.graph.negatives import (
    NEGATIVE_SAMPLERS,
    NegativeSampler,
    make_negative_sampler,
    positive_test,
)

_NEG_MODES = tuple(NEGATIVE_SAMPLERS)
_BACKENDS = ("auto", "numba", "torch")
_MAP_RENEW = 2**30  # numba backend: map base beyond which the map is refilled

# (relation slots, edges per slot, neighbour ids, frontier local ids, positions)
_Draw = tuple[list[int], list[int], Tensor, Tensor, Tensor]


@dataclass
class _HopPlan:
    """Relations of one group sampled at one hop."""

    sampled: list[int] = field(default_factory=list)  # relation slots with k > 0
    ks: list[int] = field(default_factory=list)
    full: list[int] = field(default_factory=list)  # relation slots with k == -1
    slots: Tensor | None = None  # the sampled relation slots, as a tensor
    kvec: Tensor | None = None  # per-relation k when they differ
    # numba backend: slots to draw (sampled and full), their k (-1 = all)
    k_slots: np.ndarray | None = None
    k_ks: np.ndarray | None = None
    k_edge_types: list[EdgeType] = field(default_factory=list)


@dataclass
class _Group:
    """Relations sharing (src_type, dst_type), fused into one in-neighbour CSR.

    Row ``v * len(edge_types) + slot`` lists the sources of ``v`` along
    ``edge_types[slot]`` (node-major: all in-edges of a node are contiguous).
    """

    src_type: str
    dst_type: str
    edge_types: list[EdgeType]
    num_dst: int
    indptr: Tensor
    indices: Tensor
    weight: Tensor | None
    plans: list[_HopPlan]
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # numba views


class NeighborSampler:
    r"""Multi-hop neighbour sampler returning PyG ``HeteroData`` mini-batches.

    **Direction.** As in PyG, an edge type ``(s, r, d)`` carries messages from
    ``s``-nodes to ``d``-nodes, and ``num_neighbors[(s, r, d)][h]`` is the number of
    ``s``-neighbours drawn at hop ``h`` for every ``d``-node of the hop-``h``
    frontier, i.e. the *in*-neighbours of ``d`` along ``(s, r, d)``. They are read
    from the CSR of the ``rev_`` twin ``(d, rev_r, s)`` (the transpose, present when
    the graph was built with ``add_reverse=True``); edge types without a twin are
    transposed once at construction. In the output, ``data[(s, r, d)].edge_index``
    holds **local** ids: row 0 indexes ``data[s].n_id`` (message source), row 1
    indexes ``data[d].n_id`` (message target), and every sampled pair
    ``(n_id_s[row0], n_id_d[row1])`` is an edge of ``(s, r, d)`` in the graph.

    **Fanouts.** ``num_neighbors`` is either one list (applied to every edge type)
    or a dict ``{edge_type: list}`` (missing edge types are not sampled); the list
    length is the number of hops, ``-1`` means all neighbours and ``0`` none.
    Without replacement a node of in-degree ``deg`` gets exactly ``min(deg, k)``
    distinct neighbours (uniform ``k``-subsets via Floyd's algorithm); with
    replacement ``k`` independent uniform draws (none if ``deg == 0``). Each node
    is expanded once: at the hop after it was first discovered.

    **Output of** :meth:`sample_nodes`, per node type ``t`` (every node type of the
    graph, possibly empty):

    * ``data[t].n_id`` -- global ids: the seeds first, in their given order, then
      the nodes discovered at hop 1, hop 2, ... (no duplicates).
    * ``data[t].num_sampled_nodes`` -- list, nodes added at each hop (hop 0 = seeds).
    * ``data[t].batch_size`` -- number of seeds (seed types only).
    * ``data[t].num_nodes`` -- ``len(n_id)``.

    and per edge type (every edge type of the graph, possibly empty):
    ``edge_index`` (``[2, E]`` int64, local ids), ``num_sampled_edges`` (per hop)
    and ``edge_weight`` when the graph is weighted. Node features are not
    attached: use ``x[t][data[t].n_id]``. Edge ids (``e_id``) are not returned:
    edges are drawn from the transposed (``rev_``) CSR, whose positions are not the
    forward relation's; the weights, the only per-edge attribute of the store, are.

    **Output of** :meth:`sample_links`: the same subgraph, sampled around every
    endpoint of the positives and negatives together (their unique ids, sorted, are
    the seeds, so they come first in ``n_id``), plus, on the global store:

    * ``data.input_edge_type`` -- the supervised edge type ``(s, r, d)``.
    * ``data.src_index`` / ``data.dst_index`` (``[B]``) -- local indices (into
      ``data[s].n_id`` / ``data[d].n_id``) of the positive endpoints.
    * ``data.dst_neg_index`` (``[B, num_neg]``, ``d``-type) -- negative
      destinations for each positive's source (corrupted tails).
    * ``data.src_neg_index`` (``[B, num_neg]``, ``s``-type) -- negative sources for
      each positive's destination (corrupted heads).
    * ``data.dst_neg_mask`` / ``data.src_neg_mask`` (``[B, num_neg]`` bool) --
      ``False`` where the candidate pair is a known positive (an edge of
      ``(s, r, d)`` in the graph or a positive of the batch). With
      ``neg_mode="uniform"`` such draws are re-drawn for up to ``max_rounds``
      rounds first, so the mask is almost always all ``True``; with
      ``"in_batch"`` (negatives are the endpoints of other positives, by random
      cyclic shifts of the batch) they are only masked.

    Supervision edges stay in the sampled graph unless ``remove_targets=True``
    (then every sampled edge between the two endpoints of a positive is dropped).

    Args:
        graph: the graph store.
        num_neighbors: fanouts per hop (see above).
        replace: sample with replacement.
        seed: seed of the sampler's own random stream (a NumPy ``PCG64``
            generator); :meth:`state_dict` / :meth:`load_state_dict` save and
            restore it so that a checkpoint resumes the exact batches.
        backend: ``"numba"`` (fused compiled kernels; needs ``numba`` and CPU
            tensors), ``"torch"`` (vectorised tensor operations) or ``"auto"``
            (numba when importable and the graph is on the CPU, else torch). The
            resolved choice is :attr:`backend`.

    **Randomness.** Both backends draw from the generator only, so a seed (or a
    restored :meth:`state_dict`) fixes every batch. The torch backend draws a block
    of uniform floats per hop; the numba backend draws one 63-bit integer per
    batch that seeds an in-kernel SplitMix64 stream per kernel call (see
    ``_sampler_kernels``). The backends sample the same distribution but not the
    same subgraph for a given seed, and the order of the edges within an edge
    type and of the nodes discovered within a hop differs between them.

    Relations sharing ``(src_type, dst_type)`` are fused into one in-neighbour CSR
    at construction (a copy of their ``indices``: 4 bytes per edge, see
    :meth:`nbytes`). The sampler keeps per-node-type scratch maps and is not
    thread-safe: use one instance per worker thread or process (the numba kernels
    release the GIL). It pickles, e.g. to be sent to a worker process.
    """

    def __init__(
        self,
        graph: HeteroCSR,
        num_neighbors: list[int] | dict[EdgeType, list[int]],
        *,
        replace: bool = False,
        seed: int = 0,
        backend: str = "auto",
    ) -> None:
        if not isinstance(graph, HeteroCSR):
            raise ValueError(f"graph must be a HeteroCSR (got {type(graph).__name__})")
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS} (got {backend!r})")
        self.graph = graph
        self.replace = bool(replace)
        self.seed = int(seed)
        self.num_hops, self.num_neighbors = _parse_fanouts(graph, num_neighbors)
        self.rng = np.random.Generator(np.random.PCG64(self.seed))
        self._groups = self._build_groups()
        self._groups_by_dst: dict[str, list[_Group]] = {}
        for grp in self._groups:
            self._groups_by_dst.setdefault(grp.dst_type, []).append(grp)
        # Scratch global -> local maps (-1 = unseen), reset after every batch.
        self._maps = {
            t: torch.full((n,), -1, dtype=torch.int32)
            for t, n in graph.num_nodes.items()
        }
        self._arange = torch.arange(0, dtype=torch.int32)
        self._minus_one = torch.full((0,), -1, dtype=torch.int32)
        self._kernels = self._resolve_backend(backend)
        self.backend = "torch" if self._kernels is None else "numba"
        if self._kernels is not None:
            # The numba backend never resets its maps: entries below the type's
            # base are stale (see _sampler_kernels.sample_hop).
            self._map_base = dict.fromkeys(self._maps, 0)
            self._bind_arrays()

    def _bind_arrays(self) -> None:
        """NumPy views of the maps and fused CSRs, for the numba kernels."""
        self._np_maps = {t: m.numpy() for t, m in self._maps.items()}
        no_weight = np.empty(0, dtype=np.float32)
        for grp in self._groups:
            w = no_weight if grp.weight is None else grp.weight.numpy()
            grp.arrays = (grp.indptr.numpy(), grp.indices.numpy(), w)

    def __getstate__(self) -> dict[str, Any]:
        # Pickle the tensors only: the kernels module and the NumPy views are
        # rebuilt on load (views would be pickled as copies).
        state = self.__dict__.copy()
        state["_kernels"] = None
        state.pop("_np_maps", None)
        copies = {id(g): dataclasses.replace(g, arrays=None) for g in self._groups}
        state["_groups"] = list(copies.values())
        state["_groups_by_dst"] = {
            t: [copies[id(g)] for g in gs] for t, gs in self._groups_by_dst.items()
        }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.backend == "numba":
            self._kernels = self._resolve_backend("numba")
            self._bind_arrays()

    def _resolve_backend(self, backend: str) -> ModuleType | None:
        """The kernels module for the numba backend, ``None`` for torch."""
        if backend == "torch":
            return None
        tensors = [t for g in self._groups for t in (g.indptr, g.indices, g.weight)]
        tensors += list(self._maps.values())
        if not all(t.device.type == "cpu" for t in tensors if t is not None):
            if backend == "numba":
                raise ValueError("backend='numba' needs the graph on the CPU")
            return None
        try:
            return _import_kernels()
        except ImportError as err:
            if backend == "numba":
                raise ImportError(
                    "backend='numba' needs the numba package (pip install numba)"
                ) from err
            return None

    def _build_groups(self) -> list[_Group]:
        graph = self.graph
        pairs: dict[tuple[str, str], list[EdgeType]] = {}
        for et in graph.edge_types:
            if any(self.num_neighbors[et]):
                pairs.setdefault((et[0], et[2]), []).append(et)
        groups = []
        for (s_type, d_type), ets in pairs.items():
            num_dst = graph.num_nodes[d_type]
            parts = []
            for et in ets:
                twin = reverse_edge_type(et)
                if twin in graph.indptr and graph.num_edges(twin) == graph.num_edges(
                    et
                ):
                    w = (
                        graph.edge_weight[twin]
                        if graph.edge_weight is not None
                        else None
                    )
                    parts.append((graph.indptr[twin], graph.indices[twin], w))
                else:
                    parts.append(graph.transpose(et))
            indptr, indices, weight = _fuse_node_major(parts, num_dst)
            if indices.numel() < 2**31 - 1:
                indptr = indptr.to(torch.int32)  # halves cache misses on lookups
            plans = []
            for hop in range(self.num_hops):
                plan = _HopPlan()
                for slot, et in enumerate(ets):
                    k = self.num_neighbors[et][hop]
                    if k > 0:
                        plan.sampled.append(slot)
                        plan.ks.append(k)
                    elif k == -1:
                        plan.full.append(slot)
                plan.slots = torch.tensor(plan.sampled, dtype=torch.long).unsqueeze(1)
                if len(set(plan.ks)) > 1:
                    plan.kvec = torch.tensor(plan.ks, dtype=torch.long)
                if plan.sampled or plan.full:
                    plan.k_slots = np.array(plan.sampled + plan.full, dtype=np.int64)
                    plan.k_ks = np.array(
                        plan.ks + [-1] * len(plan.full), dtype=np.int64
                    )
                    plan.k_edge_types = [ets[i] for i in plan.sampled + plan.full]
                plans.append(plan)
            groups.append(
                _Group(s_type, d_type, ets, num_dst, indptr, indices, weight, plans)
            )
        return groups

    def _scratch_is_clean(self) -> bool:
        """Whether no scratch map entry refers to a node of a batch (tests)."""
        if self._kernels is None:
            return all(bool((m == -1).all()) for m in self._maps.values())
        return all(bool((m < self._map_base[t]).all()) for t, m in self._maps.items())

    def nbytes(self) -> int:
        """Bytes held by the sampler beyond the graph (fused CSRs, scratch maps)."""
        own = {id(t) for t in self.graph.to_tensors().values()}
        total = sum(m.numel() * m.element_size() for m in self._maps.values())
        for grp in self._groups:
            for t in (grp.indptr, grp.indices, grp.weight):
                if t is not None and id(t) not in own:
                    total += t.numel() * t.element_size()
        return total

    # --------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Random stream state, so a checkpoint can resume the exact batches."""
        return {"seed": self.seed, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state produced by :meth:`state_dict`."""
        if "rng" not in state:
            raise ValueError("state must contain an 'rng' entry")
        self.seed = int(state.get("seed", self.seed))
        self.rng.bit_generator.state = state["rng"]

    # ------------------------------------------------------------ sampling
    def sample_nodes(self, seeds: dict[str, Tensor]) -> HeteroData:
        """Sample the ``num_hops`` neighbourhood of ``seeds`` (``{type: ids}``).

        Seeds must be distinct within each node type.
        """
        if not isinstance(seeds, dict) or not seeds:
            raise ValueError("seeds must be a non-empty dict {node_type: ids}")
        clean: dict[str, Tensor] = {}
        for t, ids in seeds.items():
            if t not in self.graph.num_nodes:
                raise ValueError(
                    f"seeds has unknown node type '{t}' "
                    f"(known: {self.graph.node_types})"
                )
            clean[t] = _check_ids(ids, self.graph.num_nodes[t], f"seeds['{t}']")
        return self._sample(clean)

    def sample_links(
        self,
        edge_type: EdgeType,
        src: Tensor,
        dst: Tensor,
        *,
        num_neg: int = 1,
        neg_mode: str = "uniform",
        negatives: NegativeSampler | None = None,
        remove_targets: bool = False,
    ) -> HeteroData:
        """Sample around positive edges ``(src[i], dst[i])`` of ``edge_type`` and
        their negatives (see the class docstring for the output attributes).

        ``negatives`` (a :mod:`~hgt_cluster_kedro.graph.negatives` sampler)
        draws the negatives; without it ``neg_mode`` / ``num_neg`` name one.
        With ``remove_targets`` no sampled edge joins the two endpoints of a
        positive (any relation between their types, either direction), so the
        encoder cannot read a positive off the message-passing graph.
        """
        edge_type = tuple(edge_type)  # type: ignore[assignment]
        if edge_type not in self.graph.indptr:
            raise ValueError(
                f"unknown edge_type {edge_type!r} (known: {self.graph.edge_types})"
            )
        if negatives is None:
            if neg_mode not in _NEG_MODES:
                raise ValueError(
                    f"neg_mode must be one of {_NEG_MODES} (got {neg_mode!r})"
                )
            if num_neg < 0:
                raise ValueError(f"num_neg must be >= 0 (got {num_neg})")
            negatives = make_negative_sampler(neg_mode, num_neg)
        num_neg = negatives.num_neg
        s_type, _, d_type = edge_type
        n_s, n_d = self.graph.num_nodes[s_type], self.graph.num_nodes[d_type]
        src = _check_ids(src, n_s, "src")
        dst = _check_ids(dst, n_d, "dst")
        if src.numel() != dst.numel():
            raise ValueError(
                f"src and dst lengths differ ({src.numel()} vs {dst.numel()})"
            )
        batch = src.numel()
        if batch == 0:
            raise ValueError("src must hold at least one positive edge")
        draw = negatives.draw(
            src,
            dst,
            num_src=n_s,
            num_dst=n_d,
            rng=self.rng,
            is_positive=positive_test(self.graph, edge_type, src, dst),
        )
        src_neg, dst_neg = draw.src_neg, draw.dst_neg
        src_bad, dst_bad = draw.src_bad, draw.dst_bad

        if s_type == d_type:
            both = torch.cat([src, dst, src_neg.flatten(), dst_neg.flatten()])
            uniq, inv = torch.unique(both, return_inverse=True)
            seeds = {s_type: uniq}
            k = batch * num_neg
            src_index, dst_index = inv[:batch], inv[batch : 2 * batch]
            src_neg_index = inv[2 * batch : 2 * batch + k]
            dst_neg_index = inv[2 * batch + k :]
        else:
            s_uniq, s_inv = torch.unique(
                torch.cat([src, src_neg.flatten()]), return_inverse=True
            )
            d_uniq, d_inv = torch.unique(
                torch.cat([dst, dst_neg.flatten()]), return_inverse=True
            )
            seeds = {s_type: s_uniq, d_type: d_uniq}
            src_index, src_neg_index = s_inv[:batch], s_inv[batch:]
            dst_index, dst_neg_index = d_inv[:batch], d_inv[batch:]
        data = self._sample(seeds)
        if remove_targets:
            _drop_pairs(data, s_type, d_type, src * n_d + dst, n_d)
        data.input_edge_type = edge_type
        data.src_index = src_index
        data.dst_index = dst_index
        data.src_neg_index = src_neg_index.view(batch, num_neg)
        data.dst_neg_index = dst_neg_index.view(batch, num_neg)
        data.src_neg_mask = ~src_bad
        data.dst_neg_mask = ~dst_bad
        return data

    # ------------------------------------------------------------ internals
    def _ar(self, n: int) -> Tensor:
        """``arange(n)`` (int32) from a cached buffer."""
        if self._arange.numel() < n:
            self._arange = torch.arange(max(n, 2 * self._arange.numel()))
            self._arange = self._arange.to(torch.int32)
        return self._arange[:n]

    def _sample(self, seeds: dict[str, Tensor]) -> HeteroData:
        if self._kernels is not None:
            return self._sample_numba(seeds)
        graph = self.graph
        maps = self._maps
        weighted = graph.edge_weight is not None
        n_id: dict[str, list[Tensor]] = {t: [] for t in graph.num_nodes}
        count = dict.fromkeys(graph.num_nodes, 0)
        hop_nodes = {t: [0] * (self.num_hops + 1) for t in graph.num_nodes}
        # Per edge type: lists of (src local, dst local, weight) chunks.
        src_parts: dict[EdgeType, list[Tensor]] = {et: [] for et in graph.edge_types}
        dst_parts: dict[EdgeType, list[Tensor]] = {et: [] for et in graph.edge_types}
        w_parts: dict[EdgeType, list[Tensor]] = {et: [] for et in graph.edge_types}
        hop_edges = {et: [0] * self.num_hops for et in graph.edge_types}

        frontier: dict[str, tuple[Tensor, Tensor]] = {}  # type -> (global, local)
        try:
            for t, ids in seeds.items():
                local = self._ar(ids.numel())
                maps[t].scatter_(0, ids, local)
                n_id[t].append(ids)
                if not bool(maps[t].index_select(0, ids).eq(local).all()):
                    raise ValueError(f"seeds['{t}'] contains duplicate ids")
                count[t] = hop_nodes[t][0] = ids.numel()
                frontier[t] = (ids, local)

            for hop in range(self.num_hops):
                drawn: dict[str, list[tuple[_Group, _Draw]]] = {}
                for d_type, (glob, loc) in frontier.items():
                    for grp in self._groups_by_dst.get(d_type, ()):
                        plan = grp.plans[hop]
                        for draw in self._draw(grp, plan, glob, loc):
                            drawn.setdefault(grp.src_type, []).append((grp, draw))
                next_frontier: dict[str, tuple[Tensor, Tensor]] = {}
                for s_type, items in drawn.items():
                    if len(items) == 1:
                        cand = items[0][1][2]
                    else:
                        cand = torch.cat([draw[2] for _, draw in items])
                    local, new = self._relabel(
                        maps[s_type], cand, count[s_type], hop == self.num_hops - 1
                    )
                    if new.numel():
                        n_id[s_type].append(new)
                        new_local = self._ar(count[s_type] + new.numel())[
                            count[s_type] :
                        ]
                        count[s_type] += new.numel()
                        hop_nodes[s_type][hop + 1] = new.numel()
                        next_frontier[s_type] = (new, new_local)
                    start = 0
                    for grp, (slots, sizes, nbr, dst_loc, pos) in items:
                        end = start + nbr.numel()
                        src_loc = local[start:end] if len(items) > 1 else local
                        start = end
                        if len(slots) == 1:
                            pieces = [(src_loc, dst_loc, pos)]
                        else:
                            pieces = zip(
                                src_loc.split(sizes),
                                dst_loc.split(sizes),
                                pos.split(sizes),
                                strict=True,
                            )
                        for slot, size, (a, b, c) in zip(
                            slots, sizes, pieces, strict=True
                        ):
                            et = grp.edge_types[slot]
                            src_parts[et].append(a)
                            dst_parts[et].append(b)
                            hop_edges[et][hop] = size
                            if weighted:
                                w_parts[et].append(grp.weight.index_select(0, c))
                frontier = next_frontier
        finally:
            for t, parts in n_id.items():
                for ids in parts:
                    maps[t].scatter_(0, ids, self._minus(ids.numel()))

        node_ids = {}
        for t, parts in n_id.items():
            if not parts:
                node_ids[t] = torch.empty(0, dtype=torch.long)
            elif len(parts) == 1:
                node_ids[t] = parts[0].long()
            else:
                node_ids[t] = torch.cat(parts).long()
        edge_index = {}
        weights: dict[EdgeType, Tensor] | None = {} if weighted else None
        for et in graph.edge_types:
            parts = src_parts[et] + dst_parts[et]
            if not parts:
                edge_index[et] = torch.empty(2, 0, dtype=torch.long)
            else:
                edge_index[et] = torch.cat(parts).long().view(2, -1)
            if weights is not None:
                w = w_parts[et]
                weights[et] = torch.cat(w) if w else torch.empty(0, dtype=torch.float32)
        return _hetero_data(
            seeds,
            n_id=node_ids,
            count=count,
            hop_nodes=hop_nodes,
            edge_index=edge_index,
            hop_edges=hop_edges,
            weights=weights,
        )

    def _sample_numba(self, seeds: dict[str, Tensor]) -> HeteroData:
        """:meth:`_sample` with the fused kernels: per hop, one kernel call per
        (frontier node type, relation group) draws, relabels and emits the edges."""
        graph = self.graph
        kernels = self._kernels
        maps = self._np_maps
        replace = self.replace
        weighted = graph.edge_weight is not None
        n_id: dict[str, list[np.ndarray]] = {t: [] for t in graph.num_nodes}
        count = dict.fromkeys(graph.num_nodes, 0)
        hop_nodes = {t: [0] * (self.num_hops + 1) for t in graph.num_nodes}
        ei_parts: dict[EdgeType, list[np.ndarray]] = {et: [] for et in graph.edge_types}
        w_parts: dict[EdgeType, list[np.ndarray]] = {et: [] for et in graph.edge_types}
        hop_edges = {et: [0] * self.num_hops for et in graph.edge_types}
        # One raw 64-bit draw per batch from the generator seeds every kernel
        # call's stream (kept to 63 bits: a non-negative int64).
        seed = self.rng.bit_generator.random_raw() >> 1
        stream = 0
        base = self._map_base
        for t, b in base.items():
            if b > _MAP_RENEW:  # rare: start the map over
                maps[t].fill(-1)
                base[t] = 0
        written = dict.fromkeys(graph.num_nodes, 0)  # map entries used, per type
        # type -> (global ids of the nodes to expand, local id of the first one)
        frontier: dict[str, tuple[np.ndarray, int]] = {}
        try:
            for t, ids in seeds.items():
                arr = np.ascontiguousarray(ids.cpu().numpy())
                n_id[t].append(arr)
                written[t] = arr.size
                dup = kernels.map_seeds(maps[t], base[t], arr)
                if dup >= 0:
                    raise ValueError(
                        f"seeds['{t}'] contains duplicate ids (e.g. {int(arr[dup])})"
                    )
                count[t] = hop_nodes[t][0] = arr.size
                if arr.size:
                    frontier[t] = (arr, 0)

            last = self.num_hops - 1
            for hop in range(self.num_hops):
                first = dict(count)  # local id of the first node found at this hop
                found: dict[str, list[np.ndarray]] = {}
                calls = [
                    (grp, glob, loc0)
                    for d_type, (glob, loc0) in frontier.items()
                    for grp in self._groups_by_dst.get(d_type, ())
                    if grp.plans[hop].k_slots is not None
                ]
                for i, (grp, glob, loc0) in enumerate(calls):
                    plan = grp.plans[hop]
                    s_type = grp.src_type
                    # At the last hop, the last call per source type may leave
                    # its map entries unresolved.
                    final = hop == last and all(
                        later.src_type != s_type for later, _, _ in calls[i + 1 :]
                    )
                    indptr, indices, weight = grp.arrays  # type: ignore[misc]
                    out, sizes, new, w = kernels.sample_hop(
                        indptr,
                        indices,
                        weight,
                        glob,
                        loc0,
                        len(grp.edge_types),
                        plan.k_slots,
                        plan.k_ks,
                        replace,
                        maps[s_type],
                        base[s_type],
                        count[s_type],
                        final,
                        seed,
                        stream,
                    )
                    stream += 1
                    sizes = sizes.tolist()
                    written[s_type] = max(written[s_type], count[s_type] + sum(sizes))
                    if new.size:
                        n_id[s_type].append(new)
                        count[s_type] += new.size
                        hop_nodes[s_type][hop + 1] += new.size
                        found.setdefault(s_type, []).append(new)
                    off = 0
                    for et, size in zip(plan.k_edge_types, sizes, strict=True):
                        if size:
                            end = off + size
                            ei_parts[et].append(out[2 * off : 2 * end].reshape(2, size))
                            hop_edges[et][hop] += size
                            if weighted:
                                w_parts[et].append(w[off:end])
                            off = end
                frontier = {
                    t: (
                        parts[0] if len(parts) == 1 else np.concatenate(parts),
                        first[t],
                    )
                    for t, parts in found.items()
                }
        finally:
            for t, w in written.items():
                base[t] += w  # every entry written in this batch is now stale

        node_ids = {}
        for t, parts in n_id.items():
            if not parts:
                node_ids[t] = torch.empty(0, dtype=torch.long)
            elif len(parts) == 1:
                node_ids[t] = torch.from_numpy(parts[0])
            else:
                node_ids[t] = torch.from_numpy(np.concatenate(parts))
        edge_index = {}
        weights: dict[EdgeType, Tensor] | None = {} if weighted else None
        for et, parts in ei_parts.items():
            if not parts:
                edge_index[et] = torch.empty(2, 0, dtype=torch.long)
            elif len(parts) == 1:
                edge_index[et] = torch.from_numpy(parts[0])
            else:
                edge_index[et] = torch.from_numpy(np.concatenate(parts, axis=1))
            if weights is not None:
                w = w_parts[et]
                if not w:
                    weights[et] = torch.empty(0, dtype=torch.float32)
                else:
                    weights[et] = torch.from_numpy(
                        w[0] if len(w) == 1 else np.concatenate(w)
                    )
        return _hetero_data(
            seeds,
            n_id=node_ids,
            count=count,
            hop_nodes=hop_nodes,
            edge_index=edge_index,
            hop_edges=hop_edges,
            weights=weights,
        )

    def _col(self, m: int) -> Tensor:
        """``arange(m)`` as a column ``[m, 1]``."""
        return self._ar(m).unsqueeze(1)

    def _minus(self, n: int) -> Tensor:
        if self._minus_one.numel() < n:
            self._minus_one = torch.full(
                (max(n, 2 * self._minus_one.numel()),), -1, dtype=torch.int32
            )
        return self._minus_one[:n]

    def _relabel(
        self, mapping: Tensor, cand: Tensor, num_prev: int, last: bool
    ) -> tuple[Tensor, Tensor]:
        """Local ids of ``cand``; unseen ids get new local ids ``num_prev, ...``.

        Returns ``(local ids, new global ids in local-id order)``. With ``last``
        the map is not updated with the new ids (no later hop looks them up), only
        left dirty at their entries, which the caller resets through ``n_id``.
        """
        local = mapping.index_select(0, cand)
        is_new = local < 0
        new = cand.masked_select(is_new)
        if new.numel() == 0:
            return local, new
        # Deduplicate the new ids: one writer wins per id (CPU scatter on a 1-D
        # tensor runs serially, so the winner is deterministic).
        order = self._ar(new.numel())
        mapping.scatter_(0, new, order)
        winner = mapping.index_select(0, new)
        first = winner == order
        uniq = new.masked_select(first)
        # Local id of every new candidate = num_prev + rank of its winner.
        rank = torch.cumsum(first, 0, dtype=torch.int32)
        rank += num_prev - 1
        local.masked_scatter_(is_new, rank.index_select(0, winner))
        if not last:
            mapping.scatter_(0, uniq, self._ar(num_prev + uniq.numel())[num_prev:])
        return local, uniq

    def _draw(
        self, grp: _Group, plan: _HopPlan, glob: Tensor, loc: Tensor
    ) -> list[_Draw]:
        """In-neighbours of the frontier ``glob`` (local ids ``loc``) along the
        relations of ``grp``, as ``(slots, sizes, neighbour global ids, frontier
        local id per edge, positions in grp.indices)``; the edges of relation
        ``slots[i]`` are the ``i``-th ``sizes[i]``-long chunk."""
        out: list[_Draw] = []
        indptr, indices = grp.indptr, grp.indices
        num_rel = len(grp.edge_types)
        num = glob.numel()
        if plan.sampled:
            m = len(plan.sampled)
            kmax = max(plan.ks)
            # Rows [m, num]: relation-major, so that every relation's edges come
            # out contiguous; the storage is node-major, so the m rows of a node
            # share cache lines across the m passes.
            if num_rel == 1:
                rows = glob
            elif m == num_rel:
                rows = ((glob * num_rel).unsqueeze(0) + self._col(m)).view(-1)
            else:
                rows = ((glob * num_rel).unsqueeze(0) + plan.slots).view(-1)
            start = indptr.index_select(0, rows)
            deg = indptr[1:].index_select(0, rows) - start
            cap: int | Tensor = (
                kmax if plan.kvec is None else plan.kvec.repeat_interleave(num)
            )
            rnd = torch.from_numpy(self.rng.random((num * m, kmax)))
            slots = self._ar(kmax)
            if self.replace:
                take = torch.where(deg > 0, cap, 0)
                off = (rnd * deg.unsqueeze(1)).long()
                off = torch.minimum(off, (deg - 1).unsqueeze(1))
            else:
                # Vectorised Floyd: a uniform take-subset of range(deg) per row,
                # take = min(deg, k). The draws do not depend on earlier picks;
                # only the collision fix-up runs sequentially over the k slots.
                take = deg.clamp(max=cap) if isinstance(cap, int) else deg.minimum(cap)
                top = (deg - take).unsqueeze(1) + slots  # Floyd's j per slot
                off = (rnd * (top + 1)).long()
                torch.minimum(off, top, out=off)
                for i in range(1, kmax):
                    col = off[:, i]
                    if i == 1:
                        dup = off[:, 0] == col
                    else:
                        dup = (off[:, :i] == col.unsqueeze(1)).any(1)
                    off[:, i] = torch.where(dup, top[:, i], col)
            off += start.unsqueeze(1)
            # The valid draws of a row are its first `take` slots.
            pos = off.masked_select(slots < take.unsqueeze(1))
            loc_rows = loc if m == 1 else loc.repeat(m)
            dst_loc = loc_rows.repeat_interleave(take, output_size=pos.numel())
            nbr = indices.index_select(0, pos)
            sizes = [pos.numel()] if m == 1 else take.view(m, num).sum(1).tolist()
            out.append((plan.sampled, sizes, nbr, dst_loc, pos))
        for slot in plan.full:
            rows = glob * num_rel + slot
            start = indptr.index_select(0, rows).long()
            deg = indptr[1:].index_select(0, rows) - start
            total = int(deg.sum())
            dst_loc = torch.repeat_interleave(loc, deg, output_size=total)
            shift = torch.cumsum(deg, 0) - deg - start
            pos = torch.arange(total) - torch.repeat_interleave(
                shift, deg, output_size=total
            )
            out.append(([slot], [total], indices.index_select(0, pos), dst_loc, pos))
        return out


def _import_kernels() -> ModuleType:
    """The numba kernels (imported on first use: numba is slow to import)."""
    from hgt_cluster_kedro.graph import _sampler_kernels

    return _sampler_kernels


class PinSageNeighborSampler(NeighborSampler):
    r"""Walk-importance neighbourhoods (PinSage) instead of uniform fanouts.

    PinSage (Ying et al., *Graph Convolutional Neural Networks for Web-Scale
    Recommender Systems*, KDD 2018, section 3.1) defines the neighbourhood of a
    node ``v`` as the ``T`` nodes most visited by short random walks from ``v``
    and pools them weighted by their L1-normalised visit counts (importance
    pooling). HGT's attention is relation-specific, so here the candidates stay
    the graph neighbours of ``v`` along each relation: for every node of a
    hop's frontier, ``walks`` random walks of ``walk_length`` steps from it over
    the whole message graph (every edge type, both directions, as one
    undirected graph) count the visits of every node; along each relation
    ``(s, r, d)`` the in-neighbours of a ``d``-node with the most visits (ties
    in random order; never-visited ones are not taken) are kept, at most the
    relation's fanout ``T`` of that hop (``-1``: every visited one). A
    neighbour is visited by walks that leave through it and by walks that come
    back to it through the neighbourhood, so well-connected neighbours rank
    first.

    Each kept edge carries ``data[et].importance``: its visit count divided by
    the sum over every kept in-edge of its destination (all relations), the
    L1-normalised importance of PinSage; :class:`~hgt_cluster_kedro.models.hgt.HGTEncoder`
    adds its log to the attention logits when ``importance`` is in the batch
    (softmax of ``score + log w`` = attention proportional to ``w exp(score)``,
    importance pooling inside HGT's attention). ``remove_targets`` drops the
    importance with its edges. Graph edge weights are not carried.

    Output and randomness as :class:`NeighborSampler` (the walks and the tie
    order draw from :attr:`rng`); vectorised NumPy, no compiled backend.

    Args:
        graph: the graph store.
        num_neighbors: top-``T`` per hop (and relation), as fanouts.
        walks: random walks per frontier node.
        walk_length: steps per walk.
        seed: seed of the random stream.
    """

    def __init__(
        self,
        graph: HeteroCSR,
        num_neighbors: list[int] | dict[EdgeType, list[int]],
        *,
        walks: int = 50,
        walk_length: int = 3,
        seed: int = 0,
    ) -> None:
        if walks < 1:
            raise ValueError(f"walks must be >= 1 (got {walks})")
        if walk_length < 1:
            raise ValueError(f"walk_length must be >= 1 (got {walk_length})")
        super().__init__(graph, num_neighbors, seed=seed, backend="torch")
        self.walks, self.walk_length = int(walks), int(walk_length)
        types = graph.node_types
        sizes = np.array([graph.num_nodes[t] for t in types], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._offset = dict(zip(types, starts.tolist(), strict=True))
        self._total = int(sizes.sum())
        a_parts, b_parts = [], []
        for et in graph.edge_types:
            src, dst = (x.numpy() for x in graph.to_coo(et))
            a = src + self._offset[et[0]]
            b = dst + self._offset[et[2]]
            a_parts += [a, b]
            b_parts += [b, a]
        keys = np.unique(
            np.concatenate(a_parts) * self._total + np.concatenate(b_parts)
        )
        self._w_ptr = np.searchsorted(keys // self._total, np.arange(self._total + 1))
        self._w_nbr = keys % self._total
        # in-neighbours of every d-node along (s, r, d): rows d, columns s
        self._in: dict[EdgeType, tuple[np.ndarray, np.ndarray]] = {}
        for et in graph.edge_types:
            if not any(self.num_neighbors[et]):
                continue
            src, dst = (x.numpy() for x in graph.to_coo(et))
            order = np.lexsort((src, dst))
            ptr = np.searchsorted(dst[order], np.arange(graph.num_nodes[et[2]] + 1))
            self._in[et] = (ptr, src[order])
        self._local = {
            t: np.full(n, -1, dtype=np.int64) for t, n in graph.num_nodes.items()
        }

    def walk_counts(
        self, node_type: str, ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Visits of the walks from ``ids`` (of ``node_type``): sorted keys
        ``row * total + node`` (``node`` over all types, offset per type) and
        their counts; the start itself is counted only when a walk returns."""
        n = self._total
        rows = np.repeat(np.arange(ids.size), self.walks)
        cur = np.repeat(ids.astype(np.int64) + self._offset[node_type], self.walks)
        deg = np.diff(self._w_ptr)
        keys = []
        for _ in range(self.walk_length):
            alive = deg[cur] > 0
            rows, cur = rows[alive], cur[alive]
            off = (self.rng.random(cur.size) * deg[cur]).astype(np.int64)
            cur = self._w_nbr[self._w_ptr[cur] + off]
            keys.append(rows * n + cur)
        return np.unique(np.concatenate(keys), return_counts=True)

    def _top(
        self,
        et: EdgeType,
        hop: int,
        ids: np.ndarray,
        keys: np.ndarray,
        counts: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(row, neighbour, visits)`` of the kept in-neighbours along ``et``."""
        ptr, nbr_all = self._in[et]
        lo, deg = ptr[ids], ptr[ids + 1] - ptr[ids]
        row = np.repeat(np.arange(ids.size), deg)
        first = np.repeat(np.cumsum(deg) - deg, deg)
        nbr = nbr_all[np.repeat(lo, deg) + np.arange(row.size) - first]
        hk = row * self._total + nbr + self._offset[et[0]]
        at = np.searchsorted(keys, hk).clip(max=max(keys.size - 1, 0))
        visits = np.where(keys[at] == hk, counts[at], 0) if keys.size else hk * 0
        seen = visits > 0
        row, nbr, visits = row[seen], nbr[seen], visits[seen]
        k = self.num_neighbors[et][hop]
        if k > 0 and row.size:
            order = np.lexsort((self.rng.random(row.size), -visits, row))
            row, nbr, visits = row[order], nbr[order], visits[order]
            starts = np.searchsorted(row, row)  # first position of each row
            keep = np.arange(row.size) - starts < k
            row, nbr, visits = row[keep], nbr[keep], visits[keep]
        return row, nbr, visits

    def _sample(self, seeds: dict[str, Tensor]) -> HeteroData:
        graph, local = self.graph, self._local
        n_id: dict[str, list[np.ndarray]] = {t: [] for t in graph.num_nodes}
        count = dict.fromkeys(graph.num_nodes, 0)
        hop_nodes = {t: [0] * (self.num_hops + 1) for t in graph.num_nodes}
        parts: dict[EdgeType, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
            et: [] for et in graph.edge_types
        }
        hop_edges = {et: [0] * self.num_hops for et in graph.edge_types}
        frontier: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        try:
            for t, ids in seeds.items():
                arr = ids.numpy().astype(np.int64)
                n_id[t].append(arr)
                if np.unique(arr).size != arr.size:
                    raise ValueError(f"seeds['{t}'] contains duplicate ids")
                local[t][arr] = np.arange(arr.size)
                count[t] = hop_nodes[t][0] = arr.size
                frontier[t] = (arr, np.arange(arr.size))
            for hop in range(self.num_hops):
                kept: list[tuple[EdgeType, np.ndarray, np.ndarray, np.ndarray]] = []
                for d_type, (glob, loc) in frontier.items():
                    ets = [et for et in self._in if et[2] == d_type]
                    ets = [et for et in ets if self.num_neighbors[et][hop]]
                    if not ets or not glob.size:
                        continue
                    keys, counts = self.walk_counts(d_type, glob)
                    found = [
                        (et, *self._top(et, hop, glob, keys, counts)) for et in ets
                    ]
                    rows = np.concatenate([f[1] for f in found])
                    total = np.bincount(
                        rows,
                        weights=np.concatenate([f[3] for f in found]),
                        minlength=glob.size,
                    )
                    for et, row, nbr, visits in found:
                        kept.append((et, loc[row], nbr, visits / total[row]))
                next_frontier: dict[str, tuple[np.ndarray, np.ndarray]] = {}
                for s_type in {et[0] for et, *_ in kept}:
                    cand = np.concatenate([k[2] for k in kept if k[0][0] == s_type])
                    unseen = cand[local[s_type][cand] < 0]
                    new, first = np.unique(unseen, return_index=True)
                    new = new[np.argsort(first)]  # in order of discovery
                    if new.size:
                        ids = np.arange(count[s_type], count[s_type] + new.size)
                        local[s_type][new] = ids
                        n_id[s_type].append(new)
                        count[s_type] += new.size
                        hop_nodes[s_type][hop + 1] = new.size
                        next_frontier[s_type] = (new, ids)
                for et, dst_loc, nbr, imp in kept:
                    parts[et].append((local[et[0]][nbr], dst_loc, imp))
                    hop_edges[et][hop] += nbr.size
                frontier = next_frontier
        finally:
            for t, arrs in n_id.items():
                for arr in arrs:
                    local[t][arr] = -1
        node_ids = {
            t: torch.from_numpy(np.concatenate(a)) if a else torch.empty(0).long()
            for t, a in n_id.items()
        }
        edge_index, importance = {}, {}
        for et, ps in parts.items():
            if ps:
                ei = np.stack(
                    [
                        np.concatenate([p[0] for p in ps]),
                        np.concatenate([p[1] for p in ps]),
                    ]
                )
                w = np.concatenate([p[2] for p in ps]).astype(np.float32)
            else:
                ei, w = np.empty((2, 0), dtype=np.int64), np.empty(0, np.float32)
            edge_index[et] = torch.from_numpy(ei)
            importance[et] = torch.from_numpy(w)
        data = _hetero_data(
            seeds,
            n_id=node_ids,
            count=count,
            hop_nodes=hop_nodes,
            edge_index=edge_index,
            hop_edges=hop_edges,
            weights=None,
        )
        for et, w in importance.items():
            data[et].importance = w
        return data


def _hetero_data(
    seeds: dict[str, Tensor],
    *,
    n_id: dict[str, Tensor],
    count: dict[str, int],
    hop_nodes: dict[str, list[int]],
    edge_index: dict[EdgeType, Tensor],
    hop_edges: dict[EdgeType, list[int]],
    weights: dict[EdgeType, Tensor] | None,
) -> HeteroData:
    """The output mini-batch. The attributes go straight into the fresh stores'
    mappings, which is what setting them one by one does (``setattr`` on a
    storage also clears its attribute caches, empty here) at a third of the
    cost."""
    data = HeteroData()
    for t, ids in n_id.items():
        attrs = {"n_id": ids, "num_nodes": count[t], "num_sampled_nodes": hop_nodes[t]}
        if t in seeds:
            attrs["batch_size"] = seeds[t].numel()
        data.get_node_store(t)._mapping.update(attrs)
    for et, ei in edge_index.items():
        attrs = {"edge_index": ei, "num_sampled_edges": hop_edges[et]}
        if weights is not None:
            attrs["edge_weight"] = weights[et]
        data.get_edge_store(*et)._mapping.update(attrs)
    return data


def _drop_pairs(
    data: HeteroData, s_type: str, d_type: str, keys: Tensor, n_d: int
) -> None:
    """Remove from ``data`` every edge joining an ``s_type`` node ``a`` and a
    ``d_type`` node ``b`` whose key ``a * n_d + b`` is in ``keys``."""
    keys = torch.unique(keys)
    for et in data.edge_types:
        if (et[0], et[2]) == (s_type, d_type):
            a_pos, b_pos = 0, 1
        elif (et[0], et[2]) == (d_type, s_type):
            a_pos, b_pos = 1, 0
        else:
            continue
        store = data[et]
        ei = store.edge_index
        if ei.numel() == 0:
            continue
        a = data[s_type].n_id[ei[a_pos]]
        b = data[d_type].n_id[ei[b_pos]]
        keep = ~torch.isin(a * n_d + b, keys)
        if s_type == d_type:  # a same-type relation joins the pair either way
            keep &= ~torch.isin(b * n_d + a, keys)
        if bool(keep.all()):
            continue
        store.edge_index = ei[:, keep]
        for attr in ("edge_weight", "importance"):  # per-edge attributes
            if attr in store:
                store[attr] = store[attr][keep]


def _fuse_node_major(
    parts: list[tuple[Tensor, Tensor, Tensor | None]], num_dst: int
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Interleave ``m`` CSRs over the same rows into one with rows ``v * m + j``."""
    if len(parts) == 1:
        return parts[0]
    m = len(parts)
    deg = torch.stack([p[0].diff() for p in parts], dim=1).view(-1)  # [num_dst*m]
    indptr = torch.zeros(num_dst * m + 1, dtype=torch.long)
    torch.cumsum(deg, 0, out=indptr[1:])
    total = int(indptr[-1])
    indices = torch.empty(total, dtype=torch.int32)
    weighted = parts[0][2] is not None
    weight = torch.empty(total, dtype=torch.float32) if weighted else None
    for j, (ip, ix, w) in enumerate(parts):
        rows = torch.repeat_interleave(
            torch.arange(num_dst), ip.diff(), output_size=ix.numel()
        )
        dest = indptr[rows * m + j] + (torch.arange(ix.numel()) - ip[rows])
        indices[dest] = ix
        if weight is not None:
            weight[dest] = w
    return indptr, indices, weight


def _check_ids(ids: Any, n: int, what: str) -> Tensor:
    ids = torch.as_tensor(ids)
    if ids.dim() != 1 or ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(
            f"{what} must be a 1-D integer tensor "
            f"(got shape {tuple(ids.shape)}, dtype {ids.dtype})"
        )
    ids = ids.long()
    if ids.numel():
        lo, hi = torch.aminmax(ids)
        if int(lo) < 0 or int(hi) >= n:
            bad = (ids < 0) | (ids >= n)
            raise ValueError(
                f"{what} has ids out of range [0, {n}), e.g. {ids[bad][:5].tolist()}"
            )
    return ids


def _parse_fanouts(
    graph: HeteroCSR, num_neighbors: list[int] | dict[EdgeType, list[int]]
) -> tuple[int, dict[EdgeType, list[int]]]:
    if isinstance(num_neighbors, dict):
        if not num_neighbors:
            raise ValueError("num_neighbors must not be an empty dict")
        unknown = [et for et in num_neighbors if tuple(et) not in graph.indptr]
        if unknown:
            raise ValueError(
                f"num_neighbors has unknown edge types {unknown} "
                f"(known: {graph.edge_types})"
            )
        lists = {tuple(et): list(v) for et, v in num_neighbors.items()}
        lengths = {len(v) for v in lists.values()}
        if len(lengths) != 1:
            raise ValueError(
                f"num_neighbors lists must all have the same length (got {lengths})"
            )
        hops = lengths.pop()
        fanouts = {et: lists.get(et, [0] * hops) for et in graph.edge_types}
    elif isinstance(num_neighbors, (list, tuple)):
        hops = len(num_neighbors)
        fanouts = {et: list(num_neighbors) for et in graph.edge_types}
    else:
        raise ValueError(
            "num_neighbors must be a list or a dict of lists "
            f"(got {type(num_neighbors).__name__})"
        )
    if hops == 0:
        raise ValueError("num_neighbors must define at least one hop")
    for et, values in fanouts.items():
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or v < -1:
                raise ValueError(
                    f"num_neighbors[{et}] must hold ints >= -1 (got {values})"
                )
    return hops, fanouts  # type: ignore[return-value]
