"""Self-supervised link objective of the HGT user encoder.

The symmetric cosine (softplus / BPR-style) loss of the original graph-learn +
TensorFlow system: for a positive user–item pair ``(u, v)`` with ``K`` negative
items ``v-`` drawn for ``u`` and ``K`` negative users ``u-`` drawn for ``v``::

    L = 1/2 * mean softplus(-s * (cos(u, v) - cos(u, v-)))
      + 1/2 * mean softplus(-s * (cos(v, u) - cos(v, u-)))

with scale ``s`` (default 2), each mean over the ``B x K`` (positive, negative)
pairs of the batch. ``softplus(-s * d) = -log sigmoid(s * d)`` is the pairwise
(BPR) logistic loss of S. Rendle et al., *BPR: Bayesian Personalized Ranking from
Implicit Feedback*, UAI 2009 (arXiv 1205.2618), here on cosine similarities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cosine_pair_loss", "symmetric_cosine_loss"]


def _check(anchor: Tensor, pos: Tensor, neg: Tensor, mask: Tensor | None) -> None:
    if anchor.dim() != 2:
        raise ValueError(f"anchor must be [B, d] (got shape {tuple(anchor.shape)})")
    if pos.shape != anchor.shape:
        raise ValueError(
            f"positive shape {tuple(pos.shape)} differs from anchor shape "
            f"{tuple(anchor.shape)}"
        )
    b, d = anchor.shape
    if neg.dim() != 3 or neg.shape[0] != b or neg.shape[2] != d:
        raise ValueError(
            f"negatives must be [B={b}, K, d={d}] (got shape {tuple(neg.shape)})"
        )
    if mask is not None and tuple(mask.shape) != tuple(neg.shape[:2]):
        raise ValueError(
            f"mask must be [B, K] = {tuple(neg.shape[:2])} (got {tuple(mask.shape)})"
        )


def cosine_pair_loss(
    anchor: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    scale: float = 2.0,
    mask: Tensor | None = None,
    normalized: bool = False,
) -> Tensor:
    """One side of the loss: ``mean softplus(-s * (cos(a, p) - cos(a, n)))``.

    Args:
        anchor: ``[B, d]`` anchors.
        pos: ``[B, d]`` positives (row ``i`` pairs with ``anchor[i]``).
        neg: ``[B, K, d]`` negatives of every anchor.
        scale: the scale ``s`` (> 0).
        mask: optional ``[B, K]`` bool, ``False`` for negatives to ignore (e.g.
            known positives); the mean runs over the kept pairs (0 if none).
        normalized: the rows are already unit length (skips three
            normalisations; the caller normalised a table once and gathered
            rows from it, which is cheaper than normalising ``[B, K, d]``).

    Returns:
        Scalar loss.
    """
    _check(anchor, pos, neg, mask)
    if not scale > 0:
        raise ValueError(f"scale must be > 0 (got {scale})")
    if not normalized:
        anchor = F.normalize(anchor, dim=-1)
        pos = F.normalize(pos, dim=-1)
        neg = F.normalize(neg, dim=-1)
    s_pos = (anchor * pos).sum(-1, keepdim=True)  # [B, 1]
    s_neg = torch.bmm(neg, anchor.unsqueeze(-1)).squeeze(-1)  # [B, K]
    losses = F.softplus(-float(scale) * (s_pos - s_neg))
    if mask is None:
        return losses.mean() if losses.numel() else losses.sum()
    keep = mask.to(losses.dtype)
    return (losses * keep).sum() / keep.sum().clamp(min=1.0)


def symmetric_cosine_loss(
    u: Tensor,
    v: Tensor,
    u_neg: Tensor,
    v_neg: Tensor,
    *,
    scale: float = 2.0,
    u_neg_mask: Tensor | None = None,
    v_neg_mask: Tensor | None = None,
    normalized: bool = False,
) -> Tensor:
    """The symmetric cosine loss of the original system (module docstring).

    Args:
        u: ``[B, d]`` user (source) embeddings of the positive pairs.
        v: ``[B, d]`` item (destination) embeddings of the positive pairs.
        u_neg: ``[B, K, d]`` negative users for every ``v[i]`` (corrupted heads).
        v_neg: ``[B, K, d]`` negative items for every ``u[i]`` (corrupted tails).
        scale: the scale ``s`` (> 0, default 2).
        u_neg_mask: optional ``[B, K]`` bool mask of ``u_neg`` (``False`` = skip).
        v_neg_mask: optional ``[B, K]`` bool mask of ``v_neg``.
        normalized: every row is already unit length (see
            :func:`cosine_pair_loss`).

    Returns:
        Scalar ``1/2 * L(u -> v) + 1/2 * L(v -> u)``.
    """
    return 0.5 * cosine_pair_loss(
        u, v, v_neg, scale=scale, mask=v_neg_mask, normalized=normalized
    ) + 0.5 * cosine_pair_loss(
        v, u, u_neg, scale=scale, mask=u_neg_mask, normalized=normalized
    )
