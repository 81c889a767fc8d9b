"""Exact k-means (Lloyd) in PyTorch: pruned, with bf16 screening.

:func:`kmeans` returns the iterates of a plain float32 Lloyd loop (assign every
point to its nearest centroid, move every centroid to the mean of its points),
on CPU or GPU, with three devices to do less work:

* **Hamerly's bounds** (G. Hamerly, *Making k-means even faster*, SDM 2010): per
  point an upper bound ``u`` on the distance to its centroid and a lower bound
  ``l`` on the distance to every other one. After centroid moves ``delta``,
  ``u += delta[a]`` and ``l -= max_{j != a} delta[j]``; a point with
  ``u <= max(l, s[a])`` (``s[j]``: half the distance from centroid ``j`` to its
  nearest other centroid) cannot change cluster and is skipped. Bounds are
  updated and tested chunk by chunk in parallel. Measured and not kept (1 M x 64
  overlapping points, k = 64): Hamerly's tightening of ``u`` before the test
  (4 % fewer rows, its gather cost more than it saved) and Yinyang group bounds
  (Ding et al., ICML 2015; 9 % fewer rows with 8 groups, but the per-group
  minima, a reduction over 8 columns, made each row 25 % dearer).
* **One matmul per chunk** for the rest: ``[x, ||x||^2, 1] @ [-2c, 1, ||c||^2]^T``
  gives the squared distances; the argmin is an ``amin`` over ``int32`` keys with
  the centroid index packed into the low mantissa bits (``torch.argmin`` is not
  vectorised on CPU).
* **bf16 screening** (``precision``): a bf16 matmul (2-4x the float32 rate on
  CPUs with AVX512-BF16, tensor cores on GPUs) decides the rows whose margin
  exceeds a proven error bound; the few others are recomputed in float32.

On CPU the screening epilogue and the bound pass are compiled numba kernels
(:mod:`._kmeans_kernels`, one pass over a block instead of six to eight torch
ops); the torch versions run on GPUs. Centroid sums are kept in ``float64`` and updated with the points that changed
cluster only. :func:`fit_clusters` dispatches between this backend and
scikit-learn's ``KMeans`` / ``MiniBatchKMeans``; all return a
:class:`KMeansResult`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from ..runtime import cpu_has_bf16, resolve_device

T = TypeVar("T")
INITS = ("k-means++", "random")
BACKENDS = ("torch", "sklearn", "sklearn_minibatch", "auto")


@dataclass(frozen=True)
class KMeansResult:
    """Outcome of a k-means fit.

    Attributes:
        labels: ``int64 [n]`` cluster of every point (consistent with
            ``centroids``: the nearest one).
        centroids: ``float32 [k, d]`` cluster centres.
        inertia: sum of squared distances of the points to their centroid.
        n_iter: Lloyd iterations (centroid updates) of the best init.
        backend: which implementation produced it.
    """

    labels: np.ndarray
    centroids: np.ndarray
    inertia: float
    n_iter: int
    backend: str = "torch"


# --------------------------------------------------------------------------- checks


def _as_float_tensor(x: np.ndarray | Tensor, device: torch.device) -> Tensor:
    """``x`` as a contiguous 2-D ``float32`` tensor on ``device`` (no copy if it is
    already one)."""
    t = torch.from_numpy(np.asarray(x)) if not isinstance(x, Tensor) else x.detach()
    if t.ndim != 2:
        raise ValueError(f"x must be 2-D [n, d], got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"x must be non-empty, got shape {tuple(t.shape)}")
    t = t.to(device=device, dtype=torch.float32).contiguous()
    # One cheap pass: a NaN/inf element makes its row sum non-finite (a finite
    # row may overflow to inf too, hence the exact check only in that case).
    if not bool(torch.isfinite(t.sum(dim=1)).all()):
        finite = torch.isfinite(t).all(dim=1)
        if bool(finite.all()):
            return t
        bad = torch.nonzero(~finite).squeeze(1)
        raise ValueError(
            f"x has {bad.numel()} rows with NaN/inf, e.g. rows {bad[:5].tolist()}"
        )
    return t


def _check_k(k: int, n: int) -> int:
    if isinstance(k, bool) or int(k) != k:
        raise ValueError(f"k must be an integer, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got k={k}")
    if k > n:
        raise ValueError(f"k={k} clusters but x has only n={n} points (k > n)")
    return k


def _check_common(n_init: int, max_iter: int, tol: float) -> None:
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")


@contextmanager
def _num_threads(n_threads: int | None):
    """Temporarily set ``torch.set_num_threads`` (restored afterwards)."""
    if n_threads is None:
        yield
        return
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1 or None, got {n_threads}")
    old = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(old)


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _run_chunks(
    n: int,
    batch_size: int,
    workers: int,
    fn: Callable[[int, int], T],
) -> list[T]:
    """Run ``fn(start, stop)`` over the chunks of ``[0, n)``, coarse-grained.

    The chunks are split into ``workers`` contiguous runs, each handled by one
    Python thread (torch ops release the GIL) while torch's own intra-op pool is
    kept at one thread by :func:`kmeans`: one join per pass instead of an OpenMP
    barrier per small op, which matters on busy machines. ``fn`` is called once
    per run with its bounds and must loop over ``batch_size`` chunks itself;
    returns the per-run results in order (deterministic for a given
    ``workers``).
    """
    n_chunks = -(-n // batch_size) if n else 0
    runs = max(1, min(workers, n_chunks))
    cuts = [min(n, (n_chunks * r // runs) * batch_size) for r in range(runs + 1)]
    if runs == 1:
        return [fn(0, n)]
    pool = _POOLS.get(runs)
    if pool is None:
        pool = _POOLS[runs] = ThreadPoolExecutor(runs, thread_name_prefix="kmeans")
    futures = [pool.submit(fn, cuts[r], cuts[r + 1]) for r in range(runs)]
    return [f.result() for f in futures]


# ------------------------------------------------------------------------ kernels


_PACK_MAX_K = 256  # float32 keys: the index takes up to 8 low mantissa bits
_BF16_MAX_K = 1 << 16  # bf16 keys widened to float32 have 16 free low bits
_U = 2.0**-9  # unit roundoff of bfloat16


def _sq_dist(x: Tensor, x_sq: Tensor, c: Tensor, c_sq: Tensor) -> Tensor:
    """Squared euclidean distances ``[len(x), len(c)]`` by the expansion."""
    d = torch.addmm(c_sq.unsqueeze(0), x, c.T, beta=1.0, alpha=-2.0)
    return d.add_(x_sq.unsqueeze(1)).clamp_(min=0.0)


def _split3(t: Tensor) -> Tensor:
    """``[..., 3]`` bf16 terms summing to the float32 ``t`` (24 bits)."""
    t1 = t.to(torch.bfloat16)
    r = t - t1.float()
    t2 = r.to(torch.bfloat16)
    t3 = (r - t2.float()).to(torch.bfloat16)
    return torch.stack([t1, t2, t3], dim=-1)


@dataclass
class _Points:
    """The (centred) points in the layouts the assignment kernels read."""

    xa: Tensor  # [n, d + 2] float32: [x, ||x||^2, 1]
    xb: Tensor | None  # [n, d + 6] bf16: [x, split3(||x||^2), 1, 1, 1], or None
    norm: Tensor  # [n] ||x||

    @property
    def d(self) -> int:
        return self.xa.shape[1] - 2

    @property
    def x(self) -> Tensor:
        return self.xa[:, : self.d]

    @property
    def sq(self) -> Tensor:
        return self.xa[:, self.d]


def _make_points(
    x: Tensor, mean: Tensor, bf16: bool, batch_size: int = 65536, workers: int = 1
) -> _Points:
    """Points ``x - mean`` (centring keeps norms, hence rounding errors, small),
    built chunk by chunk over ``workers`` threads."""
    n, d = x.shape
    xa = torch.empty(n, d + 2, dtype=torch.float32, device=x.device)
    norm = torch.empty(n, dtype=torch.float32, device=x.device)
    xb = torch.empty(n, d + 6, dtype=torch.bfloat16, device=x.device) if bf16 else None

    def run(lo: int, hi: int) -> None:
        for start in range(lo, hi, batch_size):
            stop = min(start + batch_size, hi)
            xc = xa[start:stop, :d]
            torch.sub(x[start:stop], mean, out=xc)
            torch.linalg.vector_norm(xc, dim=1, out=norm[start:stop])
            xa[start:stop, d] = norm[start:stop].square()
            xa[start:stop, d + 1] = 1.0
            if xb is not None:
                xb[start:stop, :d] = xc
                xb[start:stop, d : d + 3] = _split3(xa[start:stop, d])
                xb[start:stop, d + 3 :] = 1.0

    _run_chunks(n, batch_size, workers, run)
    return _Points(xa=xa, xb=xb, norm=norm)


@dataclass
class _Centroids:
    """Centroids in the layouts the assignment kernels read."""

    c: Tensor  # [k, d] float32
    ca: Tensor  # [k, d + 2]: [-2c, 1, ||c||^2], so xa @ ca.T = squared distances
    cb: Tensor | None  # [k, d + 6] bf16: [-2c, 1, 1, 1, split3(||c||^2)]
    err_a: float  # bf16 screening error: err_a ||x|| + err_b (||x|| + cmax)^2
    err_b: float
    cmax: float


def _make_centroids(c: Tensor, pts: _Points) -> _Centroids:
    k, d = c.shape
    ca = torch.empty(k, d + 2, dtype=torch.float32, device=c.device)
    ca[:, :d] = -2.0 * c
    ca[:, d] = 1.0
    c_sq = (c * c).sum(dim=1)
    ca[:, d + 1] = c_sq
    cb = None
    if pts.xb is not None:
        cb = torch.empty(k, d + 6, dtype=torch.bfloat16, device=c.device)
        cb[:, :d] = -2.0 * c
        cb[:, d : d + 3] = 1.0
        cb[:, d + 3 :] = _split3(c_sq)
    cmax = float(c_sq.max().sqrt())
    # Screened key = bf16(fp32 sum of the products). Rounding x and c to bf16
    # moves -2 x.c by at most 2 (2u + u^2) ||x|| ||c||; the split norms are exact
    # to 2**-24 relative, the float32 accumulation of d + 6 terms adds at most
    # (d + 6) 2**-24 (||x|| + ||c||)^2. The final bf16 rounding (relative u) is
    # handled by the caller. 1% slack on top.
    return _Centroids(
        c=c,
        ca=ca,
        cb=cb,
        err_a=1.01 * 2.0 * (2.0 * _U + _U * _U) * cmax,
        err_b=1.01 * (d + 8) * 2.0**-24,
        cmax=cmax,
    )


def _pack_bits(k: int) -> int:
    return max(1, (k - 1).bit_length())


def _top2_packed(
    keys: Tensor, out: tuple[Tensor, Tensor], low: int, jidx: Tensor, flat: Tensor
) -> None:
    """Smallest two of each row of ``keys`` (``int32`` view of non-negative
    ``float32`` with zeroed ``low`` bits), written into ``out = (m1, m2)``.

    ``torch.argmin`` is not vectorised on CPU (some 20x slower than ``amin``).
    Non-negative floats order like their ``int32`` bit patterns, so the column
    index goes into the low bits and one ``amin`` gives the minimum and its index
    together (ties to the lower index). ``keys`` is overwritten.
    """
    m1, m2 = out
    keys.bitwise_or_(jidx)
    torch.amin(keys, dim=1, out=m1)
    keys.view(-1)[flat[: keys.shape[0]] + (m1 & low)] = torch.iinfo(torch.int32).max
    torch.amin(keys, dim=1, out=m2)


def _decode(m: Tensor, low: int, up: bool) -> Tensor:
    """Packed key -> float value, rounded up (``up``) or down to its bucket end."""
    return ((m | low) if up else (m & ~low)).view(torch.float32)


def _assign_exact(
    pts: _Points,
    cen: _Centroids,
    rows: Tensor | None,
    batch_size: int,
    workers: int = 1,
) -> tuple[Tensor, Tensor, Tensor]:
    """Nearest and second-nearest centroid by float32 matmuls.

    For ``k <= 256`` the index is packed into the ``ceil(log2 k)`` lowest mantissa
    bits of the squared distances (:func:`_top2_packed`): distances within a
    relative ``2**-(23 - ceil(log2 k))`` (``7.6e-6`` for ``k = 64``) tie, and the
    distances returned are rounded outwards (nearest up, second-nearest down) so
    they stay valid bounds. Larger ``k`` use an exact masked reduction.

    Args:
        pts: the points.
        cen: the centroids.
        rows: row ids to assign (gathered chunk by chunk), or ``None`` for all.
        batch_size: rows per matmul.
        workers: threads over the chunks (:func:`_run_chunks`).

    Returns:
        ``(labels int64, d1, d2)``: non-squared distances to the nearest and the
        second-nearest centroid (``inf`` when ``k == 1``).
    """
    xa, ca = pts.xa, cen.ca
    n, k = (xa.shape[0] if rows is None else rows.numel()), ca.shape[0]
    dev = xa.device

    def chunk(start: int, stop: int) -> Tensor:
        if rows is None:
            return xa[start:stop]
        return xa.index_select(0, rows[start:stop])

    if k == 1:
        sq = torch.cat(
            [chunk(s, s + batch_size) @ ca.T for s in range(0, n, batch_size)]
        )
        return (
            torch.zeros(n, dtype=torch.int64, device=dev),
            sq.squeeze(1).clamp_(min=0.0).sqrt_(),
            torch.full((n,), float("inf"), device=dev),
        )
    labels = torch.empty(n, dtype=torch.int64, device=dev)
    d1 = torch.empty(n, dtype=torch.float32, device=dev)
    d2 = torch.empty(n, dtype=torch.float32, device=dev)
    if k <= _PACK_MAX_K:
        low = (1 << _pack_bits(k)) - 1
        jidx = torch.arange(k, dtype=torch.int32, device=dev)
        flat = torch.arange(min(batch_size, n), device=dev) * k

        def packed(lo: int, hi: int) -> None:
            m1 = torch.empty(min(batch_size, hi - lo), dtype=torch.int32, device=dev)
            m2 = torch.empty_like(m1)
            for start in range(lo, hi, batch_size):
                stop = min(start + batch_size, hi)
                a, b = m1[: stop - start], m2[: stop - start]
                dist = torch.mm(chunk(start, stop), ca.T).clamp_(min=0.0)
                keys = dist.view(torch.int32).bitwise_and_(~low)
                _top2_packed(keys, (a, b), low, jidx, flat)
                labels[start:stop] = a & low
                torch.sqrt(_decode(a, low, True), out=d1[start:stop])
                torch.sqrt(_decode(b, low, False), out=d2[start:stop])

        _run_chunks(n, batch_size, workers, packed)
        return labels, d1, d2
    rev = torch.arange(k, 0, -1, dtype=torch.float32, device=dev)  # k - j
    zero = torch.zeros((), dtype=torch.float32, device=dev)

    def masked(lo: int, hi: int) -> None:
        for start in range(lo, hi, batch_size):
            stop = min(start + batch_size, hi)
            dist = torch.mm(chunk(start, stop), ca.T).clamp_(min=0.0)
            v1 = dist.amin(dim=1, keepdim=True)
            # largest k - j over the minima = smallest j (argmin's tie rule)
            lab = k - torch.where(dist == v1, rev, zero).amax(dim=1).long()
            labels[start:stop] = lab
            dist.scatter_(1, lab.unsqueeze(1), float("inf"))  # ties stay in
            torch.sqrt(v1.squeeze(1), out=d1[start:stop])
            torch.sqrt(dist.amin(dim=1), out=d2[start:stop])

    _run_chunks(n, batch_size, workers, masked)
    return labels, d1, d2


def _assign_rows(
    pts: _Points,
    cen: _Centroids,
    batch_size: int,
    rows: Tensor | None = None,
    workers: int = 1,
) -> tuple[Tensor, Tensor, Tensor]:
    """Nearest and second-nearest centroid of every row (or of ``rows``).

    With bf16 copies, one bf16 matmul per chunk (2-4x the float32 rate on CPUs
    with AVX512-BF16, tensor cores on GPUs) screens every row first:
    ``[x, ||x||^2 (3 bf16 terms), 1, 1, 1] @ [-2c, 1, 1, 1, ||c||^2 (3 terms)]^T``
    accumulates squared distances in float32 and rounds them to bf16, whose
    16-bit mantissa tail, once widened to float32, holds the centroid index for
    an exact packed ``amin``. With ``e`` the proven error bound of a screened
    distance (see :func:`_make_centroids`), a row whose best key, rounded up by
    ``e``, is still below the second key rounded down by ``e`` provably has that
    nearest centroid (in exact arithmetic); its bounds are widened by ``e``. The
    other rows (a few percent) are recomputed by :func:`_assign_exact`. On CPU
    with numba, one compiled pass over the bf16 block does the same
    (:func:`~hgt_cluster_kedro.clustering._kmeans_kernels.screen_block`).

    Returns:
        ``(labels int64, d1, d2)`` as :func:`_assign_exact`.
    """
    k = cen.ca.shape[0]
    if pts.xb is None or cen.cb is None or k == 1 or k > _BF16_MAX_K:
        return _assign_exact(pts, cen, rows, batch_size, workers)
    xb_all, cb = pts.xb, cen.cb
    n = xb_all.shape[0] if rows is None else rows.numel()
    dev = xb_all.device
    labels = torch.empty(n, dtype=torch.int64, device=dev)
    d1 = torch.empty(n, dtype=torch.float32, device=dev)
    d2 = torch.empty(n, dtype=torch.float32, device=dev)

    kernel = _kernel("screen_block") if dev.type == "cpu" else None

    def torch_block(size: int) -> Callable[[Tensor, Tensor, int, int], Tensor]:
        """Screening of one block with torch ops (GPUs; CPU without numba)."""
        low = 0xFFFF
        jidx = torch.arange(k, dtype=torch.int32, device=dev)
        flat = torch.arange(size, device=dev) * k
        buf = torch.empty(size, k, dtype=torch.float32, device=dev)
        m1 = torch.empty(size, dtype=torch.int32, device=dev)
        m2 = torch.empty_like(m1)

        def run(xb: Tensor, norm: Tensor, start: int, stop: int) -> Tensor:
            keys_f = buf[: stop - start]
            a, b = m1[: stop - start], m2[: stop - start]
            # bf16 -> float32 is exact. No clamp: a key rounded below zero orders
            # wrongly against another negative one, but both are then within the
            # error bound of zero and the row is recomputed exactly below.
            keys_f.copy_(torch.mm(xb, cb.T))
            _top2_packed(keys_f.view(torch.int32), (a, b), low, jidx, flat)
            err = norm * cen.err_a + (norm + cen.cmax).square_().mul_(cen.err_b)
            hi1 = _decode(a, low, False).mul_(1.0 + 2.0 * _U).add_(err)
            lo2 = _decode(b, low, False).mul_(1.0 - 2.0 * _U).sub_(err)
            labels[start:stop] = a & low
            torch.sqrt(hi1.clamp(min=0.0), out=d1[start:stop])
            torch.sqrt(lo2.clamp(min=0.0), out=d2[start:stop])
            return torch.nonzero(hi1 >= lo2).squeeze(1)

        return run

    def compiled_block(size: int) -> Callable[[Tensor, Tensor, int, int], Tensor]:
        """The same in one compiled pass over the bf16 block (CPU)."""
        assert kernel is not None
        block = torch.empty(size, k, dtype=torch.bfloat16)
        found = np.empty(size, dtype=np.int64)

        def run(xb: Tensor, norm: Tensor, start: int, stop: int) -> Tensor:
            keys = block[: stop - start]
            torch.mm(xb, cb.T, out=keys)
            count = kernel(
                keys.view(torch.int16).numpy(),
                norm.numpy(),
                cen.err_a,
                cen.err_b,
                cen.cmax,
                _U,
                labels[start:stop].numpy(),
                d1[start:stop].numpy(),
                d2[start:stop].numpy(),
                found,
            )
            return torch.from_numpy(found[:count].copy())

        return run

    def screen(lo: int, hi: int) -> Tensor:
        """Screen rows ``[lo, hi)`` block by block; returns the undecided ones."""
        size = min(batch_size, hi - lo)
        block = compiled_block(size) if kernel is not None else torch_block(size)
        unsure = []
        for start in range(lo, hi, batch_size):
            stop = min(start + batch_size, hi)
            r = None if rows is None else rows[start:stop]
            xb = xb_all[start:stop] if r is None else xb_all.index_select(0, r)
            norm = pts.norm[start:stop] if r is None else pts.norm.index_select(0, r)
            bad = block(xb, norm, start, stop)
            if bad.numel():
                unsure.append(bad + start)
        return _cat_rows(unsure, dev)

    unsure = torch.cat(_run_chunks(n, batch_size, workers, screen)).to(dev)
    if unsure.numel():
        lab_e, d1_e, d2_e = _assign_exact(
            pts,
            cen,
            unsure if rows is None else rows[unsure],
            batch_size,
            workers,
        )
        labels[unsure] = lab_e
        d1[unsure] = d1_e
        d2[unsure] = d2_e
    return labels, d1, d2


def _cat_rows(parts: list[Tensor], dev: torch.device) -> Tensor:
    """Row ids collected chunk by chunk, as one ``int64`` tensor."""
    if not parts:
        return torch.empty(0, dtype=torch.int64, device=dev)
    return torch.cat(parts)


@functools.cache
def _kernel(name: str) -> Callable[..., int] | None:
    """A compiled CPU pass of :mod:`._kmeans_kernels`, or ``None`` without
    numba (the torch path then runs, as on GPUs); looked up once."""
    try:
        from . import _kmeans_kernels
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    return getattr(_kmeans_kernels, name)


def _row_sq_dist_to_own(
    x: Tensor, c: Tensor, labels: Tensor, batch_size: int
) -> Tensor:
    """Exact ``||x_i - c[labels_i]||^2`` (difference, not the expansion)."""
    out = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
    for start in range(0, x.shape[0], batch_size):
        stop = min(start + batch_size, x.shape[0])
        diff = x[start:stop] - c[labels[start:stop]]
        out[start:stop] = (diff * diff).sum(dim=1)
    return out


def inertia_of(
    x: np.ndarray | Tensor,
    centroids: np.ndarray | Tensor,
    *,
    batch_size: int = 65536,
    device: str = "cpu",
) -> tuple[float, np.ndarray]:
    """Inertia of ``x`` w.r.t. ``centroids`` with every point at its nearest one.

    One shared definition for comparing implementations: nearest centroid by the
    ``float32`` expansion, then the exact squared distance to it summed in
    ``float64``.

    Args:
        x: ``[n, d]`` points.
        centroids: ``[k, d]`` centres.
        batch_size: rows per chunk (default ``65536``).
        device: torch device (default ``"cpu"``).

    Returns:
        ``(inertia, labels int64 [n])``.
    """
    dev = resolve_device(device)
    xt = _as_float_tensor(x, dev)
    ct = _as_float_tensor(centroids, dev)
    if ct.shape[1] != xt.shape[1]:
        raise ValueError(
            f"centroids have d={ct.shape[1]} but x has d={xt.shape[1]} columns"
        )
    mean = xt.mean(dim=0)  # float32 (cascade sum): centring needs no more
    pts = _make_points(xt, mean, bf16=False)
    labels, _, _ = _assign_rows(pts, _make_centroids(ct - mean, pts), batch_size)
    sq = _row_sq_dist_to_own(xt, ct, labels, batch_size)
    return float(sq.double().sum()), labels.cpu().numpy()


# ---------------------------------------------------------------------- init


def _kmeans_plus_plus(
    x: Tensor,
    k: int,
    gen: torch.Generator,
    sample_size: int | None,
    n_local_trials: int | None,
) -> Tensor:
    """Greedy k-means++ (as scikit-learn) on a seeded sample of ``x``."""
    n = x.shape[0]
    if sample_size is not None and n > sample_size:
        rows = torch.randperm(n, generator=gen, device=x.device)[:sample_size]
        xs = x[rows]
    else:
        xs = x
    ns = xs.shape[0]
    trials = 2 + int(math.log(k)) if n_local_trials is None else int(n_local_trials)
    if trials < 1:
        raise ValueError(f"n_local_trials must be >= 1, got {n_local_trials}")
    xs_sq = (xs * xs).sum(dim=1)
    chosen = torch.empty(k, dtype=torch.int64, device=x.device)
    chosen[0] = torch.randint(ns, (1,), generator=gen, device=x.device)[0]
    closest = _sq_dist(xs[chosen[:1]], xs_sq[chosen[:1]], xs, xs_sq)[0]
    for j in range(1, k):
        cum = torch.cumsum(closest.double(), dim=0)
        total = cum[-1]
        if float(total) <= 0.0:  # fewer distinct points than k: any point will do
            cand = torch.randint(ns, (trials,), generator=gen, device=x.device)
        else:
            r = torch.rand(trials, generator=gen, device=x.device, dtype=torch.float64)
            cand = torch.searchsorted(cum, r * total).clamp_(max=ns - 1)
        d_cand = _sq_dist(xs[cand], xs_sq[cand], xs, xs_sq)  # [trials, ns]
        torch.minimum(d_cand, closest.unsqueeze(0), out=d_cand)
        best = int(torch.argmin(d_cand.double().sum(dim=1)))
        chosen[j] = cand[best]
        closest = d_cand[best]
    return xs[chosen].clone()


def _initial_centroids(
    x: Tensor,
    k: int,
    init: str | np.ndarray | Tensor,
    gen: torch.Generator,
    *,
    init_sample_size: int | None,
    n_local_trials: int | None,
    mean: Tensor,
) -> Tensor:
    """Initial centroids in the centred frame of ``x`` (``mean`` already removed)."""
    if isinstance(init, str):
        if init == "k-means++":
            return _kmeans_plus_plus(x, k, gen, init_sample_size, n_local_trials)
        if init == "random":
            rows = torch.randperm(x.shape[0], generator=gen, device=x.device)[:k]
            return x[rows].clone()
        raise ValueError(f"init must be one of {INITS} or a [k, d] array, got {init!r}")
    c = torch.as_tensor(np.asarray(init) if not isinstance(init, Tensor) else init)
    if tuple(c.shape) != (k, x.shape[1]):
        raise ValueError(
            f"init array must have shape (k, d)={(k, x.shape[1])}, got {tuple(c.shape)}"
        )
    c = c.to(device=x.device, dtype=torch.float32)
    if not bool(torch.isfinite(c).all()):
        raise ValueError("init array has NaN/inf values")
    return c - mean


# --------------------------------------------------------------------- Lloyd


def _half_min_center_dist(c: Tensor) -> Tensor:
    """``s[j] = 0.5 * min_{j' != j} ||c_j - c_j'||`` (``inf`` when ``k == 1``)."""
    k = c.shape[0]
    if k == 1:
        return torch.full((1,), float("inf"), device=c.device)
    c_sq = (c * c).sum(dim=1)
    d = _sq_dist(c, c_sq, c, c_sq)
    d.fill_diagonal_(float("inf"))
    return 0.5 * d.amin(dim=1).sqrt_()


def _lloyd(
    pts: _Points,
    c: Tensor,
    *,
    max_iter: int,
    tol_abs: float,
    batch_size: int,
    prune: bool,
    full_pass_fraction: float,
    workers: int,
) -> tuple[Tensor, Tensor, int, float]:
    """Lloyd iterations from centroids ``c`` (in the centred frame of ``pts``).

    Returns:
        ``(labels, centroids, n_iter, inertia)``, labels consistent with the
        centroids.
    """
    x = pts.x
    n, d = x.shape
    k = c.shape[0]
    dev = x.device
    labels = torch.full((n,), -1, dtype=torch.int64, device=dev)
    upper = torch.empty(n, dtype=torch.float32, device=dev)
    lower = torch.empty(n, dtype=torch.float32, device=dev)
    sums = torch.zeros(k, d, dtype=torch.float64, device=dev)
    counts = torch.zeros(k, dtype=torch.float64, device=dev)
    stale = True  # bounds invalid (start, or after re-seeding empty clusters)
    strict = False
    n_iter = 0

    # centroid drifts not yet applied to the bounds: (drift [k], the index of
    # the largest drift, the largest and the second largest)
    pending: tuple[Tensor, int, float, float] | None = None

    def candidates(c: Tensor) -> Tensor:
        """Rows that may change cluster (the bound test), in order; applies the
        pending drifts to the bounds. One parallel pass over chunks of rows."""
        s_half = _half_min_center_dist(c)
        step = max(batch_size, 65536)  # elementwise only: larger chunks
        kernel = _kernel("bound_block") if dev.type == "cpu" else None

        def run_compiled(lo: int, hi: int) -> Tensor:
            assert kernel is not None
            out = np.empty(hi - lo, dtype=np.int64)
            drift, top, v0, v1 = pending or (s_half, -1, 0.0, 0.0)
            count = kernel(
                labels[lo:hi].numpy(),
                upper[lo:hi].numpy(),
                lower[lo:hi].numpy(),
                s_half.numpy(),
                drift.numpy(),
                top,
                v0,
                v1,
                pending is not None,
                out,
            )
            return torch.from_numpy(out[:count]).add_(lo)

        def run(lo: int, hi: int) -> Tensor:
            if kernel is not None:
                return run_compiled(lo, hi)
            found = []
            for start in range(lo, hi, step):
                stop = min(start + step, hi)
                lab, up, low_ = labels[start:stop], upper[start:stop], lower[start:stop]
                if pending is not None:
                    drift, top, v0, v1 = pending
                    up.add_(drift[lab])
                    low_.sub_(torch.where(lab == top, v1, v0))  # others' largest
                bound = torch.maximum(s_half[lab], low_)
                found.append(torch.nonzero(up > bound).squeeze(1) + start)
            return _cat_rows(found, dev)

        return torch.cat(_run_chunks(n, step, workers, run)).to(dev)

    def assign(c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Re-assign the points; returns (changed rows, old labels, new labels)."""
        nonlocal stale, pending
        cen = _make_centroids(c, pts)
        idx = None
        if prune and not stale:
            idx = candidates(c)
            if idx.numel() > full_pass_fraction * n:
                idx = None
        pending = None
        if idx is None:  # every point, in order (no gather)
            new, d1, d2 = _assign_rows(pts, cen, batch_size, workers=workers)
            upper.copy_(d1)
            lower.copy_(d2)
            changed = torch.nonzero(new != labels).squeeze(1)
            old = labels[changed]
            labels.copy_(new)
            stale = False
            return changed, old, new[changed]
        if idx.numel() == 0:
            return idx, idx, idx
        new, d1, d2 = _assign_rows(pts, cen, batch_size, rows=idx, workers=workers)
        upper[idx] = d1
        lower[idx] = d2
        old = labels[idx]
        moved = new != old
        labels[idx] = new
        return idx[moved], old[moved], new[moved]

    def partial_sums(
        rows: Tensor | None, add: Tensor, sub: Tensor | None
    ) -> Callable[[int, int], Tensor]:
        """Per run: float64 sum of ``x[rows]`` into clusters ``add`` (minus into
        ``sub``), float32 within a chunk. ``index_add_``, unlike
        ``index_put_(accumulate=True)``, is deterministic on CPU."""

        def run(lo: int, hi: int) -> Tensor:
            acc = torch.zeros(k, d, dtype=torch.float64, device=dev)
            part = torch.empty(k, d, dtype=torch.float32, device=dev)
            for start in range(lo, hi, batch_size):
                stop = min(start + batch_size, hi)
                xc = (
                    x[start:stop]
                    if rows is None
                    else x.index_select(0, rows[start:stop])
                )
                part.zero_().index_add_(0, add[start:stop], xc)
                if sub is not None:
                    part.index_add_(0, sub[start:stop], xc, alpha=-1.0)
                acc += part
            return acc

        return run

    def move(changed: Tensor, old: Tensor, new: Tensor) -> None:
        """Update the sums and counts with the points that changed cluster."""
        if changed.numel() == 0:
            return
        for acc in _run_chunks(
            changed.numel(), batch_size, workers, partial_sums(changed, new, old)
        ):
            sums.add_(acc)
        counts.add_(torch.bincount(new, minlength=k) - torch.bincount(old, minlength=k))

    for it in range(max_iter):
        changed, old, new = assign(c)
        n_iter = it + 1
        if it == 0:
            for acc in _run_chunks(
                n, batch_size, workers, partial_sums(None, labels, None)
            ):
                sums.add_(acc)
            counts.copy_(torch.bincount(labels, minlength=k))
        elif changed.numel() == 0:
            strict = True  # labels unchanged: the centroids would not move
            break
        else:
            move(changed, old, new)
        empty = torch.nonzero(counts < 0.5).squeeze(1)
        if empty.numel():
            # Re-seed empty clusters with the points farthest from their centroid
            # (deterministic: exact distances, ties by torch.topk).
            far_sq = _row_sq_dist_to_own(x, c, labels, batch_size)
            far = torch.topk(far_sq, empty.numel()).indices
            move(far, labels[far], empty)
            labels[far] = empty
            stale = True  # bounds are wrong for the moved points
        c_new = torch.where(
            counts.unsqueeze(1) > 0.5,
            sums / counts.clamp(min=1.0).unsqueeze(1),
            c.double(),
        ).float()
        drift = (c_new - c).norm(dim=1)
        if prune and not stale:
            # applied to the bounds by the next candidates() pass
            if k > 1:
                top2 = torch.topk(drift, 2)
                pending = (
                    drift,
                    int(top2.indices[0]),
                    float(top2.values[0]),
                    float(top2.values[1]),
                )
            else:
                pending = (drift, 0, 0.0, 0.0)
        c = c_new
        if tol_abs > 0 and float((drift.double() ** 2).sum()) <= tol_abs:
            break
    if not strict:
        move(*assign(c))  # final E-step: labels consistent with the centroids
    # sum_i ||x_i - c_a||^2 = sum ||x||^2 - 2 sum_j c_j.S_j + sum_j n_j ||c_j||^2
    # with the float64 cluster sums S_j: no extra pass over the points.
    cd = c.double()
    inertia = (
        pts.sq.double().sum()
        - 2.0 * (cd * sums).sum()
        + (counts * (cd * cd).sum(dim=1)).sum()
    )
    return labels, c, n_iter, max(float(inertia), 0.0)


def kmeans(
    x: np.ndarray | Tensor,
    k: int,
    *,
    n_init: int = 1,
    max_iter: int = 20,
    tol: float = 1e-4,
    seed: int = 0,
    init: str | np.ndarray | Tensor = "k-means++",
    device: str = "auto",
    batch_size: int | None = None,
    init_sample_size: int | None = 100_000,
    n_local_trials: int | None = None,
    precision: str = "auto",
    prune: bool = True,
    full_pass_fraction: float = 0.5,
    n_threads: int | None = None,
) -> KMeansResult:
    r"""Lloyd k-means in PyTorch (CPU or CUDA).

    Computes the same iterates as a plain Lloyd loop in ``float32``: points are
    centred, each assignment step is one matmul per chunk of ``batch_size`` rows
    (``[x, ||x||^2, 1] @ [-2c, 1, ||c||^2]^T`` gives squared distances), centroid
    sums are kept in ``float64`` and updated with the points that changed
    cluster. Two exact accelerations: Hamerly's bounds skip points that cannot
    change cluster (``prune``), and a bf16 matmul screens the rest, keeping an
    assignment only when the screened margin exceeds its proven error bound
    (``precision``). Stops after ``max_iter`` centroid updates, when no label
    changed (strict convergence), or when the total squared centroid shift is at
    most ``tol * mean(var(x, axis=0))`` (scikit-learn's rule). Inertia is
    computed from the cluster sums: ``sum ||x||^2 - 2 sum_j c_j.S_j + sum_j n_j
    ||c_j||^2``.

    Args:
        x: ``[n, d]`` points (numpy or torch; computed in ``float32``). Extra
            memory: a centred ``float32`` copy (``d + 2`` columns) and with bf16
            a ``bfloat16`` one (``d + 6`` columns).
        k: number of clusters, ``1 <= k <= n``.
        n_init: number of inits; the run with the lowest inertia wins
            (default ``1``).
        max_iter: maximum Lloyd iterations per init (default ``20``).
        tol: relative centroid-shift tolerance (default ``1e-4``; ``0`` stops
            only on strict convergence).
        seed: seed of every random step (init sampling); init ``i`` uses a seed
            spawned from ``seed`` by :class:`numpy.random.SeedSequence`
            (default ``0``).
        init: ``"k-means++"`` (greedy, as scikit-learn), ``"random"`` (``k``
            distinct points) or a ``[k, d]`` array of initial centroids
            (default ``"k-means++"``).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available;
            default ``"auto"``).
        batch_size: rows per distance matmul (default ``None``: 16384 on CPU,
            262144 on CUDA).
        init_sample_size: k-means++ runs on a seeded sample of this many points
            (``None``: all points; default ``100_000``).
        n_local_trials: candidates per greedy k-means++ step (default ``None``:
            ``2 + int(log(k))``).
        precision: ``"bf16"`` (bf16 screening, float32 for the undecided rows;
            same result), ``"fp32"`` (float32 only) or ``"auto"`` (bf16 on CUDA
            and on CPUs with AVX512-BF16/AMX, where it is faster; default
            ``"auto"``).
        prune: skip points with Hamerly's bounds (default ``True``;
            ``False`` re-assigns all points every iteration, same result).
        full_pass_fraction: when more than this share of the points fail the
            bound test, re-assign all of them in order instead of gathering the
            candidates (default ``0.5``).
        n_threads: CPU threads (default ``None``: ``torch.get_num_threads()``).
            They run over chunks of rows (one join per pass) while torch's
            intra-op pool is set to one thread for the duration of the fit.

    Returns:
        :class:`KMeansResult` (numpy arrays on the CPU).

    Raises:
        ValueError: ``k < 1``, ``k > n``, NaN/inf rows, bad shapes or options.
    """
    dev = resolve_device(device)
    _check_common(n_init, max_iter, tol)
    if batch_size is None:
        batch_size = 16384 if dev.type == "cpu" else 262144
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if init_sample_size is not None and init_sample_size < 1:
        raise ValueError(
            f"init_sample_size must be >= 1 or None, got {init_sample_size}"
        )
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(
            f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}"
        )
    if not 0.0 <= full_pass_fraction <= 1.0:
        raise ValueError(
            f"full_pass_fraction must be in [0, 1], got {full_pass_fraction}"
        )
    if precision == "auto":
        bf16 = dev.type == "cuda" or cpu_has_bf16()
    else:
        bf16 = precision == "bf16"
    # CPU: coarse-grained threads over chunks, torch's intra-op pool at one
    # thread (see _run_chunks); CUDA: one stream, chunk after chunk.
    workers = 1
    if dev.type == "cpu":
        workers = int(n_threads) if n_threads is not None else torch.get_num_threads()
        if workers < 1:
            raise ValueError(f"n_threads must be >= 1 or None, got {n_threads}")
    with _num_threads(1 if dev.type == "cpu" else n_threads):
        xt = _as_float_tensor(x, dev)
        n = xt.shape[0]
        k = _check_k(k, n)
        if not isinstance(init, str) and n_init != 1:
            raise ValueError(f"an init array allows only n_init=1, got n_init={n_init}")
        tol_abs = (
            float(tol) * float(xt.var(dim=0, unbiased=False).double().mean())
            if tol > 0
            else 0.0
        )
        mean = xt.mean(dim=0)  # float32 (cascade sum): centring needs no more
        pts = _make_points(
            xt, mean, bf16=bf16 and 1 < k <= _BF16_MAX_K, workers=workers
        )
        seeds = np.random.SeedSequence(seed).generate_state(n_init, dtype=np.uint64)
        best: tuple[float, Tensor, Tensor, int] | None = None
        for s in seeds:
            gen = torch.Generator(device=dev)
            gen.manual_seed(int(s) & 0x7FFF_FFFF_FFFF_FFFF)
            c0 = _initial_centroids(
                pts.x,
                k,
                init,
                gen,
                init_sample_size=init_sample_size,
                n_local_trials=n_local_trials,
                mean=mean,
            )
            labels, c, n_iter, inertia = _lloyd(
                pts,
                c0,
                max_iter=max_iter,
                tol_abs=tol_abs,
                batch_size=batch_size,
                prune=prune,
                full_pass_fraction=full_pass_fraction,
                workers=workers,
            )
            if best is None or inertia < best[0]:
                best = (inertia, labels, c, n_iter)
    assert best is not None
    inertia, labels, c, n_iter = best
    return KMeansResult(
        labels=labels.cpu().numpy(),
        centroids=(c + mean).cpu().numpy(),
        inertia=inertia,
        n_iter=n_iter,
        backend="torch",
    )


def fit_clusters(
    x: np.ndarray | Tensor,
    k: int,
    *,
    backend: str = "auto",
    minibatch_threshold: int = 2_000_000,
    n_init: int = 1,
    max_iter: int = 20,
    tol: float = 1e-4,
    seed: int = 0,
    init: str = "k-means++",
    minibatch_size: int = 4096,
    **torch_kwargs: Any,
) -> KMeansResult:
    """Cluster ``x`` into ``k`` groups with the chosen k-means backend.

    Args:
        x: ``[n, d]`` points.
        k: number of clusters, ``1 <= k <= n``.
        backend: ``"torch"`` (:func:`kmeans`), ``"sklearn"`` (scikit-learn
            ``KMeans``, or ``MiniBatchKMeans`` when ``n > minibatch_threshold``),
            ``"sklearn_minibatch"`` (always ``MiniBatchKMeans``) or ``"auto"``
            (= ``"torch"``, the fastest in ``benchmarks/bench_kmeans.py``;
            default ``"auto"``).
        minibatch_threshold: above this many points ``"sklearn"`` switches to
            ``MiniBatchKMeans`` (default ``2_000_000``).
        n_init: number of inits (default ``1``).
        max_iter: maximum iterations (default ``20``).
        tol: relative tolerance (default ``1e-4``).
        seed: random seed of every backend (default ``0``).
        init: ``"k-means++"`` or ``"random"`` (default ``"k-means++"``).
        minibatch_size: ``MiniBatchKMeans`` batch size (default ``4096``).
        **torch_kwargs: extra keyword arguments of :func:`kmeans` (``device``,
            ``batch_size``, ...), for the torch backend only.

    Returns:
        :class:`KMeansResult` whose ``backend`` names the implementation used.

    Raises:
        ValueError: unknown ``backend``, or the checks of :func:`kmeans`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "torch"
    if backend == "torch":
        return kmeans(
            x,
            k,
            n_init=n_init,
            max_iter=max_iter,
            tol=tol,
            seed=seed,
            init=init,
            **torch_kwargs,
        )
    if torch_kwargs:
        raise ValueError(
            f"options {sorted(torch_kwargs)} only apply to backend='torch', "
            f"got backend={backend!r}"
        )
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    _check_common(n_init, max_iter, tol)
    xn = _as_float_tensor(x, torch.device("cpu")).numpy()
    k = _check_k(k, xn.shape[0])
    from sklearn.cluster import KMeans, MiniBatchKMeans

    minibatch = backend == "sklearn_minibatch" or xn.shape[0] > minibatch_threshold
    if minibatch:
        model = MiniBatchKMeans(
            n_clusters=k,
            init=init,
            n_init=n_init,
            max_iter=max_iter,
            tol=tol,
            batch_size=minibatch_size,
            random_state=seed,
        ).fit(xn)
        name, n_iter = "sklearn_minibatch", int(model.n_steps_)
    else:
        model = KMeans(
            n_clusters=k,
            init=init,
            n_init=n_init,
            max_iter=max_iter,
            tol=tol,
            random_state=seed,
            algorithm="lloyd",
        ).fit(xn)
        name, n_iter = "sklearn", int(model.n_iter_)
    return KMeansResult(
        labels=model.labels_.astype(np.int64),
        centroids=model.cluster_centers_.astype(np.float32),
        inertia=float(model.inertia_),
        n_iter=n_iter,
        backend=name,
    )
