"""PyTorch k-means: agreement with scikit-learn, exactness of the accelerations,
reproducibility, empty clusters, input checks and the backend dispatcher."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from hgt_cluster_kedro.clustering import KMeansResult, fit_clusters, inertia_of, kmeans

kmeans_module = importlib.import_module("hgt_cluster_kedro.clustering.kmeans")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny inputs: OpenMP barriers only cost time, and on a shared, oversubscribed
    machine two threads make every small op wait for a descheduled thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_blobs(
        n_samples=3000, centers=6, n_features=8, cluster_std=0.6, random_state=3
    )
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def overlapping() -> np.ndarray:
    """A mixture with many more modes than clusters: lots of boundary points."""
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(40, 16))
    x = centers[rng.integers(0, 40, 4000)] + 0.8 * rng.normal(size=(4000, 16))
    return x.astype(np.float32)


def test_blobs_agree_with_sklearn(blobs):
    x, y = blobs
    ours = kmeans(x, 6, n_init=3, seed=0, device="cpu")
    ref = KMeans(6, n_init=3, random_state=0).fit(x)
    assert adjusted_rand_score(y, ours.labels) > 0.999
    assert adjusted_rand_score(ref.labels_, ours.labels) > 0.999
    assert ours.inertia == pytest.approx(ref.inertia_, rel=0.01)
    assert ours.labels.dtype == np.int64 and ours.labels.shape == (3000,)
    assert ours.centroids.shape == (6, 8) and ours.centroids.dtype == np.float32


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("prune", [True, False])
@pytest.mark.parametrize("k", [12, 32])
def test_same_iterates_as_sklearn_lloyd(overlapping, precision, prune, k):
    """From the same initial centroids, every acceleration gives Lloyd's result."""
    x = overlapping
    init = x[np.random.default_rng(0).choice(len(x), k, replace=False)]
    ref = KMeans(k, init=init, n_init=1, max_iter=15, tol=0, algorithm="lloyd")
    ref.fit(x)
    ours = kmeans(
        x,
        k,
        init=init,
        max_iter=15,
        tol=0,
        device="cpu",
        precision=precision,
        prune=prune,
        batch_size=512,  # several chunks
    )
    assert ours.n_iter == ref.n_iter_
    assert (ours.labels == ref.labels_).mean() > 0.999
    np.testing.assert_allclose(ours.centroids, ref.cluster_centers_, atol=1e-3)
    assert ours.inertia == pytest.approx(ref.inertia_, rel=1e-5)
    # the inertia from the cluster sums equals the direct computation
    assert ours.inertia == pytest.approx(inertia_of(x, ours.centroids)[0], rel=1e-6)


def test_seed_reproducible_and_changes_init(overlapping):
    a = kmeans(overlapping, 10, seed=1, device="cpu")
    b = kmeans(overlapping, 10, seed=1, device="cpu")
    c = kmeans(overlapping, 10, seed=2, device="cpu", max_iter=1)
    d = kmeans(overlapping, 10, seed=1, device="cpu", max_iter=1)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert a.inertia == b.inertia
    assert not np.array_equal(c.centroids, d.centroids)


def test_n_init_keeps_best(overlapping):
    one = kmeans(overlapping, 10, n_init=1, seed=4, device="cpu", init="random")
    many = kmeans(overlapping, 10, n_init=4, seed=4, device="cpu", init="random")
    assert many.inertia <= one.inertia + 1e-6


def test_empty_cluster_is_reseeded():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)).astype(np.float32)
    init = np.repeat(x[:2], 2, axis=0)  # duplicated rows: two clusters start empty
    res = kmeans(x, 4, init=init, max_iter=10, tol=0, device="cpu")
    assert np.bincount(res.labels, minlength=4).min() > 0
    assert np.unique(res.centroids, axis=0).shape[0] == 4


def test_tolerance_stops_early(overlapping):
    loose = kmeans(overlapping, 10, tol=1e-1, max_iter=100, device="cpu")
    strict = kmeans(overlapping, 10, tol=0, max_iter=100, device="cpu")
    assert loose.n_iter < strict.n_iter


def test_edge_sizes_and_tensor_input():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    one = kmeans(x, 1, device="cpu")
    assert (one.labels == 0).all()
    np.testing.assert_allclose(one.centroids[0], x.mean(0).numpy(), atol=1e-5)
    every = kmeans(x, 50, device="cpu")
    assert np.unique(every.labels).size == 50
    assert every.inertia == pytest.approx(0.0, abs=1e-6)


def test_compiled_and_torch_screening_agree(overlapping, monkeypatch):
    """The numba passes (CPU: bf16 screening, bound test) and the torch ones
    (the GPU path) give the same fit."""
    kw = {"init": "random", "max_iter": 10, "tol": 0, "device": "cpu"}
    compiled = kmeans(overlapping, 32, precision="bf16", batch_size=512, **kw)
    monkeypatch.setattr(kmeans_module, "_kernel", lambda name: None)
    plain = kmeans(overlapping, 32, precision="bf16", batch_size=512, **kw)
    np.testing.assert_array_equal(compiled.labels, plain.labels)
    np.testing.assert_array_equal(compiled.centroids, plain.centroids)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_many_clusters_masked_path_matches_sklearn(precision):
    """k > 256: the exact masked reduction (no index packing)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    init = x[rng.choice(3000, 300, replace=False)]
    ref = KMeans(300, init=init, n_init=1, max_iter=8, tol=0, algorithm="lloyd")
    ref.fit(x)
    ours = kmeans(
        x, 300, init=init, max_iter=8, tol=0, device="cpu", precision=precision
    )
    assert (ours.labels == ref.labels_).mean() > 0.999
    assert ours.inertia == pytest.approx(ref.inertia_, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 11}, r"k=11 .*n=10"),
        ({"k": 0}, r"k must be >= 1"),
        ({"k": 2, "max_iter": 0}, r"max_iter"),
        ({"k": 2, "precision": "fp8"}, r"precision"),
        ({"k": 2, "init": np.zeros((3, 2))}, r"init array must have shape"),
        ({"k": 2, "init": np.zeros((2, 2)), "n_init": 2}, r"n_init=2"),
        ({"k": 2, "init": "kmeans"}, r"init must be one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    x = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        kmeans(x, device="cpu", **kwargs)


def test_nan_rows_are_named():
    x = np.ones((20, 3), np.float32)
    x[[4, 17], 1] = np.nan
    with pytest.raises(ValueError, match=r"2 rows with NaN/inf.*\[4, 17\]"):
        kmeans(x, 2, device="cpu")
    with pytest.raises(ValueError, match="2-D"):
        kmeans(np.ones(5, np.float32), 2, device="cpu")


@pytest.mark.parametrize(
    ("backend", "name"),
    [
        ("auto", "torch"),
        ("sklearn", "sklearn"),
        ("sklearn_minibatch", "sklearn_minibatch"),
    ],
)
def test_fit_clusters_backends(blobs, backend, name):
    x, y = blobs
    res = fit_clusters(x, 6, backend=backend, n_init=3, seed=0)
    assert isinstance(res, KMeansResult) and res.backend == name
    assert res.labels.shape == (3000,) and res.centroids.shape == (6, 8)
    assert adjusted_rand_score(y, res.labels) > 0.95


def test_fit_clusters_switches_to_minibatch_and_checks(blobs):
    x, _ = blobs
    res = fit_clusters(x, 6, backend="sklearn", minibatch_threshold=1000, seed=0)
    assert res.backend == "sklearn_minibatch"
    with pytest.raises(ValueError, match="backend must be one of"):
        fit_clusters(x, 6, backend="faiss")
    with pytest.raises(ValueError, match=r"only apply to backend='torch'"):
        fit_clusters(x, 6, backend="sklearn", device="cpu")
    with pytest.raises(ValueError, match=r"k=4000 .*n=3000"):
        fit_clusters(x, 4000, backend="sklearn")


def test_worker_threads_give_the_same_clustering(overlapping):
    one = kmeans(overlapping, 12, seed=3, device="cpu", n_threads=1, batch_size=256)
    two = kmeans(overlapping, 12, seed=3, device="cpu", n_threads=2, batch_size=256)
    np.testing.assert_array_equal(one.labels, two.labels)
    np.testing.assert_allclose(one.centroids, two.centroids, atol=1e-5)
    assert torch.get_num_threads() == 1  # the intra-op setting is restored
