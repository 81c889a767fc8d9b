"""Self-organising maps: batch SOM (PyTorch) against MiniSom, error
definitions, checks, reproducibility, merge into k clusters, plots."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from minisom import MiniSom
from sklearn.metrics import normalized_mutual_info_score

from hgt_cluster_kedro.clustering import (
    fit_som,
    merge_units,
    plot_hit_map,
    plot_u_matrix,
    som_errors,
    u_matrix,
)
from hgt_cluster_kedro.clustering.som import pca_init, random_init, schedule


def blobs(
    n: int = 2000, d: int = 16, k: int = 8, seed: int = 0, spread: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = spread * rng.normal(size=(k, d))
    labels = rng.integers(0, k, n)
    return (centers[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return blobs()[0]


# ------------------------------------------------------------ agreement with MiniSom


def test_batch_som_agrees_with_minisom(data):
    """Same data (2k x 16, 8 blobs), grid 6 x 6, PCA init, radius 3 -> 0.5 over
    10 epochs (the last 30% at 0.5), seed 0. Measured on blob seeds 0-5: QE
    relative difference -0.35% .. +0.26% (seed 0: batch 3.7859 vs MiniSom
    3.7919), TE difference -0.033 .. +0.005 (seed 0: 0.0140 vs 0.0220).
    Tolerances: 2% on QE, 0.06 on TE."""
    kw = {"rows": 6, "cols": 6, "sigma": 3.0, "sigma_final": 0.5, "epochs": 10}
    batch = fit_som(data, backend="batch", seed=0, **kw)
    mini = fit_som(data, backend="minisom", seed=0, **kw)
    assert batch.backend == "batch" and mini.backend == "minisom"
    rel = batch.quantization_error / mini.quantization_error - 1.0
    assert abs(rel) < 0.02, (batch.quantization_error, mini.quantization_error)
    assert abs(batch.topographic_error - mini.topographic_error) < 0.06
    # both well trained: far below the QE of the initial PCA plane
    _, qe0, _ = som_errors(data, pca_init(data, 6, 6), 6, 6)
    assert batch.quantization_error < 0.5 * qe0
    assert mini.quantization_error < 0.5 * qe0


def test_errors_match_minisom_definitions(data):
    som = MiniSom(5, 7, data.shape[1], sigma=2.0, random_seed=1)
    som.pca_weights_init(data)
    som.train(data, 3000, random_order=True)
    codebook = som.get_weights().reshape(35, -1)
    bmu, qe, te = som_errors(data, codebook, 5, 7, device="cpu")
    assert qe == pytest.approx(som.quantization_error(data), rel=1e-5)
    assert te == pytest.approx(som.topographic_error(data), abs=1e-9)
    winners = np.array([np.ravel_multi_index(som.winner(v), (5, 7)) for v in data])
    assert (bmu == winners).mean() > 0.999


def test_inits_equal_minisom(data):
    som = MiniSom(4, 6, data.shape[1], random_seed=3)
    som.pca_weights_init(data)
    np.testing.assert_array_equal(
        pca_init(data, 4, 6), som.get_weights().reshape(24, -1).astype(np.float32)
    )
    som = MiniSom(4, 6, data.shape[1], random_seed=3)
    som.random_weights_init(data)
    np.testing.assert_array_equal(
        random_init(data, 4, 6, 3),
        som.get_weights().reshape(24, -1).astype(np.float32),
    )


def test_u_matrix_matches_minisom_distance_map(data):
    som = MiniSom(4, 5, data.shape[1], random_seed=0)
    som.random_weights_init(data)
    ours = u_matrix(som.get_weights().reshape(20, -1), 4, 5)
    np.testing.assert_allclose(
        ours / ours.max(), som.distance_map(scaling="mean"), rtol=1e-5
    )


# ------------------------------------------------------------------ result content


def test_result_is_consistent(data):
    res = fit_som(data, rows=3, cols=4, epochs=5, device="cpu")
    assert res.codebook.shape == (12, 16) and res.codebook.dtype == np.float32
    assert res.hits.shape == (3, 4) and res.hits.sum() == len(data)
    assert res.u_matrix.shape == (3, 4) and np.isfinite(res.u_matrix).all()
    np.testing.assert_array_equal(res.labels, res.bmu)  # k=None: cluster = unit
    np.testing.assert_array_equal(res.unit_cluster, np.arange(12))
    np.testing.assert_array_equal(
        res.hits.reshape(-1), np.bincount(res.bmu, minlength=12)
    )
    bmu, qe, te = som_errors(data, res.codebook, 3, 4)
    np.testing.assert_array_equal(bmu, res.bmu)
    assert qe == pytest.approx(res.quantization_error)
    assert te == pytest.approx(res.topographic_error)
    assert (
        len(res.history["sigma"]) == 5 and len(res.history["quantization_error"]) == 5
    )
    assert res.history["sigma"][0] == pytest.approx(2.0)  # default: max(rows, cols) / 2
    assert res.history["sigma"][-1] == pytest.approx(0.5)
    # training lowers the error (BMU pass of each epoch, before its update)
    assert res.history["quantization_error"][-1] < res.history["quantization_error"][0]
    assert res.seconds > 0 and res.epochs == 5


def test_one_unit_map_has_nan_topographic_error(data):
    res = fit_som(data[:50], rows=1, cols=1, epochs=2, init="random")
    assert np.isnan(res.topographic_error)
    np.testing.assert_allclose(res.codebook[0], data[:50].mean(axis=0), atol=1e-5)


def test_iterations_map_to_epochs_for_batch(data):
    res = fit_som(data, rows=3, cols=3, iterations=3 * len(data))
    assert res.epochs == 3


def test_schedule_endpoints():
    assert schedule(4.0, 0.5, 0, 10, "exponential") == pytest.approx(4.0)
    assert schedule(4.0, 0.5, 9, 10, "exponential") == pytest.approx(0.5)
    assert schedule(4.0, 0.5, 4.5, 10, "linear") == pytest.approx(2.25)
    assert schedule(4.0, 0.5, 0, 1, "linear") == pytest.approx(4.0)
    # convergence phase: the last 3 of 10 steps held at the end value
    held = [
        schedule(4.0, 0.5, t, 10, "linear", convergence_fraction=0.3) for t in range(10)
    ]
    assert held[0] == pytest.approx(4.0) and held[6:] == pytest.approx([0.5] * 4)
    assert held[3] == pytest.approx(2.25)


# ----------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("init", ["pca", "random"])
def test_same_parameters_same_outputs(data, init):
    kw = {"rows": 5, "cols": 5, "epochs": 4, "init": init, "k": 4, "seed": 7}
    a, b = fit_som(data, **kw), fit_som(data, **kw)
    np.testing.assert_array_equal(a.codebook, b.codebook)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.quantization_error == b.quantization_error
    if init == "random":
        c = fit_som(data, **{**kw, "seed": 8})
        assert not np.array_equal(a.codebook, c.codebook)


def test_minisom_backend_is_seeded(data):
    kw = {"rows": 3, "cols": 3, "epochs": 1, "backend": "minisom"}
    a = fit_som(data[:300], seed=1, **kw)
    b = fit_som(data[:300], seed=1, **kw)
    c = fit_som(data[:300], seed=2, **kw)  # another sample order
    np.testing.assert_array_equal(a.codebook, b.codebook)
    assert not np.array_equal(a.codebook, c.codebook)


def test_thread_count_changes_only_rounding(data):
    one = fit_som(data, rows=4, cols=4, epochs=5, n_threads=1, batch_size=256)
    two = fit_som(data, rows=4, cols=4, epochs=5, n_threads=2, batch_size=256)
    np.testing.assert_allclose(one.codebook, two.codebook, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(data):
    cpu = fit_som(data, rows=4, cols=4, epochs=5, device="cpu")
    gpu = fit_som(data, rows=4, cols=4, epochs=5, device="cuda")
    np.testing.assert_allclose(cpu.codebook, gpu.codebook, atol=1e-3)
    assert (cpu.bmu == gpu.bmu).mean() > 0.99


# --------------------------------------------------------------------------- merge


def test_merge_recovers_separated_blobs():
    x, truth = blobs(n=2000, d=16, k=6, seed=3, spread=4.0)
    res = fit_som(x, rows=8, cols=8, k=6, epochs=10, seed=0)
    assert res.k == 6
    assert np.unique(res.labels).size == 6
    assert normalized_mutual_info_score(truth, res.labels) > 0.95
    np.testing.assert_array_equal(res.labels, res.unit_cluster[res.bmu])
    # clusters numbered in the order of their first unit
    _, first = np.unique(res.unit_cluster, return_index=True)
    assert list(res.unit_cluster[np.sort(first)]) == list(range(6))


def test_merge_units_weights_and_checks():
    codebook = np.array([[0.0], [0.1], [10.0], [10.1], [5.0]])
    hits = np.array([5, 5, 5, 5, 0])  # the empty unit joins the nearest cluster
    np.testing.assert_array_equal(merge_units(codebook, hits, 2), [0, 0, 1, 1, 0])
    with pytest.raises(ValueError, match="k=5 clusters but only 4"):
        merge_units(codebook, hits, 5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_k_above_used_units_is_lowered(data, caplog):
    x = np.repeat(data[:2], 20, axis=0)  # 2 distinct points: few units win
    with caplog.at_level("WARNING"):
        res = fit_som(x, rows=3, cols=3, k=5, epochs=3, init="random")
    used = int((res.hits > 0).sum())
    assert used < 5 and res.k == used
    assert np.unique(res.labels).size <= res.k
    assert "units won samples" in caplog.text


# --------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rows": 0}, r"rows must be >= 1, got rows=0"),
        ({"cols": -2}, r"cols must be >= 1, got cols=-2"),
        ({"rows": 2.5}, r"rows must be an integer"),
        ({"sigma": 0.0}, r"sigma must be finite and > 0, got sigma=0.0"),
        ({"sigma": -1.0}, r"sigma=-1.0"),
        ({"sigma_final": 0.0}, r"sigma_final must be finite and > 0"),
        ({"sigma": 1.0, "sigma_final": 2.0}, r"sigma_final must be <= sigma"),
        ({"learning_rate": 0.0}, r"learning_rate must be finite and > 0"),
        ({"epochs": 0}, r"epochs must be >= 1, got epochs=0"),
        ({"epochs": 2, "iterations": 10}, r"epochs or iterations, not both"),
        ({"epochs": None, "iterations": 0}, r"iterations must be >= 1"),
        ({"backend": "gpu"}, r"backend must be one of .* got backend='gpu'"),
        ({"init": "kmeans"}, r"init must be one of .* got init='kmeans'"),
        ({"decay": "cosine"}, r"decay must be one of .* got decay='cosine'"),
        ({"convergence_fraction": 1.0}, r"convergence_fraction must be in \[0, 1\)"),
        ({"k": 0}, r"k must be >= 1, got k=0"),
        ({"k": 10}, r"k=10 clusters but the grid has only rows\*cols=9 units"),
        ({"batch_size": 0}, r"batch_size must be >= 1"),
        ({"seed": -1}, r"seed must be >= 0"),
        ({"n_threads": 0}, r"n_threads must be >= 1"),
    ],
)
def test_bad_parameters_raise(data, kwargs, match):
    params = {"rows": 3, "cols": 3, "epochs": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        fit_som(data[:100], **params)


def test_bad_data_raises(data):
    bad = data[:100].copy()
    bad[[3, 17], 2] = np.nan
    with pytest.raises(
        ValueError, match=r"2 rows with NaN/inf values, e.g. rows \[3, 17\]"
    ):
        fit_som(bad, rows=2, cols=2)
    with pytest.raises(
        ValueError, match=r"n=8 samples, fewer than the rows\*cols=3\*3=9"
    ):
        fit_som(data[:8], rows=3, cols=3)
    with pytest.raises(ValueError, match="2-D"):
        fit_som(data[0], rows=2, cols=2)
    with pytest.raises(ValueError, match="needs at least 2 features"):
        fit_som(data[:100, :1], rows=2, cols=2, init="pca")
    with pytest.raises(ValueError, match="codebook has shape"):
        som_errors(data, np.zeros((4, 16)), 3, 3)


def test_cuda_request_without_cuda_raises(data):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(ValueError, match="CUDA is not available"):
        fit_som(data[:100], rows=2, cols=2, device="cuda")


# --------------------------------------------------------------------------- plots


def test_plots_are_figures(data):
    res = fit_som(data, rows=4, cols=5, k=3, epochs=3)
    clusters = res.unit_cluster.reshape(4, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pyplot / layout warnings
        um = plot_u_matrix(res.u_matrix, clusters=clusters)
        hm = plot_hit_map(res.hits, clusters=clusters)
        plain = plot_hit_map(res.hits)
    for fig in (um, hm, plain):
        assert isinstance(fig, Figure)
        fig.savefig(io.BytesIO(), format="png")
    assert "empty units" in hm.axes[0].get_title()
    with pytest.raises(ValueError, match="hits must be a non-empty"):
        plot_hit_map(np.zeros(3))
