"""The joint self-organising map of the original HGT + SOM system.

``k`` centres live in the encoder's (L2-normalised) embedding space. For every
user embedding ``z`` of a training batch the winner ``w = argmin_j ||z - c_j||``
moves toward ``z``; how the other centres move is the ``neighbourhood``:

* ``"centres"`` (the original's rule, the default): every other centre moves
  toward the *winner*, weighted by a Gaussian of the embedding-space distance
  between the two centres::

      c_w += lr_t * (z - c_w)
      c_j += lr_t * exp(-||c_j - c_w||^2 / (2 r_t^2)) * (c_w - c_j)    (j != w)

* ``"grid"`` (the classic Kohonen map): the centres sit on a ``rows x cols``
  grid (:func:`grid_shape`) and every centre moves toward the *sample*,
  weighted by a Gaussian of its grid distance ``g(w, j)`` to the winner (``r``
  in grid cells)::

      c_j += lr_t * exp(-g(w, j)^2 / (2 r_t^2)) * (z - c_j)            (all j)

with inverse-time decay ``lr_t = lr / (1 + t / T)`` and ``r_t = r / (1 + t / T)``
(the original's defaults: 10 centres, lr 0.1, radius 0.5). The original applied
the rule sample by sample; here the per-sample moves of a batch are averaged
(over every rank's batch under DDP, so the centres stay identical on all ranks),
which is the same rule with the step divided among the batch.

Why ``"centres"`` loses centres: a centre is pulled toward its own users with
weight ``n_j / N`` (about ``1 / k`` of the batch) but toward every winner with
weight ``sum_w (n_w / N) h(w, j)``, which for centres closer than a few radii is
larger; the neighbour pulls contract the map toward the mean of the centres,
and off the unit sphere of the embeddings. For unit ``z``,
``||z - c||^2 = 1 + ||c||^2 - 2 z.c``: a centre pulled toward the middle is
close to everyone and grows into a giant cluster while others starve (the
default run: 10 of 16 centres used, one cluster of 11k users). ``spherical``
keeps the centres on the sphere (assignment by cosine), which removes that
advantage; with a k-means start (``kmeans_iters``) 100 updates on fixed HGT
embeddings keep all 16 centres (sizes 654-2375, NMI 0.583 against 0.443 for
the original rule). In ``"grid"`` every pull is toward data.

``reseed_after`` (off by default, the original has none) re-seeds dead centres:
a centre that wins fewer than ``min_share / k`` of an update's samples (none,
with ``min_share`` 0) for ``reseed_after`` consecutive updates is moved onto
one of the worst-quantised samples of that update (the largest distance to its
winner; rank 0's batch under DDP so that every rank moves it alike), the
"dead unit" repair of online k-means / neural-gas codebooks.

The encoder is trained with :meth:`EmbeddingSOM.loss`, the mean squared distance
of each embedding to its (fixed) winner, so the embeddings move toward the map:
that is what makes the embedding serve the clustering (T. Kohonen,
*Self-organized formation of topologically correct feature maps*, Biological
Cybernetics 43, 1982).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["NEIGHBOURHOODS", "EmbeddingSOM", "grid_shape"]

#: the two centre-update rules (module docstring)
NEIGHBOURHOODS = ("centres", "grid")


def grid_shape(num_centres: int) -> tuple[int, int]:
    """``(rows, cols)`` of the most square grid with ``rows * cols = k``
    (``rows <= cols``; a prime ``k`` gives one row)."""
    k = int(num_centres)
    if k < 1:
        raise ValueError(f"num_centres must be >= 1 (got {num_centres})")
    rows = max(r for r in range(1, int(k**0.5) + 1) if k % r == 0)
    return rows, k // rows


class EmbeddingSOM(nn.Module):
    """``num_centres`` SOM centres in embedding space (buffers, not parameters).

    Args:
        num_centres: number of centres (= clusters), >= 2.
        dim: embedding size.
        lr: initial learning rate of the centre updates, in ``(0, 1]``.
        radius: initial neighbourhood radius, > 0: an embedding-space distance
            (``neighbourhood="centres"``) or grid cells (``"grid"``).
        decay_steps: ``T`` of the inverse-time decay (> 0): ``lr`` and ``radius``
            are halved after ``T`` updates.
        neighbourhood: ``"centres"`` (the original's rule) or ``"grid"`` (the
            classic Kohonen map); module docstring.
        reseed_after: re-seed a centre after this many consecutive starved
            updates (>= 0; 0 = never, the original).
        min_share: a centre is starved on an update where it wins fewer than
            ``min_share / num_centres`` of the samples, in ``[0, 1)`` (0: only
            when it wins none).
        spherical: project the centres back onto the unit sphere after every
            update and re-seeding (the encoder's outputs are unit vectors).

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
        neighbourhood: str = "centres",
        reseed_after: int = 0,
        min_share: float = 0.0,
        spherical: bool = False,
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
        if neighbourhood not in NEIGHBOURHOODS:
            raise ValueError(
                f"neighbourhood must be one of {NEIGHBOURHOODS} (got {neighbourhood!r})"
            )
        if int(reseed_after) < 0:
            raise ValueError(f"reseed_after must be >= 0 (got {reseed_after})")
        if not 0.0 <= float(min_share) < 1.0:
            raise ValueError(f"min_share must be in [0, 1) (got {min_share})")
        self.num_centres = int(num_centres)
        self.dim = int(dim)
        self.lr = float(lr)
        self.radius = float(radius)
        self.decay_steps = float(decay_steps)
        self.neighbourhood = str(neighbourhood)
        self.reseed_after = int(reseed_after)
        self.min_share = float(min_share)
        self.spherical = bool(spherical)
        rows, cols = grid_shape(self.num_centres)
        cell = torch.arange(self.num_centres)
        pos = torch.stack([cell // cols, cell % cols], 1).double()
        #: squared grid distances between centres (``"grid"``)
        self.register_buffer(
            "grid_d2", torch.cdist(pos, pos).pow(2).float(), persistent=False
        )
        self.register_buffer("centres", torch.zeros(self.num_centres, self.dim))
        # consecutive starved updates per centre; saved only when re-seeding is on
        # (model files of the original rule keep their tensors)
        self.register_buffer(
            "starved",
            torch.zeros(self.num_centres, dtype=torch.long),
            persistent=self.reseed_after > 0,
        )
        self.reseeded = 0  #: centres re-seeded so far (this process, for logs)
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
            "neighbourhood": self.neighbourhood,
            "reseed_after": self.reseed_after,
            "min_share": self.min_share,
            "spherical": self.spherical,
        }

    def _check(self, z: Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(
                f"embeddings must be [n, {self.dim}] (got {tuple(z.shape)})"
            )

    @torch.no_grad()
    def initialise(self, z: Tensor, *, seed: int = 0, kmeans_iters: int = 0) -> None:
        """Seed the centres from the embeddings ``z`` with k-means++
        (``sklearn.cluster.kmeans_plusplus``, seeded): spread-out starting
        centres, so fewer of them are left without users than with random rows;
        then ``kmeans_iters`` Lloyd iterations (``sklearn.cluster.KMeans`` from
        those seeds; 0 = k-means++ alone, the original). A few hundred SOM
        updates hardly move k-means++ seeds (each centre gets about ``1 / k`` of
        every update), so starting from k-means puts the map at the clustering
        the encoder's embedding already has.
        """
        from sklearn.cluster import KMeans, kmeans_plusplus

        if int(kmeans_iters) < 0:
            raise ValueError(f"kmeans_iters must be >= 0 (got {kmeans_iters})")

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
        if int(kmeans_iters) > 0:
            km = KMeans(self.num_centres, init=centres, n_init=1)
            centres = km.set_params(max_iter=int(kmeans_iters)).fit(x).cluster_centers_
        self.centres.copy_(torch.from_numpy(centres).to(self.centres))
        self._project()
        self.updates.zero_()
        self.starved.zero_()
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
        """One SOM step on the batch ``z`` (module docstring), then the re-seeding
        of starved centres when ``reseed_after > 0``.

        Args:
            z: ``[n, dim]`` embeddings (detached).
            reduce: optional in-place sum over ranks (e.g. ``dist.all_reduce``)
                applied to the stacked ``[move sums | count]`` so every rank
                applies the same update (and, when a centre is re-seeded, to
                rank 0's worst-quantised samples).
        """
        if not bool(self.initialised):
            raise ValueError("EmbeddingSOM.update before initialise()")
        self._check(z)
        lr, radius = self.schedule()
        c = self.centres
        z = z.detach().to(c)
        d = self.distances(z)
        win = d.argmin(dim=1)
        k = self.num_centres
        counts = torch.bincount(win, minlength=k).to(c.dtype)  # wins per centre
        sums = torch.zeros_like(c).index_add_(0, win, z)  # sum of z per winner
        if self.neighbourhood == "grid":
            # h[w, j]: pull of a sample won by w on centre j (h[w, w] = 1)
            h = torch.exp(-self.grid_d2.to(c) / (2.0 * radius**2))
            move = h.T @ sums - (h.T @ counts)[:, None] * c
        else:
            pull = sums - counts[:, None] * c
            # neighbours of each winner move toward it: h[w, j] (w != j)
            gap = c[None, :, :] - c[:, None, :]  # gap[w, j] = c_j - c_w
            h = torch.exp(-gap.pow(2).sum(-1) / (2.0 * radius**2))
            h.fill_diagonal_(0.0)
            weights = counts[:, None] * h  # [w, j]: samples won by w, pulling j
            move = pull - (weights[:, :, None] * gap).sum(0)
        packed = torch.cat(
            [
                move,
                counts.view(k, 1).expand(k, c.shape[1]),
                counts.sum().view(1, 1).expand(1, c.shape[1]),
            ]
        )
        if reduce is not None:
            packed = reduce(packed)
        total = packed[-1, 0].clamp_min(1.0)
        c.add_(lr * packed[:k] / total)
        self.updates.add_(1)
        if self.reseed_after > 0:
            wins = packed[k : 2 * k, 0]
            self._reseed(wins, total, z, d.gather(1, win[:, None])[:, 0], reduce)
        self._project()

    @torch.no_grad()
    def _project(self) -> None:
        """Centres back onto the unit sphere (``spherical``)."""
        if self.spherical:
            self.centres.copy_(torch.nn.functional.normalize(self.centres, dim=1))

    @torch.no_grad()
    def _reseed(
        self,
        wins: Tensor,
        total: Tensor,
        z: Tensor,
        error: Tensor,
        reduce: Callable[[Tensor], Tensor] | None,
    ) -> None:
        """Count starved updates; move centres starved ``reseed_after`` times in
        a row onto the worst-quantised samples (rank 0's under ``reduce``)."""
        starving = wins < self.min_share * total / self.num_centres
        if self.min_share == 0.0:
            starving = wins == 0
        self.starved.copy_(torch.where(starving, self.starved + 1, 0))
        dead = torch.nonzero(self.starved >= self.reseed_after).flatten()
        m = int(dead.numel())
        if m == 0:
            return
        seeds = torch.zeros(m, self.dim, dtype=z.dtype, device=z.device)
        have = torch.zeros(m, 1, dtype=z.dtype, device=z.device)
        worst = error.topk(min(m, int(error.numel()))).indices
        seeds[: worst.numel()] = z[worst]
        have[: worst.numel()] = 1.0
        if reduce is not None:  # every rank takes rank 0's samples
            import torch.distributed as dist

            mine = float(dist.get_rank() == 0) if dist.is_initialized() else 1.0
            packed = reduce(torch.cat([seeds, have], 1) * mine)
            seeds, have = packed[:, :-1], packed[:, -1:]
        ok = have[:, 0] > 0
        seeds = seeds / have.clamp_min(1.0)  # one contributing rank: / 1
        self.centres[dead[ok]] = seeds[ok].to(self.centres)
        self.starved[dead[ok]] = 0
        self.reseeded += int(ok.sum())
