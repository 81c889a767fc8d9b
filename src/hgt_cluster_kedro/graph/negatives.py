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
``parameters_hgt.yml``); a new sampler is one class here plus its test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from .csr import EdgeType, HeteroCSR

__all__ = [
    "NEGATIVE_SAMPLERS",
    "InBatchNegatives",
    "NegativeDraw",
    "NegativeSampler",
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


#: ``neg_mode`` name -> negative sampler class (constructed with ``num_neg``).
NEGATIVE_SAMPLERS: dict[str, type] = {
    "uniform": UniformNegatives,
    "in_batch": InBatchNegatives,
}


def make_negative_sampler(name: str, num_neg: int) -> NegativeSampler:
    """The registered sampler ``name`` with ``num_neg`` negatives per side."""
    if name not in NEGATIVE_SAMPLERS:
        raise ValueError(
            f"unknown negative sampler {name!r} (known: {sorted(NEGATIVE_SAMPLERS)})"
        )
    return NEGATIVE_SAMPLERS[name](num_neg=int(num_neg))
