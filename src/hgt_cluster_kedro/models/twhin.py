"""TwHIN: translation-based embeddings of a heterogeneous information network.

Re-implementation of the model of *TwHIN: Embedding the Twitter Heterogeneous
Information Network for Personalized Recommendation* (El-Kishky et al., KDD 2022,
arXiv 2202.05387). Every node type has an embedding table of dimension ``d`` and
every relation ``r`` a translation vector ``t_r``; the score of a triplet is

    score(u, r, v) = <u + t_r, v>

and training is binary classification of observed triplets against negatives.

Negatives (all scored through the *same* translation ``t_r`` as the positives):

* **in-batch**: a batch holds triplets of one relation only and is cut into
  chunks of ``chunk_size`` positives; within a chunk every head is scored against
  every tail (one ``[C x d] @ [d x C]`` matmul per chunk, as in PyTorch-BigGraph).
  Entry ``(i, j)``, ``i != j``, is at once the tail-corrupted negative of positive
  ``i`` and the head-corrupted negative of positive ``j`` (for a dot product the
  two are the same pair), so a positive has ``chunk_size - 1`` in-batch negatives.
  Pairs that are themselves positives of the batch (same head or same tail as the
  diagonal entry, "accidental hits") get weight 0.
* **uniform** (optional): each chunk shares ``num_uniform_neg`` tails drawn
  uniformly from the tail type and as many heads drawn from the head type, so a
  positive has ``2 * num_uniform_neg`` uniform negatives.

Loss: binary cross-entropy with logits, positives labelled 1 and negatives 0,
by default balanced as in PyTorch-BigGraph's logistic loss (mean over positives
plus mean over negatives, see :func:`twhin_loss`); translations are trained.
The released TwHIN code (``the-algorithm-ml``, ``projects/twhin``) labels its
negatives 1 and detaches the translations when scoring them; both are
deliberately not repeated here.

The tables are plain parameters: :func:`~hgt_cluster_kedro.training.train_twhin`
gathers the rows a batch touches, differentiates with respect to the gathered
rows only and applies a row-wise Adagrad update with ``index_add_`` (the update of
PyTorch-BigGraph), so a step costs ``O(batch)``, not ``O(table)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..embeddings import to_frame

EdgeType = tuple[str, str, str]

__all__ = [
    "BatchLayout",
    "RowGrads",
    "TwHIN",
    "batch_layout",
    "embeddings",
    "embeddings_frame",
    "twhin_loss",
]


def twhin_loss(
    pos: Tensor,
    neg: Tensor | Sequence[Tensor],
    *,
    pos_weight: Tensor | None = None,
    neg_weight: Tensor | Sequence[Tensor | None] | None = None,
    balanced: bool = True,
) -> Tensor:
    """Binary cross-entropy with logits of TwHIN (El-Kishky et al., KDD 2022).

    Positives are labelled **1** and negatives **0** (``BCE(s, 1) = softplus(-s)``,
    ``BCE(s, 0) = softplus(s)``). (The released TwHIN code labels its negatives
    1, which rewards scoring negatives high; this function does not.)

    Args:
        pos: logits of positive triplets, any shape.
        neg: logits of negative triplets, a tensor or a sequence of tensors of any
            shapes (e.g. the in-batch and the uniform negatives).
        pos_weight: optional weights broadcastable to ``pos`` (0 masks a logit).
        neg_weight: optional weights, one per tensor of ``neg`` (``None`` entries
            mean weight 1), each broadcastable to its tensor.
        balanced: ``True``: weighted mean BCE of the positives plus weighted mean
            BCE of the negatives (the logistic loss of PyTorch-BigGraph, which
            weights the negatives of a positive by ``1 / num_negatives``), so
            adding negatives does not drown the positives. ``False``: one weighted
            mean over every positive and negative logit
            (``sum(w * bce) / sum(w)``).

    Returns:
        Scalar loss.
    """
    negs = [neg] if isinstance(neg, Tensor) else list(neg)
    if neg_weight is None or isinstance(neg_weight, Tensor):
        neg_weights = [neg_weight] * len(negs)
    else:
        neg_weights = list(neg_weight)
    if len(neg_weights) != len(negs):
        raise ValueError(
            f"neg_weight has {len(neg_weights)} entries but neg has {len(negs)}"
        )
    pos_total, pos_count = _weighted_sum(F.softplus(-pos), pos_weight)
    neg_total = neg_count = None
    for n, w in zip(negs, neg_weights, strict=True):
        total, count = _weighted_sum(F.softplus(n), w)
        neg_total = total if neg_total is None else neg_total + total
        neg_count = count if neg_count is None else neg_count + count
    if neg_total is None:
        return pos_total / pos_count.clamp_min(1.0)
    if balanced:
        return pos_total / pos_count.clamp_min(1.0) + neg_total / neg_count.clamp_min(
            1.0
        )
    return (pos_total + neg_total) / (pos_count + neg_count).clamp_min(1.0)


def _weighted_sum(terms: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(sum(w * terms), sum(w))`` with ``w`` broadcast to ``terms`` (1 if None)."""
    if weight is None:
        return terms.sum(), torch.tensor(float(terms.numel()), device=terms.device)
    count = weight.expand_as(terms).sum().to(terms.dtype)
    return (terms * weight).sum(), count


@dataclass
class BatchLayout:
    """A batch of one relation cut into chunks of positives.

    Attributes:
        head: head ids, padded to ``num_chunks * chunk_size`` (padding: id 0).
        tail: tail ids, padded likewise.
        valid: ``[num_chunks, chunk_size]`` bool, False on padding.
        pair_weight: ``[num_chunks, chunk_size, chunk_size]`` float, weight of the
            in-batch negative ``(head i, tail j)``: 0 on the diagonal (the
            positives), on padding and on accidental hits (same head or same tail
            as the positive), else 1. ``None`` without in-batch negatives.
        size: number of real (unpadded) positives.
        num_pairs: number of in-batch negatives (sum of ``pair_weight``).
    """

    head: Tensor
    tail: Tensor
    valid: Tensor
    pair_weight: Tensor | None
    size: int
    num_pairs: float = 0.0

    @property
    def num_chunks(self) -> int:
        return int(self.valid.shape[0])

    @property
    def chunk_size(self) -> int:
        return int(self.valid.shape[1])


@dataclass
class RowGrads:
    """Gradients of a batch loss with respect to the gathered rows.

    Attributes:
        head: ``[num_chunks * chunk_size, d]`` (rows of ``layout.head``).
        tail: ``[num_chunks * chunk_size, d]`` (rows of ``layout.tail``).
        uniform_head: ``[num_chunks, n, d]`` or ``None``.
        uniform_tail: ``[num_chunks, n, d]`` or ``None``.
        translation: ``[d]``, gradient of the relation's translation vector.
    """

    head: Tensor
    tail: Tensor
    uniform_head: Tensor | None
    uniform_tail: Tensor | None
    translation: Tensor


def batch_layout(
    head: Tensor, tail: Tensor, chunk_size: int, *, in_batch_neg: bool = True
) -> BatchLayout:
    """Cut a batch of positives ``(head[i], r, tail[i])`` into chunks.

    Args:
        head: 1-D head ids.
        tail: 1-D tail ids, same length as ``head``.
        chunk_size: positives per chunk (in-batch negatives per positive:
            ``chunk_size - 1``); clipped to the batch size.
        in_batch_neg: build the in-batch pair weights.

    Returns:
        A :class:`BatchLayout`.
    """
    if head.dim() != 1 or head.shape != tail.shape:
        raise ValueError(
            f"head and tail must be 1-D of equal length (got {tuple(head.shape)} "
            f"and {tuple(tail.shape)})"
        )
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0 (got {chunk_size})")
    size = int(head.numel())
    if size == 0:
        raise ValueError("head is empty: a batch needs at least one positive")
    chunk = min(int(chunk_size), size)
    num_chunks = -(-size // chunk)
    pad = num_chunks * chunk - size
    valid = torch.ones(num_chunks * chunk, dtype=torch.bool, device=head.device)
    if pad:
        zeros = head.new_zeros(pad)
        head = torch.cat([head, zeros])
        tail = torch.cat([tail, zeros])
        valid[size:] = False
    valid = valid.view(num_chunks, chunk)
    pair_weight = None
    num_pairs = 0.0
    if in_batch_neg and chunk > 1:
        h = head.view(num_chunks, chunk)
        t = tail.view(num_chunks, chunk)
        hit = h.unsqueeze(2) == h.unsqueeze(1)  # also True on the diagonal
        hit |= t.unsqueeze(2) == t.unsqueeze(1)
        keep = ~hit
        if pad:
            keep &= valid.unsqueeze(2) & valid.unsqueeze(1)
        pair_weight = keep.to(torch.float32)
        num_pairs = float(keep.sum())
    return BatchLayout(head, tail, valid, pair_weight, size, num_pairs)


class TwHIN(nn.Module):
    """TwHIN embeddings (El-Kishky et al., KDD 2022, arXiv 2202.05387).

    One embedding table per node type and one translation vector per relation;
    ``score(u, r, v) = <u + t_r, v>``.

    Args:
        num_nodes: number of nodes per node type; a table is created for every
            node type used by ``relations``.
        relations: edge types ``(src_type, relation, dst_type)``; relation names
            must be unique.
        dim: embedding dimension ``d``.
        init_std: standard deviation of the normal initialisation of the tables
            (translations start at 0).
        seed: if given, parameters are initialised from ``torch.Generator`` seeded
            with it (otherwise from the global RNG).
    """

    def __init__(
        self,
        num_nodes: Mapping[str, int],
        relations: Sequence[EdgeType],
        dim: int = 64,
        *,
        init_std: float = 0.1,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if int(dim) <= 0:
            raise ValueError(f"dim must be > 0 (got {dim})")
        if not init_std > 0 or not math.isfinite(init_std):
            raise ValueError(
                f"init_std must be a positive finite number (got {init_std})"
            )
        relations = [tuple(r) for r in relations]  # type: ignore[misc]
        if not relations:
            raise ValueError("relations is empty: TwHIN needs at least one relation")
        names = [r[1] for r in relations]
        if len(set(names)) != len(names):
            raise ValueError(f"relations has duplicate relation names: {names}")
        types: list[str] = []
        for et in relations:
            if len(et) != 3:
                raise ValueError(
                    f"relations entries must be (src, rel, dst) (got {et!r})"
                )
            for t in (et[0], et[2]):
                if t not in num_nodes:
                    raise ValueError(
                        f"relation {et} uses node type {t!r} missing from num_nodes "
                        f"(known: {sorted(num_nodes)})"
                    )
                if int(num_nodes[t]) <= 0:
                    raise ValueError(
                        f"num_nodes[{t!r}] must be > 0 (got {num_nodes[t]})"
                    )
                if t not in types:
                    types.append(t)
        self.dim = int(dim)
        self.init_std = float(init_std)
        self.relations: list[EdgeType] = relations  # type: ignore[assignment]
        self.num_nodes = {t: int(num_nodes[t]) for t in types}
        self._rel_index = {name: i for i, name in enumerate(names)}
        self.embeddings = nn.ParameterDict(
            {
                t: nn.Parameter(torch.empty(n, self.dim))
                for t, n in self.num_nodes.items()
            }
        )
        self.translations = nn.Parameter(torch.empty(len(relations), self.dim))
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        self.reset_parameters(generator=gen)

    @property
    def node_types(self) -> list[str]:
        """Node types that have an embedding table."""
        return list(self.num_nodes)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Tables ~ N(0, init_std^2) (drawn from ``generator`` if given), t_r = 0."""
        with torch.no_grad():
            for t in self.num_nodes:
                table = self.embeddings[t]
                noise = torch.randn(table.shape, generator=generator)
                table.copy_(noise.mul_(self.init_std))
            self.translations.zero_()

    def relation_index(self, relation: str | EdgeType) -> int:
        """Row of ``relation`` (a name or an edge type) in :attr:`translations`."""
        name = relation if isinstance(relation, str) else tuple(relation)[1]
        if name not in self._rel_index or (
            not isinstance(relation, str)
            and tuple(relation) != self.relations[self._rel_index[name]]
        ):
            raise ValueError(f"unknown relation {relation!r} (known: {self.relations})")
        return self._rel_index[name]

    def score(self, relation: str | EdgeType, head: Tensor, tail: Tensor) -> Tensor:
        """Scores ``<u_head + t_r, v_tail>`` of aligned id tensors (broadcasting).

        Args:
            relation: relation name or edge type.
            head: ids of the relation's source type.
            tail: ids of the relation's destination type.
        """
        r = self.relation_index(relation)
        src, _, dst = self.relations[r]
        q = self.embeddings[src][head] + self.translations[r]
        return (q * self.embeddings[dst][tail]).sum(-1)

    forward = score

    def loss_from_rows(
        self,
        relation: int,
        layout: BatchLayout,
        head_rows: Tensor,
        tail_rows: Tensor,
        *,
        uniform_head_rows: Tensor | None = None,
        uniform_tail_rows: Tensor | None = None,
        balanced: bool = True,
    ) -> Tensor:
        """Loss of one batch given the gathered embedding rows.

        Args:
            relation: row of the relation in :attr:`translations`.
            layout: the chunked batch (:func:`batch_layout`).
            head_rows: ``[num_chunks * chunk_size, d]`` rows of ``layout.head``.
            tail_rows: ``[num_chunks * chunk_size, d]`` rows of ``layout.tail``.
            uniform_head_rows: ``[num_chunks, n, d]`` uniform head negatives.
            uniform_tail_rows: ``[num_chunks, n, d]`` uniform tail negatives.
            balanced: loss weighting, see :func:`twhin_loss`.

        Returns:
            Scalar :func:`twhin_loss` (differentiable w.r.t. the rows and the
            translations).
        """
        nc, c = layout.num_chunks, layout.chunk_size
        t_r = self.translations[relation]
        q = (head_rows + t_r).view(nc, c, self.dim)
        v = tail_rows.view(nc, c, self.dim)
        valid = layout.valid.to(q.dtype)
        negs: list[Tensor] = []
        weights: list[Tensor] = []
        if layout.pair_weight is not None:
            s = torch.bmm(q, v.transpose(1, 2))  # [nc, c, c]
            pos = s.diagonal(dim1=1, dim2=2)
            negs.append(s)
            weights.append(layout.pair_weight)
        else:
            pos = (q * v).sum(-1)
        if uniform_tail_rows is not None:
            negs.append(torch.bmm(q, uniform_tail_rows.transpose(1, 2)))  # [nc, c, n]
            weights.append(valid.unsqueeze(2))
        if uniform_head_rows is not None:
            qn = uniform_head_rows + t_r
            negs.append(torch.bmm(qn, v.transpose(1, 2)))  # [nc, n, c]
            weights.append(valid.unsqueeze(1))
        if not negs:
            raise ValueError(
                "no negatives: the layout has no in-batch pairs and no uniform rows "
                "were given"
            )
        pos_weight = None if layout.size == nc * c else valid
        return twhin_loss(
            pos, negs, pos_weight=pos_weight, neg_weight=weights, balanced=balanced
        )

    @torch.no_grad()
    def loss_and_grads(
        self,
        relation: int,
        layout: BatchLayout,
        head_rows: Tensor,
        tail_rows: Tensor,
        *,
        uniform_head_rows: Tensor | None = None,
        uniform_tail_rows: Tensor | None = None,
        balanced: bool = True,
    ) -> tuple[Tensor, RowGrads]:
        """:meth:`loss_from_rows` and its gradients, derived by hand (no autograd).

        The gradient of ``BCE(s, y)`` with respect to a logit is
        ``w * (sigmoid(s) - y) / normaliser``; it flows back through the batched
        matmuls as two more matmuls per score block. Fewer, larger kernels than
        autograd (no ``diagonal_backward`` zero-fills, no weight broadcasts); the
        result equals autograd's up to float rounding (tested).

        Args:
            relation: row of the relation in :attr:`translations`.
            layout: the chunked batch (:func:`batch_layout`).
            head_rows: ``[num_chunks * chunk_size, d]`` rows of ``layout.head``.
            tail_rows: ``[num_chunks * chunk_size, d]`` rows of ``layout.tail``.
            uniform_head_rows: ``[num_chunks, n, d]`` uniform head negatives.
            uniform_tail_rows: ``[num_chunks, n, d]`` uniform tail negatives.
            balanced: loss weighting, see :func:`twhin_loss`.

        Returns:
            ``(loss, grads)``: the scalar loss and a :class:`RowGrads`.
        """
        nc, c, d = layout.num_chunks, layout.chunk_size, self.dim
        t_r = self.translations[relation].detach()
        q = (head_rows + t_r).view(nc, c, d)
        v = tail_rows.view(nc, c, d)
        padded = layout.size != nc * c
        valid = layout.valid.to(q.dtype) if padded else None
        pos_count = float(layout.size)
        n_uni = 0 if uniform_tail_rows is None else int(uniform_tail_rows.shape[1])
        n_uni += 0 if uniform_head_rows is None else int(uniform_head_rows.shape[1])
        neg_count = layout.num_pairs + pos_count * n_uni
        if neg_count == 0:
            raise ValueError(
                "no negatives: the layout has no in-batch pairs and no uniform rows "
                "were given"
            )
        if balanced:
            pos_scale, neg_scale = 1.0 / pos_count, 1.0 / neg_count
        else:
            pos_scale = neg_scale = 1.0 / (pos_count + neg_count)
        if layout.pair_weight is not None:
            s = torch.bmm(q, v.transpose(1, 2))  # [nc, c, c]
            pos = s.diagonal(dim1=1, dim2=2).clone()
            w = layout.pair_weight
            neg_sum = (F.softplus(s) * w).sum()
            g = torch.sigmoid(s).mul_(w).mul_(neg_scale)  # 0 on the diagonal
        else:
            pos = (q * v).sum(-1)
            neg_sum = q.new_zeros(())
            g = None
        pos_terms = F.softplus(-pos)
        gpos = torch.sigmoid(pos).sub_(1.0).mul_(pos_scale)
        if valid is not None:
            pos_terms.mul_(valid)
            gpos.mul_(valid)
        if g is not None:
            g.diagonal(dim1=1, dim2=2).copy_(gpos)
            dq = torch.bmm(g, v)
            dv = torch.bmm(g.transpose(1, 2), q)
        else:
            dq = gpos.unsqueeze(2) * v
            dv = gpos.unsqueeze(2) * q
        d_un = d_vn = None
        if uniform_tail_rows is not None:
            st = torch.bmm(q, uniform_tail_rows.transpose(1, 2))  # [nc, c, n]
            gt = torch.sigmoid(st).mul_(neg_scale)
            sp = F.softplus(st)
            if valid is not None:
                gt.mul_(valid.unsqueeze(2))
                sp.mul_(valid.unsqueeze(2))
            neg_sum = neg_sum + sp.sum()
            dq.baddbmm_(gt, uniform_tail_rows)
            d_vn = torch.bmm(gt.transpose(1, 2), q)
        d_t = dq.sum((0, 1))
        if uniform_head_rows is not None:
            qn = uniform_head_rows + t_r
            sh = torch.bmm(qn, v.transpose(1, 2))  # [nc, n, c]
            gh = torch.sigmoid(sh).mul_(neg_scale)
            sp = F.softplus(sh)
            if valid is not None:
                gh.mul_(valid.unsqueeze(1))
                sp.mul_(valid.unsqueeze(1))
            neg_sum = neg_sum + sp.sum()
            dv.baddbmm_(gh.transpose(1, 2), qn)
            d_un = torch.bmm(gh, v)
            d_t += d_un.sum((0, 1))
        pos_sum = pos_terms.sum()
        if balanced:
            loss = pos_sum / pos_count + neg_sum / neg_count
        else:
            loss = (pos_sum + neg_sum) / (pos_count + neg_count)
        grads = RowGrads(
            head=dq.view(nc * c, d),
            tail=dv.view(nc * c, d),
            uniform_head=d_un,
            uniform_tail=d_vn,
            translation=d_t,
        )
        return loss, grads

    def loss(
        self,
        relation: str | EdgeType,
        head: Tensor,
        tail: Tensor,
        *,
        chunk_size: int = 64,
        in_batch_neg: bool = True,
        uniform_head: Tensor | None = None,
        uniform_tail: Tensor | None = None,
        balanced: bool = True,
    ) -> Tensor:
        """Loss of a batch of positives through plain autograd (dense gradients).

        Convenient for tests and small graphs; the trainer uses the same
        :meth:`loss_from_rows` with sparse row updates instead.

        Args:
            relation: relation name or edge type.
            head: 1-D head ids of the positives.
            tail: 1-D tail ids of the positives.
            chunk_size: positives per in-batch negative chunk.
            in_batch_neg: use in-batch negatives.
            uniform_head: ``[num_chunks, n]`` head ids of uniform negatives.
            uniform_tail: ``[num_chunks, n]`` tail ids of uniform negatives.
            balanced: loss weighting, see :func:`twhin_loss`.
        """
        r = self.relation_index(relation)
        src, _, dst = self.relations[r]
        layout = batch_layout(head, tail, chunk_size, in_batch_neg=in_batch_neg)
        for name, ids in (
            ("uniform_head", uniform_head),
            ("uniform_tail", uniform_tail),
        ):
            if ids is not None and (
                ids.dim() != 2 or ids.shape[0] != layout.num_chunks
            ):
                raise ValueError(
                    f"{name} must have shape [num_chunks={layout.num_chunks}, n] "
                    f"(got {tuple(ids.shape)})"
                )
        e_src, e_dst = self.embeddings[src], self.embeddings[dst]
        return self.loss_from_rows(
            r,
            layout,
            e_src[layout.head],
            e_dst[layout.tail],
            uniform_head_rows=e_src[uniform_head] if uniform_head is not None else None,
            uniform_tail_rows=e_dst[uniform_tail] if uniform_tail is not None else None,
            balanced=balanced,
        )

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, relations={self.relations}, dim={self.dim}"


def embeddings(model: TwHIN, node_type: str) -> np.ndarray:
    """Embedding table of ``node_type`` as a ``float32`` array ``[num_nodes, d]``.

    Args:
        model: a (trained) :class:`TwHIN` model.
        node_type: one of ``model.node_types``.
    """
    if node_type not in model.num_nodes:
        raise ValueError(f"unknown node_type {node_type!r} (known: {model.node_types})")
    table = model.embeddings[node_type].detach().to("cpu", torch.float32)
    return table.numpy().copy()


def embeddings_frame(
    model: TwHIN, node_type: str, ids: pd.Index | Sequence
) -> pd.DataFrame:
    """Embeddings keyed by original ids: columns ``id``, ``e0`` ... ``e{d-1}``.

    One ``float32`` column per dimension writes compactly to parquet (typed,
    columnar, no object column) and reads back with
    ``df.filter(regex=r"^e\\d+$").to_numpy()``.

    Args:
        model: a (trained) :class:`TwHIN` model.
        node_type: one of ``model.node_types``.
        ids: original id of every node (position = contiguous id), e.g.
            ``GraphArtifact.ids[node_type]``.
    """
    return to_frame(pd.Index(ids), embeddings(model, node_type))
