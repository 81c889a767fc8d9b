r"""Self-organising maps (SOM) for post-hoc clustering of embeddings.

The self-organising map of `"Self-Organized Formation of Topologically Correct
Feature Maps" <https://doi.org/10.1007/BF00337288>`_ (Kohonen, Biological
Cybernetics 1982) places ``rows x cols`` units on a rectangular grid, each with
a codebook vector :math:`\mathbf{w}_i \in \mathbb{R}^d`, and fits them so that
units close on the grid hold vectors close in the data space.

:func:`fit_som` trains one with either of two backends behind one interface:

* ``"batch"``: Kohonen's *batch map* (`"Essentials of the self-organizing map"
  <https://doi.org/10.1016/j.neunet.2012.09.018>`_, Kohonen, Neural Networks
  2013) in PyTorch, on CPU or CUDA. Every epoch finds the
  best-matching unit (BMU) :math:`c_j` of every sample by one chunked matrix
  product (:math:`\|\mathbf{x}\|^2 - 2\,\mathbf{x}\cdot\mathbf{w} +
  \|\mathbf{w}\|^2`), then sets every codebook vector to the
  neighbourhood-weighted mean of the samples

  .. math::
      \mathbf{w}_i \leftarrow \frac{\sum_j h_{c_j i}\,\mathbf{x}_j}
      {\sum_j h_{c_j i}} = \frac{\sum_u h_{ui}\,\mathbf{S}_u}{\sum_u h_{ui}\,n_u},
      \qquad h_{ui} = \exp\!\Big(-\frac{\|\mathbf{r}_u - \mathbf{r}_i\|^2}
      {2\sigma_t^2}\Big),

  where :math:`\mathbf{S}_u` and :math:`n_u` are the sum and the number of the
  samples whose BMU is :math:`u` (``index_add`` / ``bincount``) and
  :math:`\mathbf{r}` are grid coordinates: one ``(units x units)`` product, so
  an epoch costs :math:`O(n \cdot \mathrm{units} \cdot d)`. The radius
  :math:`\sigma_t` shrinks from ``sigma`` (first epoch) to ``sigma_final``
  (last epoch). The batch map has no learning rate.
* ``"minisom"``: the online (one sample at a time) SOM of
  `MiniSom <https://github.com/JustGlowing/minisom>`_ with the same grid,
  Gaussian neighbourhood, initialisation, radius schedule and seed; the step
  size decays from ``learning_rate`` to ``learning_rate_final``.

Both are measured by one function, :func:`som_errors`: the quantisation error
(mean euclidean distance of a sample to its BMU) and the topographic error
(share of samples whose first and second BMUs are not adjacent on the grid; as
MiniSom's rectangular topology, *adjacent* counts the 8 surrounding units,
diagonals included). Units can be merged into ``k`` clusters afterwards
(:func:`merge_units`: k-means of the codebook weighted by the hits); a sample's
cluster is its BMU's.

No Kedro here; the pipeline ``som`` wraps it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from hgt_cluster_kedro.progress import progress_bar

from ..runtime import resolve_device

logger = logging.getLogger(__name__)
T = TypeVar("T")

BACKENDS = ("batch", "minisom")
INITS = ("pca", "random")
DECAYS = ("exponential", "linear")
DEFAULT_EPOCHS = 10
_PACK_MAX_UNITS = 256  # BMU keys: the unit index takes up to 8 low mantissa bits


@dataclass(frozen=True)
class SOMResult:
    """Outcome of :func:`fit_som`.

    Attributes:
        codebook: ``float32 [rows * cols, d]`` codebook vectors, unit
            ``u = row * cols + col`` (row-major, as MiniSom's weights
            reshaped).
        bmu: ``int64 [n]`` best-matching unit of every sample (final codebook).
        labels: ``int64 [n]`` cluster of every sample: ``unit_cluster[bmu]``.
        unit_cluster: ``int64 [rows * cols]`` cluster of every unit (the unit
            id itself when ``k`` is ``None``).
        quantization_error: mean euclidean distance of the samples to their BMU.
        topographic_error: share of samples whose first and second BMUs are not
            adjacent (8-neighbourhood); ``nan`` for a ``1 x 1`` map.
        hits: ``int64 [rows, cols]`` samples per unit.
        u_matrix: ``float32 [rows, cols]`` mean distance of each codebook
            vector to those of its adjacent units (:func:`u_matrix`).
        rows: grid rows.
        cols: grid columns.
        k: number of merged clusters (as asked, or lowered to the units with
            hits), or ``None`` (one cluster per unit).
        backend: ``"batch"`` or ``"minisom"``.
        seconds: training time (initialisation and updates; the final error
            pass and the merge excluded).
        epochs: batch epochs, or MiniSom epochs (``None`` when trained for a
            number of single-sample ``iterations``).
        history: per epoch ``sigma`` and, for the batch backend,
            ``quantization_error`` before that epoch's update (BMU distances
            of the pass, rounded to about ``1e-5`` relative).
    """

    codebook: np.ndarray
    bmu: np.ndarray
    labels: np.ndarray
    unit_cluster: np.ndarray
    quantization_error: float
    topographic_error: float
    hits: np.ndarray
    u_matrix: np.ndarray
    rows: int
    cols: int
    k: int | None
    backend: str
    seconds: float
    epochs: int | None
    history: dict[str, list[float]] = field(default_factory=dict)


# --------------------------------------------------------------------------- checks


def _check_int(name: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {low}, got {name}={value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {name}={value}")
    return int(value)


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise ValueError(f"{name} must be a number > 0, got {name}={value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {name}={value}")
    return float(value)


def _as_matrix(x: np.ndarray | Tensor) -> np.ndarray:
    """``x`` as a C-contiguous ``float32 [n, d]`` array with finite values."""
    arr = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"x must be 2-D [n, d], got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"x must be non-empty, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(
        arr.dtype, np.complexfloating
    ):
        raise ValueError(f"x must hold real numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"x has {bad.size} rows with NaN/inf values, e.g. rows {bad[:5].tolist()}"
        )
    return arr


# ------------------------------------------------------------------------ helpers


def schedule(
    start: float,
    end: float,
    t: float,
    steps: int,
    decay: str,
    *,
    convergence_fraction: float = 0.0,
) -> float:
    """Value at step ``t`` (``0 … steps - 1``): from ``start`` at ``t = 0`` to
    ``end``, ``"exponential"`` (geometric) or ``"linear"``, reached after the
    first ``steps - round(convergence_fraction * steps)`` steps and kept for
    the rest (Kohonen's convergence phase)."""
    hold = min(max(round(convergence_fraction * steps), 0), steps - 1)
    decay_steps = steps - hold
    if decay_steps > 1:
        frac = min(max(t / (decay_steps - 1), 0.0), 1.0)
    else:  # one decay step: start, then the held end value
        frac = 0.0 if t < 1 else 1.0
    if decay == "linear":
        return start + (end - start) * frac
    if decay == "exponential":
        return start * (end / start) ** frac
    raise ValueError(f"decay must be one of {DECAYS}, got decay={decay!r}")


def grid_coordinates(rows: int, cols: int) -> np.ndarray:
    """``int64 [rows * cols, 2]`` (row, col) of every unit, row-major."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    return np.stack([r, c], axis=1)


def pca_init(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Codebook spanning the first two principal components, as MiniSom's
    ``pca_weights_init``: unit ``(i, j)`` is ``mean + a_i pc1 + b_j pc2`` with
    ``a = linspace(-1, 1, rows)``, ``b = linspace(-1, 1, cols)`` and unit-norm
    ``pc1``, ``pc2`` (same numpy calls, so the same vectors). ``float32 [rows *
    cols, d]``."""
    if x.shape[1] < 2:
        raise ValueError(
            f"init='pca' needs at least 2 features, x has d={x.shape[1]}; "
            "use init='random'"
        )
    if x.shape[0] < 2:
        raise ValueError(f"init='pca' needs at least 2 samples, x has n={x.shape[0]}")
    eigvals, eigvecs = np.linalg.eigh(np.cov(x, rowvar=False))
    order = np.argsort(eigvals)[::-1]
    pc1, pc2 = eigvecs[:, order[0]], eigvecs[:, order[1]]
    mean = np.mean(x, axis=0)
    a = np.linspace(-1, 1, rows)[:, None, None]
    b = np.linspace(-1, 1, cols)[None, :, None]
    w = mean + a * pc1 + b * pc2
    return w.reshape(rows * cols, -1).astype(np.float32)


def random_init(x: np.ndarray, rows: int, cols: int, seed: int) -> np.ndarray:
    """Codebook of random samples, as MiniSom's ``random_weights_init`` with
    ``random_seed=seed`` (the same draws: MiniSom's constructor draws its
    ``rows x cols x d`` random weights first). ``float32 [rows * cols, d]``."""
    rs = np.random.RandomState(seed)
    rs.rand(rows, cols, x.shape[1])
    idx = [rs.randint(len(x)) for _ in range(rows * cols)]
    return x[np.asarray(idx, dtype=np.int64)].astype(np.float32)


def u_matrix(codebook: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``float32 [rows, cols]`` mean euclidean distance from each codebook vector
    to those of its adjacent units (up to 8, diagonals included): MiniSom's
    ``distance_map(scaling="mean")`` before its division by the maximum. ``0``
    for a ``1 x 1`` map."""
    w = np.asarray(codebook, dtype=np.float64).reshape(rows, cols, -1)
    total = np.zeros((rows, cols))
    count = np.zeros((rows, cols))
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr == dc == 0:
                continue
            r0, r1 = max(0, -dr), rows - max(0, dr)
            c0, c1 = max(0, -dc), cols - max(0, dc)
            if r0 >= r1 or c0 >= c1:
                continue
            dist = np.linalg.norm(
                w[r0:r1, c0:c1] - w[r0 + dr : r1 + dr, c0 + dc : c1 + dc], axis=-1
            )
            total[r0:r1, c0:c1] += dist
            count[r0:r1, c0:c1] += 1
    return (total / np.maximum(count, 1)).astype(np.float32)


def merge_units(
    codebook: np.ndarray, hits: np.ndarray, k: int, *, seed: int = 0
) -> np.ndarray:
    """Merge the units of a trained map into ``k`` clusters.

    k-means (scikit-learn ``KMeans``, ``n_init=10``) of the codebook vectors of
    the units that won samples, weighted by their hits (the project's
    :func:`~hgt_cluster_kedro.clustering.fit_clusters` takes no weights); units
    without hits join the nearest centroid. Clusters are numbered in the order
    of their first unit (row-major), so equal inputs give equal ids.

    Args:
        codebook: ``[units, d]`` codebook vectors.
        hits: ``[units]`` (or ``[rows, cols]``) samples per unit.
        k: number of clusters, at most the number of units with hits.
        seed: ``random_state`` of ``KMeans`` (default ``0``).

    Returns:
        ``int64 [units]`` cluster of every unit.

    Raises:
        ValueError: ``k < 1`` or ``k`` larger than the units with hits.
    """
    from sklearn.cluster import KMeans

    w = np.asarray(codebook, dtype=np.float64)
    weights = np.asarray(hits, dtype=np.float64).reshape(-1)
    if weights.shape[0] != w.shape[0]:
        raise ValueError(
            f"hits has {weights.shape[0]} units, codebook has {w.shape[0]}"
        )
    k = _check_int("k", k)
    used = weights > 0
    if k > int(used.sum()):
        raise ValueError(
            f"k={k} clusters but only {int(used.sum())} of the {w.shape[0]} units "
            "won samples; use a smaller k or a smaller grid"
        )
    model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(
        w[used], sample_weight=weights[used]
    )
    raw = model.predict(w)
    _, first = np.unique(raw, return_index=True)
    rank = np.empty(k, dtype=np.int64)
    rank[raw[np.sort(first)]] = np.arange(first.size)
    return rank[raw]


# ------------------------------------------------------------------------ kernels


def _layouts(xc: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """``[x, ||x||^2, 1]`` and ``[-2w, 1, ||w||^2]``: their product is the matrix
    of squared distances."""
    n, d = xc.shape
    xa = torch.empty(n, d + 2, dtype=xc.dtype, device=xc.device)
    xa[:, :d] = xc
    xa[:, d] = (xc * xc).sum(dim=1)
    xa[:, d + 1] = 1.0
    return xa, _codebook_layout(w)


def _codebook_layout(w: Tensor) -> Tensor:
    units, d = w.shape
    wa = torch.empty(units, d + 2, dtype=w.dtype, device=w.device)
    wa[:, :d] = -2.0 * w
    wa[:, d] = 1.0
    wa[:, d + 1] = (w * w).sum(dim=1)
    return wa


class _Chunks:
    """Runs ``fn(lo, hi)`` over contiguous runs of rows, one Python thread per
    run on CPU (torch ops release the GIL; torch's own intra-op pool is held at
    one thread during a fit, see :func:`_torch_threads`): one join per pass
    instead of an OpenMP barrier per small op, which matters on busy machines.
    Results come back in run order, so reductions are deterministic for a given
    number of threads. CUDA: one run."""

    def __init__(self, workers: int, batch_size: int) -> None:
        self.workers = workers
        self.batch_size = batch_size
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> _Chunks:
        if self.workers > 1:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="som")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def map(self, n: int, fn: Callable[[int, int], T]) -> list[T]:
        n_chunks = -(-n // self.batch_size)
        runs = max(1, min(self.workers, n_chunks))
        if runs == 1 or self._pool is None:
            return [fn(0, n)]
        cuts = [min(n, (n_chunks * r // runs) * self.batch_size) for r in range(runs)]
        cuts.append(n)
        futures = [self._pool.submit(fn, cuts[r], cuts[r + 1]) for r in range(runs)]
        return [f.result() for f in futures]


@contextmanager
def _torch_threads(n: int, device: torch.device) -> Iterator[None]:
    """torch intra-op threads set to ``n`` (restored afterwards); CPU only."""
    if device.type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _bmu_pass(
    xa: Tensor, wa: Tensor, chunks: _Chunks, *, want_sums: bool
) -> tuple[Tensor, float, Tensor | None]:
    """BMU of every row of ``xa``, the mean BMU distance and, with
    ``want_sums``, the ``[units, d]`` sums of the samples of every unit.

    For at most 256 units the unit index is packed into the low mantissa bits of
    the (non-negative) squared distances viewed as ``int32``, so one ``amin``
    gives minimum and index together (``torch.argmin`` is much slower on CPU);
    distances within about ``2**-15`` relative tie to the lower index, harmless
    for training. Sums use ``index_add_`` on CPU and a one-hot matrix product on
    CUDA (deterministic, unlike atomic adds).
    """
    n = xa.shape[0]
    units, d = wa.shape[0], wa.shape[1] - 2
    dev = xa.device
    bmu = torch.empty(n, dtype=torch.int64, device=dev)
    packed = 1 < units <= _PACK_MAX_UNITS
    low = (1 << max(1, (units - 1).bit_length())) - 1
    jidx = torch.arange(units, dtype=torch.int32, device=dev)

    def run(lo: int, hi: int) -> tuple[Tensor, Tensor | None]:
        total = torch.zeros((), dtype=torch.float64, device=dev)
        sums = torch.zeros(units, d, device=dev) if want_sums else None
        for start in range(lo, hi, chunks.batch_size):
            stop = min(start + chunks.batch_size, hi)
            dist = torch.mm(xa[start:stop], wa.T).clamp_(min=0.0)
            if packed:
                keys = dist.view(torch.int32).bitwise_and_(~low).bitwise_or_(jidx)
                m = torch.amin(keys, dim=1)
                idx = (m & low).long()
                best = (m & ~low).view(torch.float32)
            else:
                best, idx = dist.min(dim=1)
            bmu[start:stop] = idx
            total += best.sqrt().sum(dtype=torch.float64)
            if sums is not None:
                xc = xa[start:stop, :d]
                if dev.type == "cpu":
                    sums.index_add_(0, idx, xc)
                else:
                    onehot = torch.zeros(stop - start, units, device=dev)
                    onehot.scatter_(1, idx.unsqueeze(1), 1.0)
                    sums.addmm_(onehot.T, xc)
        return total, sums

    parts = chunks.map(n, run)
    total = sum(float(t) for t, _ in parts)
    sums = None
    if want_sums:
        sums = parts[0][1]
        for _, s in parts[1:]:
            sums += s
    return bmu, total / n, sums


def _errors(
    xa: Tensor, wa: Tensor, w: Tensor, *, cols: int, chunks: _Chunks
) -> tuple[Tensor, float, float]:
    """Exact first and second BMUs (ties to the lower index), quantisation and
    topographic errors; ``xa`` / ``wa`` as :func:`_layouts`, ``w`` the codebook
    in the same (centred) frame."""
    n, d = xa.shape[0], xa.shape[1] - 2
    units = wa.shape[0]
    dev = xa.device
    bmu = torch.empty(n, dtype=torch.int64, device=dev)
    bmu2 = torch.zeros(n, dtype=torch.int64, device=dev)

    def run(lo: int, hi: int) -> float:
        qe = torch.zeros((), dtype=torch.float64, device=dev)
        for start in range(lo, hi, chunks.batch_size):
            stop = min(start + chunks.batch_size, hi)
            dist = torch.mm(xa[start:stop], wa.T)
            i1 = dist.argmin(dim=1)
            bmu[start:stop] = i1
            if units > 1:
                dist.scatter_(1, i1.unsqueeze(1), float("inf"))
                bmu2[start:stop] = dist.argmin(dim=1)
            diff = xa[start:stop, :d] - w[i1]
            qe += torch.linalg.vector_norm(diff, dim=1).sum(dtype=torch.float64)
        return float(qe)

    qe = sum(chunks.map(n, run)) / n
    if units == 1:
        return bmu, qe, float("nan")
    r1, c1 = bmu // cols, bmu % cols
    r2, c2 = bmu2 // cols, bmu2 % cols
    far = ((r1 - r2).abs() > 1) | ((c1 - c2).abs() > 1)
    return bmu, qe, float(far.double().mean())


def som_errors(
    x: np.ndarray | Tensor,
    codebook: np.ndarray | Tensor,
    rows: int,
    cols: int,
    *,
    device: str | torch.device = "auto",
    batch_size: int = 8192,
    n_threads: int | None = None,
) -> tuple[np.ndarray, float, float]:
    """BMUs, quantisation error and topographic error of a codebook.

    The one definition used for every backend (and the benchmark's peers):
    quantisation error = mean euclidean distance of a sample to its BMU;
    topographic error = share of samples whose first and second BMUs are more
    than one step apart in row or column (MiniSom's rectangular rule: grid
    distance above 1.42). Distances are computed in ``float32`` on ``x`` and the
    codebook centred on the mean of ``x``.

    Args:
        x: ``[n, d]`` samples.
        codebook: ``[rows * cols, d]`` codebook vectors, row-major.
        rows: grid rows.
        cols: grid columns.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (default).
        batch_size: rows per distance product (default ``8192``).
        n_threads: CPU threads (default ``None``: ``torch.get_num_threads()``).

    Returns:
        ``(bmu int64 [n], quantization_error, topographic_error)``; the
        topographic error is ``nan`` for a ``1 x 1`` map.
    """
    rows, cols = _check_int("rows", rows), _check_int("cols", cols)
    batch_size = _check_int("batch_size", batch_size)
    xn = _as_matrix(x)
    wn = _as_matrix(codebook)
    if wn.shape != (rows * cols, xn.shape[1]):
        raise ValueError(
            f"codebook has shape {wn.shape}, expected ({rows * cols}, {xn.shape[1]})"
        )
    dev = resolve_device(device)
    workers = _workers(n_threads, dev)
    with _torch_threads(1, dev), _Chunks(workers, batch_size) as chunks:
        xa, wa, w, _ = _prepare(xn, wn, dev)
        bmu, qe, te = _errors(xa, wa, w, cols=cols, chunks=chunks)
    return bmu.cpu().numpy(), qe, te


def _workers(n_threads: int | None, device: torch.device) -> int:
    if device.type != "cpu":
        return 1
    if n_threads is None:
        return torch.get_num_threads()
    return _check_int("n_threads", n_threads)


def _prepare(
    xn: np.ndarray, codebook: np.ndarray, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(xa, wa, w, mean)``: samples and codebook centred on the mean of the
    samples (small norms, small rounding errors) in the :func:`_layouts`."""
    xt = torch.from_numpy(xn).to(device)
    mean = xt.mean(dim=0)
    w = torch.from_numpy(codebook).to(device) - mean
    xa, wa = _layouts(xt - mean, w)
    return xa, wa, w, mean


# ------------------------------------------------------------------------ backends


def _train_batch(
    xn: np.ndarray,
    w0: np.ndarray,
    *,
    rows: int,
    cols: int,
    sigmas: list[float],
    device: torch.device,
    chunks: _Chunks,
    progress: bool,
) -> tuple[np.ndarray, list[float], tuple[Tensor, Tensor, Tensor, Tensor]]:
    """Kohonen's batch map; returns the codebook, the per-epoch BMU-pass errors
    and the tensors the final error pass reuses (``xa``, ``wa``, ``w``, mean)."""
    n = xn.shape[0]
    units = rows * cols
    xa, wa, w, mean = _prepare(xn, w0, device)
    coords = torch.from_numpy(grid_coordinates(rows, cols)).to(device, torch.float64)
    grid_sq = torch.cdist(coords, coords).square_()
    history: list[float] = []
    bar = progress_bar(
        total=len(sigmas) * n,
        unit="sample",
        unit_scale=True,
        desc=f"SOM {rows}x{cols}",
        disable=not progress,
    )
    with bar:
        for epoch, sigma in enumerate(sigmas):
            bmu, qe, sums = _bmu_pass(xa, wa, chunks, want_sums=True)
            assert sums is not None
            counts = torch.bincount(bmu, minlength=units).to(torch.float64)
            h = torch.exp(grid_sq / (-2.0 * sigma * sigma))  # symmetric
            num = h @ sums.double()
            den = h @ counts
            ok = den > 0  # a unit far from every hit may underflow to 0
            w_new = w.double()
            w_new[ok] = num[ok] / den[ok].unsqueeze(1)
            w = w_new.float()
            wa = _codebook_layout(w)
            history.append(qe)
            bar.update(n)
            bar.set_postfix(sigma=f"{sigma:.3g}", qe=f"{qe:.4g}")
            logger.debug(
                "SOM epoch %d: sigma %.4g, QE before update %.5g", epoch, sigma, qe
            )
    return (w + mean).cpu().numpy(), history, (xa, wa, w, mean)


def _train_minisom(
    xn: np.ndarray,
    w0: np.ndarray,
    *,
    rows: int,
    cols: int,
    sigma_fn: Callable[[float, float, int], float],
    lr_fn: Callable[[float, float, int], float],
    sigma: float,
    learning_rate: float,
    epochs: int | None,
    iterations: int | None,
    seed: int,
) -> np.ndarray:
    from minisom import MiniSom

    som = MiniSom(
        rows,
        cols,
        xn.shape[1],
        sigma=sigma,
        learning_rate=learning_rate,
        decay_function=lr_fn,
        neighborhood_function="gaussian",
        topology="rectangular",
        activation_distance="euclidean",
        random_seed=seed,
    )
    # MiniSom's constructor takes only named sigma schedules; the same schedule
    # as the batch backend replaces it (called as f(sigma, t, max_iter)).
    if not hasattr(som, "_sigma_decay_function"):
        raise RuntimeError(
            "this MiniSom version has no _sigma_decay_function; MiniSom 2.3 needed"
        )
    som._sigma_decay_function = sigma_fn
    # Same initial codebook as the batch backend (equal to MiniSom's own
    # pca_weights_init / random_weights_init, see pca_init and random_init).
    som._weights = w0.astype(np.float64).reshape(rows, cols, -1)
    if epochs is not None:
        som.train(xn, epochs, random_order=True, use_epochs=True)
    else:
        som.train(xn, iterations, random_order=True)
    return som.get_weights().reshape(rows * cols, -1).astype(np.float32)


def fit_som(
    x: np.ndarray | Tensor,
    *,
    rows: int,
    cols: int,
    sigma: float | None = None,
    sigma_final: float = 0.5,
    learning_rate: float = 0.5,
    learning_rate_final: float = 0.01,
    decay: str = "exponential",
    convergence_fraction: float = 0.3,
    epochs: int | None = None,
    iterations: int | None = None,
    init: str = "pca",
    backend: str = "batch",
    k: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    n_threads: int | None = None,
    progress: bool = False,
) -> SOMResult:
    r"""Train a self-organising map on ``x`` and cluster the samples by it.

    See the module docstring for the two backends (Kohonen's batch map in
    PyTorch, MiniSom's online SOM) and the error definitions.

    Args:
        x: ``[n, d]`` samples (numpy or torch; computed in ``float32``), with
            at least ``rows * cols`` rows and no NaN/inf.
        rows: grid rows (``>= 1``).
        cols: grid columns (``>= 1``).
        sigma: initial radius of the Gaussian neighbourhood in grid steps
            (``> 0``; default ``None``: half the longer grid side, at least
            ``sigma_final``).
        sigma_final: radius of the last epoch, ``0 < sigma_final <= sigma``
            (default ``0.5``; a small radius makes the last batch epochs
            k-means-like steps).
        learning_rate: initial step size of the online (``"minisom"``) SOM
            (``> 0``, default ``0.5``); the batch map has none.
        learning_rate_final: step size at the end of online training (``> 0``
            for ``decay="exponential"``, ``>= 0`` for ``"linear"``; default
            ``0.01``).
        decay: how ``sigma`` and the learning rate go to their final values
            over the epochs (iterations): ``"exponential"`` (geometric,
            default) or ``"linear"``.
        convergence_fraction: share of the epochs (iterations) run at the
            final radius and learning rate after the decay, in ``[0, 1)``
            (Kohonen's convergence phase; default ``0.3``). The batch map
            needs it: each epoch is one fixed-point step, and a few at the
            final radius take the quantisation error down to that of the
            online SOM.
        epochs: passes over the data (batch: one codebook update per epoch;
            MiniSom: ``n`` single-sample updates in a seeded random order, the
            radius fixed within an epoch). Default ``10`` unless
            ``iterations`` is given.
        iterations: instead of ``epochs``, the number of single-sample
            presentations: MiniSom's ``train(x, iterations)``; the batch
            backend runs ``max(1, round(iterations / n))`` epochs.
        init: ``"pca"`` (codebook on the plane of the first two principal
            components, as MiniSom's ``pca_weights_init``; default) or
            ``"random"`` (seeded random samples, as MiniSom's
            ``random_weights_init``). Both backends start from the same
            codebook.
        backend: ``"batch"`` (default) or ``"minisom"``.
        k: merge the units into ``k`` clusters (:func:`merge_units`; at most
            ``rows * cols``, lowered with a warning to the number of units that
            won samples when fewer did), or ``None`` (default): one cluster per
            unit (cluster = BMU id).
        seed: seed of the random init, of MiniSom's sample order and of the
            merge (default ``0``); equal inputs give equal outputs.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available;
            default). MiniSom always trains on the CPU; the error pass uses
            ``device``.
        batch_size: rows per distance product (default ``None``: 4096 on CPU,
            65536 on CUDA).
        n_threads: CPU threads (default ``None``: ``torch.get_num_threads()``),
            each over a contiguous run of rows, while torch's intra-op pool is
            held at one thread for the fit. Results are identical for a given
            thread count (sums are reduced in run order).
        progress: show a tqdm bar (samples/s) for the batch backend (default
            ``False``).

    Returns:
        :class:`SOMResult` (numpy arrays on the CPU).

    Raises:
        ValueError: a parameter out of range (named with its value), NaN/inf
            in ``x``, or fewer samples than units.
    """
    # ---- parameters first, data second: cheap errors before any work
    rows, cols = _check_int("rows", rows), _check_int("cols", cols)
    units = rows * cols
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got backend={backend!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got init={init!r}")
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {DECAYS}, got decay={decay!r}")
    sigma_final = _check_positive("sigma_final", sigma_final)
    if sigma is None:
        sigma = max(max(rows, cols) / 2.0, sigma_final)
    sigma = _check_positive("sigma", sigma)
    if sigma_final > sigma:
        raise ValueError(
            f"sigma_final must be <= sigma, got sigma_final={sigma_final} > "
            f"sigma={sigma}"
        )
    learning_rate = _check_positive("learning_rate", learning_rate)
    if decay == "exponential":
        learning_rate_final = _check_positive(
            "learning_rate_final", learning_rate_final
        )
    elif not (math.isfinite(learning_rate_final) and learning_rate_final >= 0):
        raise ValueError(
            f"learning_rate_final must be >= 0, got "
            f"learning_rate_final={learning_rate_final}"
        )
    if isinstance(convergence_fraction, bool) or not (
        isinstance(convergence_fraction, int | float)
        and 0.0 <= convergence_fraction < 1.0
    ):
        raise ValueError(
            "convergence_fraction must be in [0, 1), got "
            f"convergence_fraction={convergence_fraction!r}"
        )
    if epochs is not None and iterations is not None:
        raise ValueError(
            f"give epochs or iterations, not both (epochs={epochs}, "
            f"iterations={iterations})"
        )
    if iterations is not None:
        iterations = _check_int("iterations", iterations)
    else:
        epochs = _check_int("epochs", DEFAULT_EPOCHS if epochs is None else epochs)
    if k is not None:
        k = _check_int("k", k)
        if k > units:
            raise ValueError(
                f"k={k} clusters but the grid has only rows*cols={units} units"
            )
    seed = _check_int("seed", seed, low=0)
    dev = resolve_device(device)
    if batch_size is None:
        batch_size = 4096 if dev.type == "cpu" else 65536
    batch_size = _check_int("batch_size", batch_size)
    workers = _workers(n_threads, dev)
    xn = _as_matrix(x)
    n, d = xn.shape
    if n < units:
        raise ValueError(
            f"x has n={n} samples, fewer than the rows*cols={rows}*{cols}={units} "
            "units of the grid"
        )

    # ---- train
    with _torch_threads(1, dev), _Chunks(workers, batch_size) as chunks:
        start = time.perf_counter()
        w0 = (
            pca_init(xn, rows, cols)
            if init == "pca"
            else random_init(xn, rows, cols, seed)
        )
        run_epochs = epochs if epochs is not None else max(1, round(iterations / n))
        # sample presentations: n per epoch, or MiniSom's single-sample iterations
        presentations = (
            iterations if backend == "minisom" and epochs is None else run_epochs * n
        )
        history: dict[str, list[float]] = {
            "sigma": [
                schedule(
                    sigma,
                    sigma_final,
                    t,
                    run_epochs,
                    decay,
                    convergence_fraction=convergence_fraction,
                )
                for t in range(run_epochs)
            ]
        }
        if backend == "batch":
            codebook, qe_hist, (xa, wa, w, mean) = _train_batch(
                xn,
                w0,
                rows=rows,
                cols=cols,
                sigmas=history["sigma"],
                device=dev,
                chunks=chunks,
                progress=progress,
            )
            history["quantization_error"] = qe_hist
            seconds = time.perf_counter() - start
        else:

            def sigma_fn(_: float, t: float, max_iter: int) -> float:
                return schedule(
                    sigma,
                    sigma_final,
                    t,
                    max_iter,
                    decay,
                    convergence_fraction=convergence_fraction,
                )

            def lr_fn(_: float, t: float, max_iter: int) -> float:
                return schedule(
                    learning_rate,
                    learning_rate_final,
                    t,
                    max_iter,
                    decay,
                    convergence_fraction=convergence_fraction,
                )

            codebook = _train_minisom(
                xn,
                w0,
                rows=rows,
                cols=cols,
                sigma_fn=sigma_fn,
                lr_fn=lr_fn,
                sigma=sigma,
                learning_rate=learning_rate,
                epochs=epochs,
                iterations=iterations,
                seed=seed,
            )
            if epochs is None:
                history["sigma"] = []
            seconds = time.perf_counter() - start
            xa, wa, w, mean = _prepare(xn, codebook, dev)

        # ---- errors, hits, merge
        bmu_t, qe, te = _errors(xa, wa, w, cols=cols, chunks=chunks)
    bmu = bmu_t.cpu().numpy()
    hits = np.bincount(bmu, minlength=units)
    if k is not None and k > int((hits > 0).sum()):
        logger.warning(
            "SOM: k=%d clusters but only %d of the %d units won samples; merging "
            "into %d clusters",
            k,
            int((hits > 0).sum()),
            units,
            int((hits > 0).sum()),
        )
        k = int((hits > 0).sum())
    unit_cluster = (
        np.arange(units, dtype=np.int64)
        if k is None
        else merge_units(codebook, hits, k, seed=seed)
    )
    logger.info(
        "SOM (%s) %dx%d on %d x %d, %d presentations: QE %.5g, TE %.4f, "
        "%d empty units, %.2f s (%.0f samples/s)",
        backend,
        rows,
        cols,
        n,
        d,
        presentations,
        qe,
        te,
        int((hits == 0).sum()),
        seconds,
        presentations / max(seconds, 1e-9),
    )
    return SOMResult(
        codebook=codebook.astype(np.float32),
        bmu=bmu,
        labels=unit_cluster[bmu],
        unit_cluster=unit_cluster,
        quantization_error=qe,
        topographic_error=te,
        hits=hits.reshape(rows, cols).astype(np.int64),
        u_matrix=u_matrix(codebook, rows, cols),
        rows=rows,
        cols=cols,
        k=k,
        backend=backend,
        seconds=seconds,
        epochs=run_epochs if backend == "batch" or epochs is not None else None,
        history=history,
    )
