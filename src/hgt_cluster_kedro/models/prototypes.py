"""Learnable prototypes and the SwAV swapped-prediction loss.

SwAV (M. Caron, I. Misra, J. Mairal, P. Goyal, P. Bojanowski, A. Joulin,
*Unsupervised Learning of Visual Features by Contrasting Cluster Assignments*,
NeurIPS 2020) makes an embedding agree with a clustering: ``K`` L2-normalised
prototypes ``C``; for two views ``a``, ``b`` of the same thing (here a user and
an item of one positive pair) the scores ``s = z C^T`` of one view give *codes*
``Q`` by a few Sinkhorn-Knopp iterations on ``exp(s / epsilon)`` (every row a
distribution over prototypes, every prototype given ``B / K`` of the batch's
mass: the equipartition that keeps every prototype in use), and the other view
must predict them with ``softmax(s / temperature)``::

    loss = -1/2 mean_b [ sum_k Q_a[b, k] log p_b[b, k]
                       + sum_k Q_b[b, k] log p_a[b, k] ]

The codes carry no gradient (computed on detached scores); the gradient reaches
the prototypes and both views' embeddings through the predictions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Prototypes", "sinkhorn", "swapped_prediction_loss"]


@torch.no_grad()
def sinkhorn(scores: Tensor, *, epsilon: float = 0.05, iters: int = 3) -> Tensor:
    """Balanced soft codes of ``scores`` (SwAV's Sinkhorn-Knopp, Algorithm 1 of
    Caron et al. 2020).

    Args:
        scores: ``[B, K]`` similarities of ``B`` samples to ``K`` prototypes.
        epsilon: entropy regularisation (> 0): smaller gives harder codes.
        iters: Sinkhorn iterations (>= 1); each scales the prototype columns to
            equal mass ``1 / K``, then the sample rows to ``1 / B``.

    Returns:
        ``[B, K]`` codes: every row sums to 1 (exactly) and every column to
        about ``B / K`` (exactly in the limit of iterations).

    Raises:
        ValueError: ``epsilon <= 0``, ``iters < 1`` or ``scores`` not 2-D.
    """
    if not float(epsilon) > 0.0:
        raise ValueError(f"epsilon must be > 0 (got {epsilon})")
    if int(iters) < 1:
        raise ValueError(f"iters must be >= 1 (got {iters})")
    if scores.dim() != 2:
        raise ValueError(f"scores must be [B, K] (got {tuple(scores.shape)})")
    b, k = scores.shape
    s = scores.detach().double() / float(epsilon)
    q = torch.exp(s - s.max())  # the shift cancels in the normalisations
    q = q / q.sum()
    for _ in range(int(iters)):
        q = q / q.sum(dim=0, keepdim=True) / k  # every prototype: mass 1 / K
        q = q / q.sum(dim=1, keepdim=True) / b  # every sample: mass 1 / B
    return (q * b).to(scores.dtype)


def swapped_prediction_loss(
    a: Tensor,
    b: Tensor,
    prototypes: Tensor,
    *,
    temperature: float = 0.1,
    epsilon: float = 0.05,
    iters: int = 3,
) -> Tensor:
    """SwAV's swapped prediction between the paired rows of ``a`` and ``b``
    (module docstring); every input is L2-normalised here.

    Args:
        a: ``[B, d]`` first views.
        b: ``[B, d]`` second views (row ``i`` pairs with ``a[i]``).
        prototypes: ``[K, d]`` prototypes.
        temperature: softmax temperature of the predictions (> 0).
        epsilon: Sinkhorn entropy regularisation (> 0).
        iters: Sinkhorn iterations (>= 1).

    Returns:
        The scalar loss (0 with a graph for an empty batch).

    Raises:
        ValueError: a bad ``temperature`` / ``epsilon`` / ``iters`` or shapes.
    """
    if not float(temperature) > 0.0:
        raise ValueError(f"temperature must be > 0 (got {temperature})")
    if a.shape != b.shape or a.dim() != 2 or prototypes.shape[1:] != a.shape[1:]:
        raise ValueError(
            f"a and b must be [B, d] and prototypes [K, d] (got {tuple(a.shape)}, "
            f"{tuple(b.shape)}, {tuple(prototypes.shape)})"
        )
    if a.shape[0] == 0:
        return (a.sum() + b.sum()) * 0.0 + prototypes.sum() * 0.0
    c = F.normalize(prototypes, dim=1)
    sa = F.normalize(a, dim=1) @ c.T
    sb = F.normalize(b, dim=1) @ c.T
    qa = sinkhorn(sa, epsilon=epsilon, iters=iters)
    qb = sinkhorn(sb, epsilon=epsilon, iters=iters)
    log_pa = F.log_softmax(sa / float(temperature), dim=1)
    log_pb = F.log_softmax(sb / float(temperature), dim=1)
    return -0.5 * ((qa * log_pb).sum(1) + (qb * log_pa).sum(1)).mean()


class Prototypes(nn.Module):
    """``num_prototypes`` learnable prototypes in embedding space (a parameter,
    so they travel in the encoder's ``state_dict`` and optimiser).

    Args:
        num_prototypes: ``K`` (>= 2).
        dim: embedding size (> 0).

    Raises:
        ValueError: for a value out of range (the message names it).
    """

    def __init__(self, num_prototypes: int, dim: int) -> None:
        super().__init__()
        if int(num_prototypes) < 2:
            raise ValueError(f"num_prototypes must be >= 2 (got {num_prototypes})")
        if int(dim) <= 0:
            raise ValueError(f"dim must be > 0 (got {dim})")
        self.num_prototypes = int(num_prototypes)
        self.dim = int(dim)
        # unit rows, random directions (global RNG: the trainer seeds it)
        self.weight = nn.Parameter(
            F.normalize(torch.randn(self.num_prototypes, self.dim), dim=1)
        )

    @property
    def config(self) -> dict[str, int]:
        """JSON-serialisable constructor arguments."""
        return {"num_prototypes": self.num_prototypes, "dim": self.dim}

    @torch.no_grad()
    def normalise_(self) -> None:
        """Project the prototypes back onto the unit sphere (after a step)."""
        self.weight.copy_(F.normalize(self.weight, dim=1))

    def assign(self, z: Tensor) -> Tensor:
        """Index of the most similar (cosine) prototype of every row of ``z``:
        a cluster read-out."""
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(
                f"embeddings must be [n, {self.dim}] (got {tuple(z.shape)})"
            )
        c = F.normalize(self.weight.detach(), dim=1).to(z.dtype)
        return (F.normalize(z, dim=1) @ c.T).argmax(dim=1)
