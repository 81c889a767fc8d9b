"""Cluster quality: agreement with ground truth, separation, size balance.

* ``nmi`` / ``ari``: normalised mutual information and adjusted Rand index
  against ``labels_true`` (scikit-learn; labels aligned by position).
* ``silhouette``: mean silhouette coefficient on a seeded sample of
  ``silhouette_sample`` points (``nan`` with fewer than 2 clusters in the
  sample).
* ``label_protocol``: NMI / ARI of KMeans with k = the number of label classes
  over several seeds (mean and std), the literature's protocol.
* size statistics over the clusters present: ``n_clusters``, ``size_min``,
  ``size_max``, ``size_median``, ``size_mean``, ``size_gini`` (Gini coefficient
  of the sizes: 0 = all equal, towards 1 = one cluster holds everything) and
  ``size_entropy`` (entropy of the size distribution / ``log(n_clusters)``:
  1 = all equal).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

SILHOUETTE_METRICS = ("cosine", "euclidean")


def _labels(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    return arr


def cluster_sizes(labels: np.ndarray) -> np.ndarray:
    """Sizes of the clusters present in ``labels``, largest first."""
    _, counts = np.unique(_labels(labels, "labels"), return_counts=True)
    return np.sort(counts)[::-1]


def size_stats(labels: np.ndarray) -> dict[str, float]:
    """Cluster-size statistics (see the module docstring)."""
    sizes = cluster_sizes(labels).astype(np.float64)
    n = sizes.size
    asc = np.sort(sizes)
    # Gini = sum_i (2i - n - 1) s_(i) / (n sum s), sizes ascending, i = 1..n
    gini = float(((2 * np.arange(1, n + 1) - n - 1) * asc).sum() / (n * asc.sum()))
    p = sizes / sizes.sum()
    entropy = float(-(p * np.log(p)).sum() / np.log(n)) if n > 1 else 1.0
    return {
        "n_clusters": float(n),
        "size_min": float(sizes.min()),
        "size_max": float(sizes.max()),
        "size_median": float(np.median(sizes)),
        "size_mean": float(sizes.mean()),
        "size_gini": gini,
        "size_entropy": entropy,
    }


def cluster_quality(
    labels_pred: np.ndarray,
    labels_true: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    *,
    silhouette_sample: int = 10_000,
    silhouette_metric: str = "cosine",
    seed: int = 0,
) -> dict[str, float]:
    """Quality of a clustering.

    Args:
        labels_pred: ``[n]`` predicted cluster of every point.
        labels_true: ``[n]`` ground-truth labels (e.g. planted communities), or
            ``None`` to skip ``nmi``/``ari``.
        embeddings: ``[n, d]`` points, or ``None`` to skip ``silhouette``.
        silhouette_sample: points sampled for the silhouette (default ``10_000``).
        silhouette_metric: ``"cosine"`` or ``"euclidean"`` (default ``"cosine"``).
        seed: seed of the silhouette sample (default ``0``).

    Returns:
        Size statistics, plus ``nmi``/``ari`` and/or ``silhouette`` when their
        inputs are given.

    Raises:
        ValueError: lengths differ, bad shapes or options.
    """
    from sklearn.metrics import (
        adjusted_rand_score,
        normalized_mutual_info_score,
        silhouette_score,
    )

    pred = _labels(labels_pred, "labels_pred")
    out = size_stats(pred)
    if labels_true is not None:
        true = _labels(labels_true, "labels_true")
        if true.shape != pred.shape:
            raise ValueError(
                f"labels_true has {true.size} entries but labels_pred has "
                f"{pred.size} (aligned by position)"
            )
        out["nmi"] = float(normalized_mutual_info_score(true, pred))
        out["ari"] = float(adjusted_rand_score(true, pred))
    if embeddings is not None:
        if silhouette_metric not in SILHOUETTE_METRICS:
            raise ValueError(
                f"silhouette_metric must be one of {SILHOUETTE_METRICS}, "
                f"got {silhouette_metric!r}"
            )
        if silhouette_sample < 2:
            raise ValueError(f"silhouette_sample must be >= 2, got {silhouette_sample}")
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.shape[0] != pred.size:
            raise ValueError(
                f"embeddings must be [n, d] with n={pred.size} (labels_pred), "
                f"got shape {emb.shape}"
            )
        rng = np.random.default_rng(seed)
        rows = (
            rng.choice(pred.size, silhouette_sample, replace=False)
            if pred.size > silhouette_sample
            else np.arange(pred.size)
        )
        n_lab = np.unique(pred[rows]).size
        out["silhouette"] = (
            float(silhouette_score(emb[rows], pred[rows], metric=silhouette_metric))
            if 2 <= n_lab <= rows.size - 1
            else float("nan")
        )
    return out


def plot_cluster_sizes(
    labels: np.ndarray, *, log_scale: bool = True, title: str = "Cluster sizes"
) -> Figure:
    """Cluster sizes by rank (left) and their histogram (right).

    Args:
        labels: ``[n]`` cluster of every point.
        log_scale: logarithmic size axes (default ``True``).
        title: figure title (default ``"Cluster sizes"``).

    Returns:
        A :class:`matplotlib.figure.Figure` (no pyplot state involved).
    """
    sizes = cluster_sizes(labels)
    stats = size_stats(labels)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_rank, ax_hist = fig.subplots(1, 2)
    ax_rank.bar(np.arange(1, sizes.size + 1), sizes, width=1.0)
    ax_rank.set_xlabel("cluster rank")
    ax_rank.set_ylabel("size")
    bins = (
        np.geomspace(sizes.min(), sizes.max() + 1, 30)
        if log_scale and sizes.max() > sizes.min()
        else 30
    )
    ax_hist.hist(sizes, bins=bins)
    ax_hist.set_xlabel("size")
    ax_hist.set_ylabel("clusters")
    if log_scale:
        ax_rank.set_yscale("log")
        ax_hist.set_xscale("log")
    fig.suptitle(
        f"{title}: {int(stats['n_clusters'])} clusters, median "
        f"{stats['size_median']:.0f}, Gini {stats['size_gini']:.2f}"
    )
    return fig


def label_protocol(
    embeddings: np.ndarray,
    labels_true: np.ndarray,
    *,
    k: int | None = None,
    seeds: int = 10,
    n_init: int = 10,
    normalize: bool = False,
    seed: int = 0,
) -> dict[str, float]:
    """NMI / ARI of KMeans against the labels over several seeds: the protocol of
    the self-supervised heterogeneous-graph literature (e.g. HeCo on DBLP).

    KMeans (scikit-learn, ``n_init`` starts) with ``k`` clusters (default: the
    number of label classes) runs once per seed ``seed … seed + seeds - 1`` on
    the embeddings as they are (``normalize``: L2-normalised rows first);
    each run is scored against ``labels_true``.

    Returns:
        ``nmi_k<k>_mean``, ``nmi_k<k>_std``, ``ari_k<k>_mean``, ``ari_k<k>_std``
        (population standard deviation over the seeds).

    Raises:
        ValueError: shapes differ, fewer than 2 classes, bad ``k`` or ``seeds``.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    true = _labels(labels_true, "labels_true")
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != true.size:
        raise ValueError(
            f"embeddings must be [n, d] with n={true.size} (labels_true), "
            f"got shape {x.shape}"
        )
    classes = np.unique(true).size
    k = classes if k is None else int(k)
    if classes < 2:
        raise ValueError("labels_true has fewer than 2 classes")
    if not 2 <= k <= true.size:
        raise ValueError(f"k must be in [2, {true.size}], got {k}")
    if seeds < 1 or n_init < 1:
        raise ValueError(f"seeds and n_init must be >= 1, got {seeds}, {n_init}")
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    nmi, ari = [], []
    for s in range(seed, seed + seeds):
        pred = KMeans(n_clusters=k, n_init=n_init, random_state=s).fit_predict(x)
        nmi.append(normalized_mutual_info_score(true, pred))
        ari.append(adjusted_rand_score(true, pred))
    return {
        f"nmi_k{k}_mean": float(np.mean(nmi)),
        f"nmi_k{k}_std": float(np.std(nmi)),
        f"ari_k{k}_mean": float(np.mean(ari)),
        f"ari_k{k}_std": float(np.std(ari)),
    }
