"""``som``: the namespaced pipeline on tiny embeddings, in memory and through a
real KedroSession (catalog factories)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure

from hgt_cluster_kedro.embeddings import to_frame
from hgt_cluster_kedro.pipelines.methods import methods_using
from hgt_cluster_kedro.pipelines.som import create_pipeline
from hgt_cluster_kedro.pipelines.som.nodes import train_som

PARAMS = Path(__file__).resolve().parents[2] / "conf/base/parameters_som.yml"
OUTPUTS = ("user_clusters", "som_codebook", "som_report", "som_u_matrix", "som_hit_map")
REPORT_KEYS = {
    "backend",
    "grid",
    "quantization_error",
    "topographic_error",
    "seconds",
    "n_users",
    "k",
}


class _Kept(MemoryDataset):
    """A memory dataset the runner cannot release (to read intermediates)."""

    def _release(self) -> None:
        pass


def _embeddings(n: int = 240, d: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, d)) * 3
    x = centers[rng.integers(0, 4, n)] + rng.normal(size=(n, d))
    ids = rng.permutation(np.arange(1000, 1000 + n))  # original ids, not 0..n-1
    return to_frame(ids, x)


def _params(**overrides) -> dict:
    params = yaml.safe_load(PARAMS.read_text())["som"]
    params.update({"rows": 3, "cols": 4, "k": 4, "epochs": 5, "progress": False})
    params.update(overrides)
    return params


def test_pipeline_expands_over_som_methods():
    methods = methods_using("som")
    assert {"twhin_som", "hgt_som"} <= set(methods)
    pipe = create_pipeline()
    expected = {f"{m}.{o}" for m in methods for o in OUTPUTS}
    assert pipe.all_outputs() == expected
    assert pipe.inputs() == {f"{p}_user_embeddings" for p in methods.values()} | {
        "params:som"
    }


def test_pipeline_runs_in_memory():
    methods = methods_using("som")
    frames = {
        p: _embeddings(seed=i) for i, p in enumerate(sorted(set(methods.values())))
    }
    catalog = DataCatalog(
        datasets={
            **{f"{p}_user_embeddings": MemoryDataset(f) for p, f in frames.items()},
            "params:som": MemoryDataset(_params()),
            **{f"{m}.{o}": _Kept() for m in methods for o in OUTPUTS},
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    out = {name: catalog[name] for name in catalog.keys()}
    for method, prefix in methods.items():
        emb = frames[prefix]
        clusters = out[f"{method}.user_clusters"].load()
        assert list(clusters.columns) == ["id", "cluster"]
        assert clusters["cluster"].dtype == np.int32
        np.testing.assert_array_equal(clusters["id"], emb["id"])
        assert set(clusters["cluster"]) <= set(range(4))
        codebook = out[f"{method}.som_codebook"].load()
        assert list(codebook.columns[:3]) == ["unit", "row", "col"]
        assert list(codebook.columns[-2:]) == ["hits", "cluster"]
        assert len(codebook) == 12 and codebook["hits"].sum() == len(emb)
        assert [c for c in codebook.columns if c.startswith("e")] == [
            f"e{j}" for j in range(8)
        ]
        # normalize: true -> codebook in the unit-norm space, near the sphere
        norms = np.linalg.norm(codebook.filter(regex=r"^e\d+$").to_numpy(), axis=1)
        assert norms.max() <= 1.0 + 1e-5
        # a user's cluster is the cluster of its best-matching unit
        x = emb.filter(regex=r"^e\d+$").to_numpy()
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        w = codebook.filter(regex=r"^e\d+$").to_numpy()
        bmu = ((x[:, None, :] - w[None]) ** 2).sum(-1).argmin(1)
        agree = codebook["cluster"].to_numpy()[bmu] == clusters["cluster"].to_numpy()
        assert agree.mean() > 0.99  # float32 near-ties aside
        report = out[f"{method}.som_report"].load()
        assert REPORT_KEYS <= set(report)
        assert report["grid"] == [3, 4] and report["k"] == 4
        assert report["n_users"] == len(emb) and report["backend"] == "batch"
        assert 0.0 <= report["topographic_error"] <= 1.0
        assert report["quantization_error"] > 0
        for fig in ("som_u_matrix", "som_hit_map"):
            assert isinstance(out[f"{method}.{fig}"].load(), Figure)


def test_node_without_merge_gives_unit_ids_and_checks_parameters():
    emb = _embeddings()
    clusters, codebook, report = train_som(emb, _params(k=None, normalize=False))
    assert report["k"] is None and report["n_clusters"] <= 12
    assert set(clusters["cluster"]) <= set(codebook["unit"])
    np.testing.assert_array_equal(codebook["cluster"], codebook["unit"])
    with pytest.raises(
        ValueError, match=r"som\.sigm: unknown parameter; did you mean 'sigma'"
    ):
        train_som(emb, _params(sigm=2.0))
    with pytest.raises(ValueError, match=r"som\.sigma: Input should be greater than 0"):
        train_som(emb, _params(sigma=0))


@pytest.mark.slow
def test_som_pipeline_through_the_catalog(kedro_project):
    params = _params()
    kedro_project.set_params("parameters_som.yml", "som", params)
    catalog = kedro_project.catalog()
    methods = methods_using("som")
    for i, prefix in enumerate(sorted(set(methods.values()))):
        catalog.save(f"{prefix}_user_embeddings", _embeddings(seed=i))
    kedro_project.run(pipeline_names=["som"])
    catalog = kedro_project.catalog()
    for method in methods:
        clusters = catalog.load(f"{method}.user_clusters")
        assert clusters["cluster"].dtype == np.int32 and len(clusters) == 240
        report = catalog.load(f"{method}.som_report")
        assert REPORT_KEYS <= set(report) and report["grid"] == [3, 4]
        codebook = catalog.load(f"{method}.som_codebook")
        assert len(codebook) == 12
    files = {p.name for p in kedro_project.files()}
    assert {"som_u_matrix.png", "som_hit_map.png", "som_report.json"} <= files
