"""Heterogeneous Graph Transformer encoder for user / item embeddings.

HGT: Z. Hu, Y. Dong, K. Wang, Y. Sun, *Heterogeneous Graph Transformer*, WWW
2020 (arXiv 2003.01332). The message passing itself is PyG's
:class:`torch_geometric.nn.HGTConv` (type-specific K/Q/V projections,
relation-specific attention and message matrices ``W_ATT`` / ``W_MSG`` and the
relation prior ``mu``); this module adds the input layer, dropout, the per-type
LayerNorm of the reference implementation (pyHGT, ``use_norm=True``) and the
L2-normalised output.

Layer ``l`` (``x`` = the layer input of node type ``t``, ``agg`` = the multi-head
attention aggregate of its incoming messages over every edge type)::

    out = Dropout(A_t(GELU(agg)))                        # A_t: HGTConv.out_lin
    h   = sigmoid(alpha_t) * out + (1 - sigmoid(alpha_t)) * x   # gated skip
    x'  = LayerNorm_t(h)

The linear ``A_t`` and the gated skip (``alpha_t`` = ``HGTConv.skip[t]``,
initialised to 1 as in pyHGT) are computed inside PyG's ``HGTConv``; the dropout
is inserted between ``A_t`` and the skip by wrapping ``HGTConv.out_lin``
(:class:`_LinearDropout`), so the formula above is exactly pyHGT's
``HGTConv.update`` with ``use_norm=True``. A node without in-edges in the batch
has ``agg = 0``. PyG returns ``None`` for a node type that is the destination of
no edge type of the metadata; such types get the same formula with ``agg = 0``
(``out = Dropout(A_t(0))``), so every node type is treated alike.

Input layer: ``x0_t = W_t f_t + E_t[n_id]`` where ``f_t`` are the node features
(types with features) and ``E_t`` a learnable id embedding (types without
features always; other types when listed in ``id_embedding_types``), followed by
dropout. The output of the last layer is L2-normalised, so dot products are
cosine similarities.

Optionally the encoder carries the joint SOM of the original HGT + SOM method
(:class:`~hgt_cluster_kedro.models.embedding_som.EmbeddingSOM`, attribute
``som``): centres in the output space, saved and restored with the encoder's
``state_dict`` so checkpoints, DDP and the model file need nothing extra; and
likewise the learnable prototypes of the SwAV-style ``prototype`` objective
(:class:`~hgt_cluster_kedro.models.prototypes.Prototypes`, attribute
``prototypes``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroLinear, HGTConv
from torch_geometric.utils import softmax

from .embedding_som import EmbeddingSOM
from .hgt_attention import FullGraph, attention
from .prototypes import Prototypes

logger = logging.getLogger(__name__)

EdgeType = tuple[str, str, str]
Metadata = tuple[Sequence[str], Sequence[EdgeType]]

__all__ = ["HGTEncoder"]


class _LinearDropout(nn.Module):
    """``HGTConv.out_lin`` (a ``HeteroDictLinear``) followed by dropout.

    Args:
        lin: the wrapped per-type linear layer (``dict -> dict``).
        p: dropout probability.
    """

    def __init__(self, lin: nn.Module, p: float) -> None:
        super().__init__()
        self.lin = lin
        self.p = float(p)

    def reset_parameters(self) -> None:
        """Re-initialise the wrapped linear layer."""
        self.lin.reset_parameters()

    def forward(self, x_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        out = self.lin(x_dict)
        if self.p > 0 and self.training:
            out = {k: F.dropout(v, self.p, True) for k, v in out.items()}
        return out


class _ConcatHeteroLinear(HeteroLinear):
    """``HeteroLinear`` whose pure-PyTorch path concatenates per-type products.

    Without ``pyg-lib`` (not installable here) PyG's ``HeteroLinear.forward_naive``
    writes each type's rows into a preallocated output (``out[s:e] = x[s:e] @
    W[i]``). Autograd's ``CopySlices`` then materialises a full-size gradient per
    type, so the backward pass costs O(types x rows): with 6 relations x 2 heads
    it took ~80 % of an HGT training step on CPU. Concatenating the per-type
    products of ``x.split`` segments computes the same values with an O(rows)
    backward: 1.26x the seeds/s at 8k users, about 3x on the 20k-user default
    graph (the saving grows with the batch; ``benchmarks/bench_hgt.py``).
    ``HGTConv`` sorts rows by type (``is_sorted=True``), so ``type_ptr`` is a
    plain segment pointer.
    """

    def forward_naive(self, x: Tensor, type_ptr: Tensor) -> Tensor:
        sizes = type_ptr.diff().tolist()
        parts = [rows @ self.weight[i] for i, rows in enumerate(x.split(sizes, dim=0))]
        return torch.cat(parts, dim=0) if parts else x.new_empty(0, self.out_channels)


class _BiasedHGTConv(HGTConv):
    """PyG's ``HGTConv`` with an optional per-edge additive attention bias.

    ``forward(x_dict, edge_index_dict, bias_dict)``: ``bias_dict[et]`` (``[E]``)
    is added to the attention logits of the edges of ``et`` before the softmax
    (over all in-edges of a node), so the attention becomes proportional to
    ``exp(bias) * exp(score)``. With ``bias = log(importance)`` this is
    PinSage's importance pooling (Ying et al., KDD 2018) inside HGT's attention.
    Only :meth:`message` is overridden; without a bias it is PyG's. The bias is
    concatenated in ``edge_index_dict`` order, the order in which ``HGTConv``
    concatenates the edge types (``_construct_src_node_feat`` /
    ``construct_bipartite_edge_index``).
    """

    _bias: Tensor | None = None

    def forward(  # type: ignore[override]
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict[EdgeType, Tensor],
        bias_dict: Mapping[EdgeType, Tensor] | None = None,
    ) -> dict[str, Tensor | None]:
        if bias_dict is None:
            return super().forward(x_dict, edge_index_dict)
        self._bias = torch.cat([bias_dict[et] for et in edge_index_dict])
        try:
            return super().forward(x_dict, edge_index_dict)
        finally:
            self._bias = None

    def message(  # type: ignore[override]  # noqa: PLR0917 (PyG inspects the names)
        self,
        k_j: Tensor,
        q_i: Tensor,
        v_j: Tensor,
        edge_attr: Tensor,
        index: Tensor,
        ptr: Tensor | None,
        size_i: int | None,
    ) -> Tensor:
        if self._bias is None:
            return super().message(k_j, q_i, v_j, edge_attr, index, ptr, size_i)
        if self._bias.numel() != k_j.size(0):
            raise ValueError(
                f"attention bias has {self._bias.numel()} entries for "
                f"{k_j.size(0)} edges"
            )
        alpha = (q_i * k_j).sum(dim=-1) * edge_attr / math.sqrt(q_i.size(-1))
        alpha = softmax(alpha + self._bias.unsqueeze(-1), index, ptr, size_i)
        return (v_j * alpha.unsqueeze(-1)).view(-1, self.out_channels)


class _HGTLayer(nn.Module):
    """One HGT layer: ``HGTConv`` (with dropout before its gated skip) + LayerNorm.

    Args:
        hidden: input and output size.
        metadata: ``(node_types, edge_types)``.
        heads: attention heads.
        dropout: dropout on the transformed aggregate (before the gated skip).
    """

    def __init__(
        self, hidden: int, metadata: Metadata, heads: int, dropout: float
    ) -> None:
        super().__init__()
        node_types, edge_types = metadata
        self.conv = _BiasedHGTConv(
            hidden, hidden, (list(node_types), list(edge_types)), heads=heads
        )
        self.conv.out_lin = _LinearDropout(self.conv.out_lin, dropout)
        num_types = heads * len(edge_types)
        dim = hidden // heads
        for name in ("k_rel", "v_rel"):  # same parameters, faster backward
            setattr(
                self.conv,
                name,
                _ConcatHeteroLinear(dim, dim, num_types, bias=False, is_sorted=True),
            )
        self.norms = nn.ModuleDict({t: nn.LayerNorm(hidden) for t in node_types})

    def reset_parameters(self) -> None:
        """Re-initialise the convolution (skip gates to 1) and the LayerNorms."""
        self.conv.reset_parameters()
        for norm in self.norms.values():
            norm.reset_parameters()

    def forward(
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict[EdgeType, Tensor],
        bias_dict: Mapping[EdgeType, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        out = self.conv(x_dict, edge_index_dict, bias_dict)
        result = {}
        for t, x in x_dict.items():
            h = out.get(t)
            if h is None:  # no edge type ends at t: aggregate = 0 for every node
                a = self.conv.out_lin({t: x.new_zeros(x.shape)})[t]
                alpha = self.conv.skip[t].sigmoid()
                h = alpha * a + (1 - alpha) * x
            result[t] = self.norms[t](h)
        return result

    def forward_full(
        self,
        x_dict: dict[str, Tensor],
        graph: FullGraph,
        keep: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """The same layer over a whole graph by the fused attention
        (:func:`~hgt_cluster_kedro.models.hgt_attention.attention`); same
        parameters, outputs equal to :meth:`forward` on the same edges."""
        conv = self.conv
        heads = conv.heads
        dim = conv.out_channels // heads
        kqv = conv.kqv_lin(x_dict)
        k_dict, q_dict, v_dict = {}, {}, {}
        for t, val in kqv.items():
            k, q, v = torch.tensor_split(val, 3, dim=1)
            k_dict[t], q_dict[t] = k.view(-1, heads, dim), q.view(-1, heads, dim)
            v_dict[t] = v.view(-1, heads, dim)
        num_et = len(conv.edge_types)
        w_k = conv.k_rel.weight  # [heads * num_et, dim, dim], type h * num_et + r
        w_v = conv.v_rel.weight
        agg: dict[str, Tensor] = {}
        for t, g in graph.dst.items():
            ks, vs, priors = [], [], []
            for r, s in zip(g.relations, g.src_types, strict=True):
                idx = torch.arange(heads, device=w_k.device) * num_et + r
                ks.append(torch.einsum("nhd,hde->nhe", k_dict[s], w_k[idx]))
                vs.append(torch.einsum("nhd,hde->nhe", v_dict[s], w_v[idx]))
                priors.append(conv.p_rel["__".join(graph.edge_types[r])].view(-1))
            out = attention(
                q_dict[t],
                torch.cat(ks),
                torch.cat(vs),
                torch.stack(priors),
                g,
                keep=None if keep is None else keep.get(t),
            )
            agg[t] = F.gelu(out.reshape(-1, heads * dim))
        result = {}
        for t, x in x_dict.items():
            a = conv.out_lin({t: agg.get(t, x.new_zeros(x.shape))})[t]
            alpha = conv.skip[t].sigmoid()
            result[t] = self.norms[t](alpha * a + (1 - alpha) * x)
        return result


class HGTEncoder(nn.Module):
    """HGT encoder (Hu et al., WWW 2020, arXiv 2003.01332) over sampled subgraphs.

    See the module docstring for the exact layer. ``forward`` takes a PyG
    ``HeteroData`` mini-batch as produced by
    :class:`~hgt_cluster_kedro.graph.sampler.NeighborSampler` (``n_id`` per node
    type, local ``edge_index`` per edge type) and returns L2-normalised
    ``[num_nodes_in_batch, hidden]`` embeddings for every node type of the batch
    (rows aligned with ``batch[t].n_id``; only the seeds, which come first, see
    their full neighbourhood).

    Args:
        metadata: ``(node_types, edge_types)`` of the graph, ``rev_*`` twins
            included (e.g. ``(csr.node_types, csr.edge_types)``).
        num_nodes: number of nodes per node type (sizes of the id embeddings).
        feature_dims: feature size per node type that has features; the other
            types get id embeddings.
        hidden: embedding size (also the output size); a multiple of ``heads``.
        heads: attention heads.
        num_layers: number of HGT layers (>= 1); match the sampler's hops.
        dropout: dropout probability in ``[0, 1)`` (input and every layer).
        id_embedding_types: node types that get an id embedding in addition to
            their features: ``None`` (only types without features), ``"all"``, or
            a list of node types. Types without features always get one.
        features: optional ``{type: [num_nodes, dim]}`` feature matrices, stored
            as non-persistent buffers (see :meth:`attach_features`).
        som: optional keyword arguments of
            :class:`~hgt_cluster_kedro.models.embedding_som.EmbeddingSOM`
            (without ``dim``): the encoder then carries a joint SOM in ``som``.
        prototypes: optional keyword arguments of
            :class:`~hgt_cluster_kedro.models.prototypes.Prototypes` (without
            ``dim``): the encoder then carries them in ``prototypes``.

    Raises:
        ValueError: ``hidden % heads != 0``, ``num_layers < 1``, a type of
            ``feature_dims`` / ``id_embedding_types`` / an edge type that is not a
            node type, a missing ``num_nodes`` entry, a bad dropout.
    """

    def __init__(
        self,
        metadata: Metadata,
        num_nodes: Mapping[str, int],
        feature_dims: Mapping[str, int],
        *,
        hidden: int = 64,
        heads: int = 2,
        num_layers: int = 2,
        dropout: float = 0.5,
        id_embedding_types: str | Iterable[str] | None = None,
        features: Mapping[str, Tensor] | None = None,
        som: Mapping[str, Any] | None = None,
        prototypes: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        node_types = [str(t) for t in metadata[0]]
        edge_types = [tuple(str(p) for p in et) for et in metadata[1]]
        if not node_types:
            raise ValueError("metadata has no node types")
        if len(set(node_types)) != len(node_types):
            raise ValueError(f"metadata has duplicate node types: {node_types}")
        for et in edge_types:
            if len(et) != 3 or et[0] not in node_types or et[2] not in node_types:
                raise ValueError(
                    f"edge type {et!r} must be (src, rel, dst) with src and dst in "
                    f"the node types {node_types}"
                )
        if int(hidden) <= 0 or int(heads) <= 0:
            raise ValueError(f"hidden and heads must be > 0 (got {hidden}, {heads})")
        if int(hidden) % int(heads) != 0:
            raise ValueError(
                f"hidden={hidden} must be divisible by heads={heads} "
                f"(hidden % heads = {int(hidden) % int(heads)})"
            )
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be >= 1 (got {num_layers})")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
        missing = [t for t in node_types if t not in num_nodes]
        if missing:
            raise ValueError(f"num_nodes has no entry for node types {missing}")
        for t in num_nodes:
            if t not in node_types:
                raise ValueError(
                    f"num_nodes has unknown node type {t!r} (known: {node_types})"
                )
        for t, d in feature_dims.items():
            if t not in node_types:
                raise ValueError(
                    f"feature_dims has unknown node type {t!r} (known: {node_types})"
                )
            if int(d) <= 0:
                raise ValueError(f"feature_dims[{t!r}] must be > 0 (got {d})")
        if id_embedding_types is None:
            id_types = [t for t in node_types if t not in feature_dims]
        elif isinstance(id_embedding_types, str):
            if id_embedding_types != "all":
                raise ValueError(
                    "id_embedding_types must be None, 'all' or a list of node types "
                    f"(got {id_embedding_types!r})"
                )
            id_types = list(node_types)
        else:
            listed = [str(t) for t in id_embedding_types]
            unknown = [t for t in listed if t not in node_types]
            if unknown:
                raise ValueError(
                    f"id_embedding_types has unknown node types {unknown} "
                    f"(known: {node_types})"
                )
            id_types = [t for t in node_types if t in listed or t not in feature_dims]

        self.node_types = node_types
        self.edge_types: list[EdgeType] = edge_types  # type: ignore[assignment]
        self.num_nodes = {t: int(num_nodes[t]) for t in node_types}
        self.feature_dims = {t: int(d) for t, d in feature_dims.items()}
        self.hidden = int(hidden)
        self.heads = int(heads)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.id_embedding_types = id_types

        self.feature_proj = nn.ModuleDict(
            {t: nn.Linear(d, self.hidden) for t, d in self.feature_dims.items()}
        )
        self.id_embeddings = nn.ModuleDict(
            {t: nn.Embedding(self.num_nodes[t], self.hidden) for t in id_types}
        )
        meta = (node_types, edge_types)
        self.layers = nn.ModuleList(
            _HGTLayer(self.hidden, meta, self.heads, self.dropout)  # type: ignore[arg-type]
            for _ in range(self.num_layers)
        )
        self.som = None if som is None else EmbeddingSOM(dim=self.hidden, **dict(som))
        self.prototypes = (
            None
            if prototypes is None
            else Prototypes(dim=self.hidden, **dict(prototypes))
        )
        self._feature_types: list[str] = []
        self.reset_parameters()
        if features is not None:
            self.attach_features(features)

    # ------------------------------------------------------------ structure
    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (see :meth:`from_config`)."""
        return {
            "node_types": list(self.node_types),
            "edge_types": [list(et) for et in self.edge_types],
            "num_nodes": dict(self.num_nodes),
            "feature_dims": dict(self.feature_dims),
            "hidden": self.hidden,
            "heads": self.heads,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "id_embedding_types": list(self.id_embedding_types),
            "som": None
            if self.som is None
            else {k: v for k, v in self.som.config.items() if k != "dim"},
            # only when present: configs (and run fingerprints) without stay as
            # they were
            **(
                {}
                if self.prototypes is None
                else {"prototypes": {"num_prototypes": self.prototypes.num_prototypes}}
            ),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HGTEncoder:
        """Rebuild an (untrained) encoder from :attr:`config`."""
        return cls(
            (config["node_types"], [tuple(et) for et in config["edge_types"]]),
            config["num_nodes"],
            config["feature_dims"],
            hidden=config["hidden"],
            heads=config["heads"],
            num_layers=config["num_layers"],
            dropout=config["dropout"],
            id_embedding_types=config["id_embedding_types"],
            som=config.get("som"),
            prototypes=config.get("prototypes"),
        )

    def reset_parameters(self) -> None:
        """Re-initialise every parameter (uses the global torch RNG: seed it)."""
        for lin in self.feature_proj.values():
            lin.reset_parameters()
        for emb in self.id_embeddings.values():
            nn.init.normal_(emb.weight, std=1.0 / self.hidden**0.5)
        for layer in self.layers:
            layer.reset_parameters()

    def attach_features(self, features: Mapping[str, Tensor]) -> None:
        """Store full feature matrices as non-persistent buffers (not saved in the
        ``state_dict``), used when a batch carries no ``x``.

        Args:
            features: ``{type: [num_nodes[type], feature_dims[type]]}``.
        """
        for t, x in features.items():
            if t not in self.feature_dims:
                raise ValueError(
                    f"features has node type {t!r} without feature_dims entry "
                    f"(types with features: {sorted(self.feature_dims)})"
                )
            shape = (self.num_nodes[t], self.feature_dims[t])
            if tuple(x.shape) != shape:
                raise ValueError(
                    f"features[{t!r}] has shape {tuple(x.shape)}, expected {shape}"
                )
            self.register_buffer(f"_features_{t}", x.float(), persistent=False)
            if t not in self._feature_types:
                self._feature_types.append(t)

    # --------------------------------------------------------------- forward
    def input_embeddings(
        self, batch: HeteroData, x_dict: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Layer-0 representations of every node of the batch (before dropout).

        Features come from ``x_dict[t]``, else ``batch[t].x``, else the attached
        feature buffer indexed by ``batch[t].n_id``.
        """
        device = next(self.parameters()).device
        out = {}
        for t in self.node_types:
            if t in batch.node_types and "n_id" in batch[t]:
                n_id = batch[t].n_id.to(device)
            else:
                n_id = torch.empty(0, dtype=torch.long, device=device)
            h = None
            if t in self.feature_dims:
                if x_dict is not None and t in x_dict:
                    x = x_dict[t]
                elif t in batch.node_types and "x" in batch[t]:
                    x = batch[t].x
                elif t in self._feature_types:
                    x = getattr(self, f"_features_{t}").index_select(0, n_id)
                else:
                    raise ValueError(
                        f"node type {t!r} has features but the batch has no "
                        f"batch[{t!r}].x and none were attached (attach_features)"
                    )
                if x.shape[0] != n_id.numel():
                    raise ValueError(
                        f"features of node type {t!r} have {x.shape[0]} rows for "
                        f"{n_id.numel()} nodes"
                    )
                h = self.feature_proj[t](x.to(device=device, dtype=torch.float32))
            if t in self.id_embeddings:
                e = self.id_embeddings[t](n_id)
                h = e if h is None else h + e
            out[t] = h
        return out

    def forward(
        self, batch: HeteroData, x_dict: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Embeddings ``{type: [n, hidden]}`` (L2-normalised) of the batch's nodes.

        Args:
            batch: subgraph with ``batch[t].n_id`` (global ids) per node type and
                ``batch[et].edge_index`` (local ids) per edge type; edge types of
                the batch unknown to the encoder raise ``ValueError``.
            x_dict: optional features per type (rows aligned with ``n_id``).
        """
        h = self.input_embeddings(batch, x_dict)
        if self.dropout > 0 and self.training:
            h = {t: F.dropout(x, self.dropout, True) for t, x in h.items()}
        known = set(self.edge_types)
        edge_index_dict = {}
        for et in batch.edge_types:
            if et not in known:
                raise ValueError(
                    f"batch has edge type {et!r} unknown to the encoder "
                    f"(known: {self.edge_types})"
                )
            edge_index_dict[et] = batch[et].edge_index.to(h[et[0]].device)
        bias_dict = None
        if all("importance" in batch[et] for et in edge_index_dict) and edge_index_dict:
            # walk-importance neighbourhoods (PinSageNeighborSampler): importance
            # pooling = log(importance) added to the attention logits
            bias_dict = {
                et: batch[et].importance.to(h[et[0]].device).clamp_min(1e-12).log()
                for et in edge_index_dict
            }
        for layer in self.layers:
            h = layer(h, edge_index_dict, bias_dict)
        return {t: F.normalize(x, dim=-1) for t, x in h.items()}

    def forward_full(
        self,
        graph: FullGraph,
        keep: Mapping[str, Tensor] | None = None,
        x_dict: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Embeddings ``{type: [num_nodes, hidden]}`` (L2-normalised) of every
        node, by one pass over the whole graph (full-graph mode).

        Args:
            graph: :class:`~hgt_cluster_kedro.models.hgt_attention.FullGraph` of
                the graph (built once, e.g. ``FullGraph.from_csr(csr,
                model.edge_types)``).
            keep: optional ``uint8`` edge flags per destination type (0 = edge
                absent in this pass, e.g. the targets a training step scores).
            x_dict: features per type (all nodes), else the attached buffers.
        """
        if [tuple(et) for et in graph.edge_types] != list(self.edge_types):
            raise ValueError(
                f"graph was built for edge types {graph.edge_types}, the encoder "
                f"has {self.edge_types}"
            )
        device = next(self.parameters()).device
        batch = HeteroData()
        for t in self.node_types:
            batch[t].n_id = torch.arange(graph.num_nodes[t], device=device)
        h = self.input_embeddings(batch, x_dict)
        if self.dropout > 0 and self.training:
            h = {t: F.dropout(x, self.dropout, True) for t, x in h.items()}
        for layer in self.layers:
            h = layer.forward_full(h, graph, keep)
        return {t: F.normalize(x, dim=-1) for t, x in h.items()}
