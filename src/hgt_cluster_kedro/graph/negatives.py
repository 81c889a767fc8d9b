"""Negative samplers for link objectives: objects handed to the link sampler.

A negative sampler draws, for a batch of positive pairs ``(src[i], dst[i])`` of
one relation, ``num_neg`` corrupted destinations per positive (``dst_neg``, the
user side: ``(src[i], dst_neg[i, j])``) and ``num_neg`` corrupted sources
(``src_neg``, the item side: ``(src_neg[i, j], dst[i])``), and flags the drawn
pairs that are in fact positives (of the batch or of the graph), which the loss
then ignores. As PyG's ``NegativeSampling`` is passed to its loaders, the
sampler is passed to :meth:`~hgt_cluster_kedro.graph.sampler.NeighborSampler.sample_links`
and to the full-graph training step, so both modes draw the same negatives.

Registered by name in :data:`NEGATIVE_SAMPLERS` (the ``neg_mode`` of
``parameters_hgt.yml``); a new sampler is one class here plus its test. A
sampler whose class sets ``needs_graph = True`` is built by
:func:`make_negative_sampler` from the graph and the target edge types (and its
parameter block); one with a ``set_epoch(epoch)`` method is told the epoch by
the training loop before each epoch's first step, as PyTorch's
``DistributedSampler`` is.

``pinsage_hard`` (:class:`PinSageHardNegatives`) mixes easy negatives with
*hard* ones as PinSage does (Ying et al., *Graph Convolutional Neural Networks
for Web-Scale Recommender Systems*, KDD 2018, section 3.3): items in a middle
rank band of a personalised-PageRank score of the user, more of them each epoch
(curriculum training).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from .csr import EdgeType, HeteroCSR

__all__ = [
    "NEGATIVE_SAMPLERS",
    "InBatchNegatives",
    "NegativeDraw",
    "NegativeSampler",
    "PinSageHardNegatives",
    "PinSageHardParams",
    "UniformNegatives",
    "make_negative_sampler",
    "positive_test",
]

#: ``is_positive(src, dst) -> bool mask``: whether pairs are known positives.
PositiveTest = Callable[[Tensor, Tensor], Tensor]


def positive_test(
    graph: HeteroCSR, edge_type: EdgeType, src: Tensor, dst: Tensor
) -> PositiveTest:
    """``is_positive(s, d)``: whether pairs of ``edge_type`` are positives of
    the batch ``(src, dst)`` or edges of ``graph``."""
    n_d = graph.num_nodes[edge_type[2]]
    pos_keys = torch.sort(src * n_d + dst)[0]
    batch = pos_keys.numel()

    def is_positive(s: Tensor, d: Tensor) -> Tensor:
        keys = s * n_d + d
        at = torch.searchsorted(pos_keys, keys).clamp_(max=batch - 1)
        return (pos_keys[at] == keys) | graph.has_edges(edge_type, s, d)

    return is_positive


@dataclass
class NegativeDraw:
    """Negatives of one batch (global ids, ``[batch, num_neg]``) and the flags
    of drawn pairs that are known positives (to be ignored by the loss)."""

    src_neg: Tensor
    dst_neg: Tensor
    src_bad: Tensor
    dst_bad: Tensor


class NegativeSampler(Protocol):
    """What a link sampler needs from a negative sampler."""

    num_neg: int

    def min_batch(self) -> int:
        """Smallest batch of positives it can serve."""
        ...

    def draw(
        self,
        src: Tensor,
        dst: Tensor,
        *,
        num_src: int,
        num_dst: int,
        rng: np.random.Generator,
        is_positive: PositiveTest,
    ) -> NegativeDraw:
        """Negatives of the positives ``(src, dst)``."""
        ...


@dataclass
class UniformNegatives:
    """Uniform over all nodes of the corrupted side (the original system's);
    drawn pairs that are positives are re-drawn up to ``max_rounds`` times.

    Args:
        num_neg: negatives per side per positive.
        max_rounds: re-draw rounds for drawn positives (the rest are flagged).
    """

    num_neg: int
    max_rounds: int = 10

    def __post_init__(self) -> None:
        if self.num_neg < 0:
            raise ValueError(f"num_neg must be >= 0 (got {self.num_neg})")

    def min_batch(self) -> int:
        return 1

    def draw(
        self,
        src: Tensor,
        dst: Tensor,
        *,
        num_src: int,
        num_dst: int,
        rng: np.random.Generator,
        is_positive: PositiveTest,
    ) -> NegativeDraw:
        batch, k = src.numel(), self.num_neg
        src_rep = src.unsqueeze(1).expand(batch, k)
        dst_rep = dst.unsqueeze(1).expand(batch, k)
        dst_neg = torch.from_numpy(rng.integers(0, num_dst, (batch, k)))
        src_neg = torch.from_numpy(rng.integers(0, num_src, (batch, k)))
        dst_bad = is_positive(src_rep.flatten(), dst_neg.flatten()).view(batch, k)
        src_bad = is_positive(src_neg.flatten(), dst_rep.flatten()).view(batch, k)
        for _ in range(self.max_rounds):
            n_bad_d, n_bad_s = int(dst_bad.sum()), int(src_bad.sum())
            if n_bad_d == 0 and n_bad_s == 0:
                break
            if n_bad_d:
                redraw = torch.from_numpy(rng.integers(0, num_dst, n_bad_d))
                dst_neg[dst_bad] = redraw
                dst_bad[dst_bad.clone()] = is_positive(src_rep[dst_bad], redraw)
            if n_bad_s:
                redraw = torch.from_numpy(rng.integers(0, num_src, n_bad_s))
                src_neg[src_bad] = redraw
                src_bad[src_bad.clone()] = is_positive(redraw, dst_rep[src_bad])
        return NegativeDraw(src_neg, dst_neg, src_bad, dst_bad)


@dataclass
class InBatchNegatives:
    """The endpoints of other positives of the batch (popularity-weighted, as
    the batch is): column ``j`` takes positive ``(i + shift_j) % B`` with
    distinct random shifts in ``[1, B)``, never the positive itself.

    Args:
        num_neg: negatives per side per positive (at most batch size - 1).
    """

    num_neg: int

    def __post_init__(self) -> None:
        if self.num_neg < 1:
            raise ValueError(f"num_neg must be >= 1 (got {self.num_neg})")

    def min_batch(self) -> int:
        return self.num_neg + 1

    def draw(
        self,
        src: Tensor,
        dst: Tensor,
        *,
        num_src: int,
        num_dst: int,
        rng: np.random.Generator,
        is_positive: PositiveTest,
    ) -> NegativeDraw:
        batch, k = src.numel(), self.num_neg
        if k > batch - 1:
            raise ValueError(
                f"num_neg must be <= batch size - 1 = {batch - 1} for in-batch "
                f"negatives (got {k})"
            )
        row = torch.arange(batch).unsqueeze(1)
        shifts = torch.from_numpy(rng.permutation(batch - 1)[:k] + 1)
        dst_neg = dst[(row + shifts) % batch]
        shifts = torch.from_numpy(rng.permutation(batch - 1)[:k] + 1)
        src_neg = src[(row + shifts) % batch]
        src_rep = src.unsqueeze(1).expand(batch, k)
        dst_rep = dst.unsqueeze(1).expand(batch, k)
        dst_bad = is_positive(src_rep.flatten(), dst_neg.flatten()).view(batch, k)
        src_bad = is_positive(src_neg.flatten(), dst_rep.flatten()).view(batch, k)
        return NegativeDraw(src_neg, dst_neg, src_bad, dst_bad)


class PinSageHardParams(BaseModel):
    """``hgt.train.hard_negatives``: the ``pinsage_hard`` negative sampler.

    PinSage (Ying et al., KDD 2018, section 3.3) ranks the items by a
    personalised PageRank of the query and takes its hard negatives from a
    middle band of that ranking (ranks 2,000–5,000 of billions: related to the
    query, yet not its best matches); the first epoch has none and each later
    epoch one more (curriculum). Here the personalised PageRank of a user is
    approximated by the visit counts of ``walks`` short random walks from the
    user over the bipartite user–item graph of the train target relations.

    Args:
        easy: the sampler of the easy negatives (``in_batch`` or ``uniform``).
        hard_start: hard negatives per positive in epoch 0.
        hard_per_epoch: hard negatives added per epoch (the curriculum).
        hard_max: cap on the hard negatives per positive (``None``: ``num_neg``).
        hard_rank_lo: first rank of the band (0 = the most visited item that is
            not a known positive of the user).
        hard_rank_hi: end of the band (exclusive).
        walks: random walks per user.
        walk_length: items visited per walk (user → item → user → item ...).
    """

    model_config = ConfigDict(extra="forbid")

    easy: Literal["in_batch", "uniform"] = Field(
        default="in_batch", description="sampler of the easy negatives"
    )
    hard_start: int = Field(default=0, ge=0, description="hard negatives in epoch 0")
    hard_per_epoch: int = Field(
        default=1, ge=0, description="hard negatives added per epoch (curriculum)"
    )
    hard_max: int | None = Field(
        default=None, ge=0, description="cap per positive (None: num_neg)"
    )
    hard_rank_lo: int = Field(
        default=20, ge=0, description="first rank of the band (0-based)"
    )
    hard_rank_hi: int = Field(
        default=200, ge=1, description="end of the band (exclusive)"
    )
    walks: int = Field(default=200, ge=1, description="random walks per user")
    walk_length: int = Field(default=3, ge=1, description="items visited per walk")

    @model_validator(mode="after")
    def _band(self) -> PinSageHardParams:
        if self.hard_rank_hi <= self.hard_rank_lo:
            raise ValueError(
                f"hard_rank_hi={self.hard_rank_hi} must be > hard_rank_lo="
                f"{self.hard_rank_lo}"
            )
        return self


def _bipartite(
    graph: HeteroCSR, edge_types: Sequence[EdgeType]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Sorted unique ``user * num_items + item`` keys of the union of the
    ``edge_types`` (all user -> item), user and item counts."""
    if not edge_types:
        raise ValueError("edge_types must name at least one user -> item relation")
    s_t, _, d_t = edge_types[0]
    for et in edge_types:
        if (et[0], et[2]) != (s_t, d_t):
            raise ValueError(
                f"edge_types must all join the same node types (got {list(edge_types)})"
            )
        if et not in graph.indptr:
            raise ValueError(f"edge type {et} is not in the graph")
    n_i = graph.num_nodes[d_t]
    keys = [
        (src * n_i + dst).numpy()
        for src, dst in (graph.to_coo(et) for et in edge_types)
    ]
    return np.unique(np.concatenate(keys)), graph.num_nodes[s_t], n_i


class PinSageHardNegatives:
    """Easy negatives mixed with PinSage's hard ones, more each epoch.

    PinSage (Ying et al., *Graph Convolutional Neural Networks for Web-Scale
    Recommender Systems*, KDD 2018, section 3.3). The easy sampler
    (:class:`InBatchNegatives` or :class:`UniformNegatives`) draws all
    ``num_neg`` negatives of both sides; in epoch ``e`` the last
    ``n = min(hard_start + hard_per_epoch * e, hard_max)`` user-side columns
    (``dst_neg``) are then replaced by hard negatives of the positive's user:
    items drawn uniformly from ranks ``[hard_rank_lo, hard_rank_hi)`` of the
    user's approximate personalised PageRank. The item-side negatives
    (``src_neg``, users) stay easy.

    The personalised PageRank is approximated, for each distinct user of the
    batch, by ``walks`` random walks of ``walk_length`` items over the user–item
    graph of the train target relations (all relations together), seeded from
    the step's ``rng`` and vectorised in NumPy; the visited items that are not
    known positives of the user (edges of any target relation) are ranked by
    visit count, ties in random order. A user with too few visited items for
    the band takes them from ``[min(lo, n // 2), min(hi, n))`` of its ``n``
    visited items; a user with none keeps its easy negatives (both counted in
    :attr:`last_stats` of the last draw: ``short_band``, ``no_band``). The
    drawn hard pairs are flagged by ``is_positive`` like any other negative (a
    batch positive may be one).

    The loop calls :meth:`set_epoch` before each epoch (the curriculum).
    """

    needs_graph = True

    def __init__(
        self,
        num_neg: int,
        *,
        graph: HeteroCSR,
        edge_types: Sequence[EdgeType],
        params: PinSageHardParams | Mapping[str, Any] | None = None,
    ) -> None:
        if num_neg < 1:
            raise ValueError(f"num_neg must be >= 1 (got {num_neg})")
        self.num_neg = int(num_neg)
        self.params = (
            params
            if isinstance(params, PinSageHardParams)
            else PinSageHardParams.model_validate(dict(params or {}))
        )
        p = self.params
        if p.hard_max is not None and p.hard_max > num_neg:
            raise ValueError(
                f"hard_negatives.hard_max={p.hard_max} must be <= num_neg={num_neg}"
            )
        self.hard_max = self.num_neg if p.hard_max is None else p.hard_max
        self._easy: NegativeSampler = (
            InBatchNegatives(self.num_neg)
            if p.easy == "in_batch"
            else UniformNegatives(self.num_neg)
        )
        keys, n_u, n_i = _bipartite(graph, list(edge_types))
        self.edge_types = [tuple(et) for et in edge_types]
        self.num_users, self.num_items = n_u, n_i
        self._pos_keys = keys
        users, items = keys // n_i, keys % n_i
        self._u_ptr = np.searchsorted(users, np.arange(n_u + 1))
        self._u_items = items
        order = np.argsort(items, kind="stable")
        self._i_ptr = np.searchsorted(items[order], np.arange(n_i + 1))
        self._i_users = users[order]
        self.epoch = 0
        self.last_stats: dict[str, int] = {}

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next draws (0-based): the curriculum's clock."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0 (got {epoch})")
        self.epoch = int(epoch)

    def num_hard(self) -> int:
        """Hard negatives per positive in the current epoch."""
        p = self.params
        return min(p.hard_start + p.hard_per_epoch * self.epoch, self.hard_max)

    def min_batch(self) -> int:
        return self._easy.min_batch()

    def walk_counts(
        self, users: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Visit counts of the items reached by the walks from each of
        ``users``: ``(row, item, count)``, row = position in ``users``, known
        positives included."""
        p = self.params
        rows = np.repeat(np.arange(users.size), p.walks)
        cur = np.repeat(users, p.walks)
        u_deg = np.diff(self._u_ptr)
        alive = u_deg[cur] > 0
        rows, cur = rows[alive], cur[alive]
        seen_rows, seen_items = [], []
        for step in range(p.walk_length):
            off = (rng.random(cur.size) * u_deg[cur]).astype(np.int64)
            item = self._u_items[self._u_ptr[cur] + off]
            seen_rows.append(rows)
            seen_items.append(item)
            if step + 1 < p.walk_length:
                i_deg = self._i_ptr[item + 1] - self._i_ptr[item]
                off = (rng.random(item.size) * i_deg).astype(np.int64)
                cur = self._i_users[self._i_ptr[item] + off]
        n_i = self.num_items
        keys = np.concatenate(seen_rows) * n_i + np.concatenate(seen_items)
        uniq, counts = np.unique(keys, return_counts=True)
        return uniq // n_i, uniq % n_i, counts

    def bands(
        self, users: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ranked, start, length)``: the walk-ranked items of all ``users``
        (known positives removed), and per user the offset and length of its
        band in ``ranked``."""
        row, item, count = self.walk_counts(users, rng)
        keys = users[row] * self.num_items + item
        at = np.searchsorted(self._pos_keys, keys).clip(max=self._pos_keys.size - 1)
        keep = self._pos_keys[at] != keys
        row, item, count = row[keep], item[keep], count[keep]
        order = np.lexsort((rng.random(row.size), -count, row))
        row, ranked = row[order], item[order]
        n_vis = np.bincount(row, minlength=users.size)
        first = np.concatenate([[0], np.cumsum(n_vis)[:-1]])
        p = self.params
        lo = np.minimum(p.hard_rank_lo, n_vis // 2)
        hi = np.minimum(p.hard_rank_hi, n_vis)
        self.last_stats = {
            "users": int(users.size),
            "short_band": int((hi - lo < p.hard_rank_hi - p.hard_rank_lo).sum()),
            "no_band": int((hi <= lo).sum()),
        }
        return ranked, first + lo, np.maximum(hi - lo, 0)

    def draw(
        self,
        src: Tensor,
        dst: Tensor,
        *,
        num_src: int,
        num_dst: int,
        rng: np.random.Generator,
        is_positive: PositiveTest,
    ) -> NegativeDraw:
        if num_src != self.num_users or num_dst != self.num_items:
            raise ValueError(
                f"pinsage_hard walks a graph of {self.num_users} users and "
                f"{self.num_items} items (got num_src={num_src}, num_dst={num_dst})"
            )
        out = self._easy.draw(
            src, dst, num_src=num_src, num_dst=num_dst, rng=rng, is_positive=is_positive
        )
        h = self.num_hard()
        if h == 0:
            return out
        users, inv = np.unique(src.numpy(), return_inverse=True)
        ranked, start, length = self.bands(users, rng)
        batch, k = src.numel(), self.num_neg
        n = length[inv][:, None]
        pick = start[inv][:, None] + (rng.random((batch, h)) * n).astype(np.int64)
        has = np.repeat(n > 0, h, axis=1)
        hard = torch.from_numpy(ranked[np.where(has, pick, 0)] if ranked.size else pick)
        has_t = torch.from_numpy(has)
        cols = out.dst_neg[:, k - h :]
        cols = torch.where(has_t, hard.to(cols.dtype), cols)
        dst_neg = out.dst_neg.clone()
        dst_neg[:, k - h :] = cols
        dst_bad = out.dst_bad.clone()
        src_rep = src.unsqueeze(1).expand(batch, h)
        dst_bad[:, k - h :] = is_positive(src_rep.flatten(), cols.flatten()).view(
            batch, h
        )
        return NegativeDraw(out.src_neg, dst_neg, out.src_bad, dst_bad)


#: ``neg_mode`` name -> negative sampler class (constructed with ``num_neg``;
#: with ``graph``, ``edge_types`` and ``params`` too when ``needs_graph``).
NEGATIVE_SAMPLERS: dict[str, type] = {
    "uniform": UniformNegatives,
    "in_batch": InBatchNegatives,
    "pinsage_hard": PinSageHardNegatives,
}


def make_negative_sampler(
    name: str,
    num_neg: int,
    *,
    graph: HeteroCSR | None = None,
    edge_types: Sequence[EdgeType] | None = None,
    params: Any = None,
) -> NegativeSampler:
    """The registered sampler ``name`` with ``num_neg`` negatives per side.

    Args:
        name: a key of :data:`NEGATIVE_SAMPLERS`.
        num_neg: negatives per side per positive.
        graph: the train graph (samplers with ``needs_graph``).
        edge_types: the target (user -> item) edge types (``needs_graph``).
        params: the sampler's parameter block (``needs_graph``; e.g.
            :class:`PinSageHardParams`).
    """
    if name not in NEGATIVE_SAMPLERS:
        raise ValueError(
            f"unknown negative sampler {name!r} (known: {sorted(NEGATIVE_SAMPLERS)})"
        )
    cls = NEGATIVE_SAMPLERS[name]
    if getattr(cls, "needs_graph", False):
        if graph is None or edge_types is None:
            raise ValueError(f"negative sampler {name!r} needs graph and edge_types")
        return cls(int(num_neg), graph=graph, edge_types=edge_types, params=params)
    if params is not None:
        raise ValueError(f"negative sampler {name!r} takes no params (got {params!r})")
    return cls(num_neg=int(num_neg))
