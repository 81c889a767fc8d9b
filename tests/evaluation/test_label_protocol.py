"""The literature's label protocol (KMeans k = classes, several seeds) and its
columns in the comparison table."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from hgt_cluster_kedro.evaluation.clusters import label_protocol
from hgt_cluster_kedro.pipelines.evaluation.nodes import compare


def test_separated_classes_score_one_and_keys_name_k():
    x, y = make_blobs(120, centers=3, n_features=4, cluster_std=0.3, random_state=0)
    out = label_protocol(x, y, seeds=3, n_init=2)
    assert set(out) == {"nmi_k3_mean", "nmi_k3_std", "ari_k3_mean", "ari_k3_std"}
    assert out["nmi_k3_mean"] == pytest.approx(1.0)
    assert out["ari_k3_std"] == pytest.approx(0.0)
    other = label_protocol(x, y, k=5, seeds=2, n_init=1, normalize=True)
    assert "nmi_k5_mean" in other and other["nmi_k5_mean"] < 1.0


def test_noise_scores_near_zero_and_bad_inputs():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3)), rng.integers(0, 4, 200)
    assert label_protocol(x, y, seeds=2, n_init=1)["ari_k4_mean"] < 0.05
    with pytest.raises(ValueError, match="embeddings must be"):
        label_protocol(x[:10], y)
    with pytest.raises(ValueError, match="fewer than 2 classes"):
        label_protocol(x, np.zeros(200, int))
    with pytest.raises(ValueError, match="k must be in"):
        label_protocol(x, y, k=1)


def test_comparison_table_shows_mean_and_std_after_nmi_ari():
    rec = {"nmi": 0.5, "ari": 0.4, "nmi_k4_mean": 0.7, "nmi_k4_std": 0.01}
    rec |= {"ari_k4_mean": 0.75, "ari_k4_std": 0.02}
    _, table, _ = compare({"random": {"recall@10": 0.0}}, m=rec)
    header, _, row, base, *legend = table.splitlines()
    assert header.startswith("| method | nmi | ari | nmi_k4 | ari_k4 | recall@10")
    # the legend says what the ± spans
    assert any(
        "KMeans seeds" in line and "not over training" in line for line in legend
    )
    assert "| 0.7000 ± 0.0100 | 0.7500 ± 0.0200 |" in row
    assert base.startswith("| random | – | – | – | – |")
