"""The joint self-organising map of the original HGT + SOM system.

``k`` centres live in the encoder's (L2-normalised) embedding space. For every
user embedding ``z`` of a training batch the winner ``w = argmin_j ||z - c_j||``
moves toward ``z`` and every other centre moves toward the winner, weighted by a
Gaussian neighbourhood measured in embedding space (not on a grid)::

    c_w += lr_t * (z - c_w)
    c_j += lr_t * exp(-||c_j - c_w||^2 / (2 r_t^2)) * (c_w - c_j)    (j != w)

with inverse-time decay ``lr_t = lr / (1 + t / T)`` and ``r_t = r / (1 + t / T)``
(the original's defaults: 10 centres, lr 0.1, radius 0.5). The original applied
the rule sample by sample; here the per-sample moves of a batch are averaged
(over every rank's batch under DDP, so the centres stay identical on all ranks),
which is the same rule with the step divided among the batch.

The encoder is trained with :meth:`EmbeddingSOM.loss`, the mean squared distance
of each embedding to its (fixed) winner, so the embeddings move toward the map:
that is what makes the embedding serve the clustering (T. Kohonen,
*Self-organized formation of topologically correct feature maps*, Biological
Cybernetics 43, 1982; the online rule above is the classic one, with the
neighbourhood measured between centres).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["EmbeddingSOM"]


class EmbeddingSOM(nn.Module):
    """``num_centres`` SOM centres in embedding space (buffers, not parameters).

    Args:
        num_centres: number of centres (= clusters), >= 2.
        dim: embedding size.
        lr: initial learning rate of the centre updates, in ``(0, 1]``.
        radius: initial neighbourhood radius (embedding-space distance), > 0.
        decay_steps: ``T`` of the inverse-time decay (> 0): ``lr`` and ``radius``
            are halved after ``T`` updates.

    Raises:
        ValueError: for a value out of range (the message names it).
    """

    def __init__(
        self,
        num_centres: int,
        dim: int,
        *,
        lr: float = 0.1,
        radius: float = 0.5,
        decay_steps: float = 1000.0,
    ) -> None:
        super().__init__()
        if int(num_centres) < 2:
            raise ValueError(f"num_centres must be >= 2 (got {num_centres})")
        if int(dim) <= 0:
            raise ValueError(f"dim must be > 0 (got {dim})")
        if not 0.0 < float(lr) <= 1.0:
            raise ValueError(f"lr must be in (0, 1] (got {lr})")
        if not float(radius) > 0.0:
            raise ValueError(f"radius must be > 0 (got {radius})")
        if not float(decay_steps) > 0.0:
            raise ValueError(f"decay_steps must be > 0 (got {decay_steps})")
        self.num_centres = int(num_centres)
        self.dim = int(dim)
        self.lr = float(lr)
        self.radius = float(radius)
        self.decay_steps = float(decay_steps)
        self.register_buffer("centres", torch.zeros(self.num_centres, self.dim))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @property
    def config(self) -> dict[str, float | int]:
        """JSON-serialisable constructor arguments."""
        return {
            "num_centres": self.num_centres,
            "dim": self.dim,
            "lr": self.lr,
            "radius": self.radius,
            "decay_steps": self.decay_steps,
        }

    def _check(self, z: Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(
                f"embeddings must be [n, {self.dim}] (got {tuple(z.shape)})"
            )

    @torch.no_grad()
    def initialise(self, z: Tensor, *, seed: int = 0) -> None:
        """Seed the centres from the embeddings ``z`` with k-means++
        (``sklearn.cluster.kmeans_plusplus``, seeded): spread-out starting
        centres, so fewer of them are left without users than with random rows.
        """
        from sklearn.cluster import kmeans_plusplus

        self._check(z)
        if z.shape[0] < self.num_centres:
            raise ValueError(
                f"need at least num_centres={self.num_centres} embeddings to "
                f"initialise the SOM (got {z.shape[0]})"
            )
        x = z.detach().to("cpu", torch.float64).numpy()
        centres, _ = kmeans_plusplus(
            x, self.num_centres, random_state=int(seed) % 2**32
        )
        self.centres.copy_(torch.from_numpy(centres).to(self.centres))
        self.updates.zero_()
        self.initialised.fill_(True)

    def schedule(self) -> tuple[float, float]:
        """Current ``(lr_t, radius_t)``."""
        decay = 1.0 + float(self.updates) / self.decay_steps
        return self.lr / decay, self.radius / decay

    def distances(self, z: Tensor) -> Tensor:
        """``[n, k]`` squared distances of ``z`` to the centres."""
        self._check(z)
        c = self.centres.to(z.dtype)
        return (
            z.pow(2).sum(1, keepdim=True) - 2.0 * z @ c.T + c.pow(2).sum(1)
        ).clamp_min(0.0)

    def assign(self, z: Tensor) -> Tensor:
        """Index of the winning centre of every row of ``z``."""
        return self.distances(z).argmin(dim=1)

    def loss(self, z: Tensor) -> Tensor:
        """Mean squared distance of ``z`` to its winner (centres held fixed);
        gradients flow into ``z`` only."""
        if z.shape[0] == 0:
            return z.sum() * 0.0
        d = self.distances(z)
        return d.gather(1, d.detach().argmin(1, keepdim=True)).mean()

    @torch.no_grad()
    def update(
        self,
        z: Tensor,
        reduce: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        """One SOM step on the batch ``z`` (module docstring).

        Args:
            z: ``[n, dim]`` embeddings (detached).
            reduce: optional in-place sum over ranks (e.g. ``dist.all_reduce``)
                applied to the stacked ``[move sums | count]`` so every rank
                applies the same update.
        """
        if not bool(self.initialised):
            raise ValueError("EmbeddingSOM.update before initialise()")
        self._check(z)
        lr, radius = self.schedule()
        c = self.centres
        z = z.detach().to(c)
        win = self.assign(z)
        k = self.num_centres
        counts = torch.bincount(win, minlength=k).to(c.dtype)  # wins per centre
        pull = torch.zeros_like(c).index_add_(0, win, z) - counts[:, None] * c
        # neighbours of each winner move toward it: h[w, j] (w != j)
        gap = c[None, :, :] - c[:, None, :]  # gap[w, j] = c_j - c_w
        h = torch.exp(-gap.pow(2).sum(-1) / (2.0 * radius**2))
        h.fill_diagonal_(0.0)
        weights = counts[:, None] * h  # [w, j]: samples won by w, pulling j
        neigh = -(weights[:, :, None] * gap).sum(0)  # sum_w weights * (c_w - c_j)
        packed = torch.cat(
            [pull + neigh, counts.sum().view(1, 1).expand(1, c.shape[1])]
        )
        if reduce is not None:
            packed = reduce(packed)
        total = packed[-1, 0].clamp_min(1.0)
        c.add_(lr * packed[:-1] / total)
        self.updates.add_(1)
