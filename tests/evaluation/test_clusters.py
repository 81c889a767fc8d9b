"""Cluster quality: truth agreement, silhouette, size statistics, the size plot."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.datasets import make_blobs

from hgt_cluster_kedro.evaluation import cluster_quality, plot_cluster_sizes, size_stats


def test_perfect_and_random_agreement():
    true = np.repeat(np.arange(4), 50)
    perm = np.array([2, 0, 3, 1])[true]  # same partition, other names
    q = cluster_quality(perm, true)
    assert q["nmi"] == pytest.approx(1.0) and q["ari"] == pytest.approx(1.0)
    noise = np.random.default_rng(0).integers(0, 4, true.size)
    q = cluster_quality(noise, true)
    assert q["ari"] < 0.05 and q["nmi"] < 0.1


def test_silhouette_seeded_sample_and_metrics():
    x, y = make_blobs(3000, centers=3, n_features=5, cluster_std=0.5, random_state=0)
    a = cluster_quality(y, embeddings=x, silhouette_sample=500, seed=1)
    b = cluster_quality(y, embeddings=x, silhouette_sample=500, seed=1)
    e = cluster_quality(y, embeddings=x, silhouette_metric="euclidean")
    assert a["silhouette"] == b["silhouette"] and a["silhouette"] > 0.5
    assert e["silhouette"] > 0.7
    shuffled = np.random.default_rng(0).permutation(y)
    assert cluster_quality(shuffled, embeddings=x)["silhouette"] < 0.05
    one = cluster_quality(np.zeros(10, int), embeddings=x[:10])
    assert np.isnan(one["silhouette"])


def test_size_stats_known_values():
    s = size_stats(np.array([0] * 6 + [1] * 3 + [2] * 1))
    assert (s["n_clusters"], s["size_min"], s["size_max"]) == (3, 1, 6)
    assert s["size_median"] == 3 and s["size_mean"] == pytest.approx(10 / 3)
    # Gini of (1, 3, 6): sum_i (2i - n - 1) s_i / (n sum s) = (-2 + 0 + 12) / 30
    assert s["size_gini"] == pytest.approx(1 / 3)
    p = np.array([0.6, 0.3, 0.1])
    assert s["size_entropy"] == pytest.approx(-(p * np.log(p)).sum() / np.log(3))
    even = size_stats(np.repeat(np.arange(5), 7))
    assert even["size_gini"] == pytest.approx(0.0)
    assert even["size_entropy"] == pytest.approx(1.0)


def test_bad_inputs():
    with pytest.raises(
        ValueError, match="labels_true has 3 entries but labels_pred has 4"
    ):
        cluster_quality(np.zeros(4, int), np.zeros(3, int))
    with pytest.raises(ValueError, match="embeddings must be"):
        cluster_quality(np.zeros(4, int), embeddings=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="silhouette_metric"):
        cluster_quality(
            np.zeros(4, int), embeddings=np.zeros((4, 2)), silhouette_metric="l1"
        )
    with pytest.raises(ValueError, match="non-empty 1-D"):
        cluster_quality(np.zeros((2, 2), int))


def test_plot_cluster_sizes_without_pyplot_state():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    labels = np.random.default_rng(0).zipf(1.5, 2000) % 40
    fig = plot_cluster_sizes(labels, title="users")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "users" in fig.texts[0].get_text() if fig.texts else fig._suptitle.get_text()
    assert plt.get_fignums() == before
    fig.savefig(__import__("io").BytesIO(), format="png")
