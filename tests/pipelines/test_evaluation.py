"""``clustering`` + ``evaluation``: the whole default run on tiny data, and the
clear errors of bad evaluation inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from hgt_cluster_kedro.pipelines.clustering.nodes import cluster_users
from hgt_cluster_kedro.pipelines.evaluation.nodes import (
    evaluate_baselines,
    evaluate_method,
)
from hgt_cluster_kedro.pipelines.evaluation.pipeline import channel_rows
from hgt_cluster_kedro.pipelines.methods import CANDIDATE_METHODS, METHODS


def _load(project, name):
    return yaml.safe_load(
        (project.root / "conf/base" / f"parameters_{name}.yml").read_text()
    )[name]


@pytest.fixture
def tiny_default_run(tiny_run_project):
    """The session's tiny default run (tests/conftest.py), read-only here."""
    return tiny_run_project


@pytest.mark.slow
def test_default_run_writes_comparison(tiny_default_run):
    catalog = tiny_default_run.catalog()
    comparison = catalog.load("comparison")
    methods = [r["method"] for r in comparison]
    assert methods == [
        *METHODS,
        *channel_rows(METHODS),
        *CANDIDATE_METHODS,
        *(f"{m}_tuned" for m in METHODS),
        "popularity",
        "random",
        "ease",
        "item_knn",
        "oracle",
    ]
    by_method = {r["method"]: r for r in comparison}
    # the planted data has an oracle: gap_closed for every row, 1 for itself
    assert by_method["oracle"]["gap_closed@50"] == pytest.approx(1.0)
    assert by_method["popularity"]["gap_closed@50"] == pytest.approx(0.0)
    assert by_method["oracle"]["recall@50"] > by_method["popularity"]["recall@50"]
    for rec in comparison:
        assert rec["gap_closed@50"] is not None, rec["method"]
    # EASE's lambda and item-kNN's neighbours come from the valid split
    assert by_method["ease"]["l2"] in {
        float(v) for v in by_method["ease"]["valid_recall@50_by_l2"]
    }
    assert by_method["item_knn"]["neighbors"] > 0
    # each embedding's u2u2i again with m and the popularity prior chosen on
    # valid (evaluation.u2u2i_tuning); the plain row keeps m_neighbors
    tuning = _load(tiny_default_run, "evaluation")["u2u2i_tuning"]
    capped = {min(m, 400 - 1) for m in tuning["m_grid"]}  # 400 users (conftest)
    for method in METHODS:
        tuned = by_method[f"{method}_tuned"]
        assert tuned["tuned_from"] == method
        assert tuned["m_neighbors"] in capped
        assert tuned["popularity_weight"] in tuning["popularity_weights"]
        best = max(tuned["valid_recall"].values())
        chosen = f"m={tuned['m_neighbors']},w={tuned['popularity_weight']:g}"
        assert tuned["valid_recall"][chosen] == best
        assert tuned["gap_closed@50"] is not None
    assert by_method["hgt_som_tuned"]["same_embedding_as"] == "hgt_kmeans_tuned"
    # rows sharing an embedding are marked
    assert by_method["twhin_som"]["same_embedding_as"] == "twhin_kmeans"
    assert by_method["hgt_som"]["same_embedding_as"] == "hgt_kmeans"
    twhin = by_method["twhin_kmeans"]
    for key in ("nmi", "ari", "recall@50", "ndcg@50", "hitrate@50", "train_seconds"):
        assert key in twhin, key
    # TwHIN recovers the planted communities well above chance on tiny data
    assert twhin["nmi"] > 0.2
    assert twhin["recall@50"] > by_method["random"]["recall@50"]  # beats random
    # every method's NMI / ARI is the score of its saved clusters against the
    # planted communities (recomputed here from the files, aligned by user id)
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    truth = catalog.load("user_communities").set_index("user_id")["community"]
    for method in METHODS:
        clusters = catalog.load(f"{method}.user_clusters")
        true = truth.reindex(clusters["id"]).to_numpy()
        assert not pd.isna(true).any(), method
        pred = clusters["cluster"].to_numpy()
        nmi = normalized_mutual_info_score(true, pred)
        assert by_method[method]["nmi"] == pytest.approx(nmi, abs=1e-9), method
        ari = adjusted_rand_score(true, pred)
        assert by_method[method]["ari"] == pytest.approx(ari, abs=1e-9), method
    table = (tiny_default_run.root / "data/08_reporting/comparison.md").read_text()
    assert table.splitlines()[0].startswith("| method | nmi | ari")
    for column in ("ndcg@10", "hitrate@10", "gap_closed@50", "clusters", "notes"):
        assert f"| {column} |" in table.splitlines()[0], column
    assert "embedding of twhin_kmeans" in table
    clusters = catalog.load("twhin_kmeans.user_clusters")
    assert clusters["cluster"].nunique() == 4
    # bad inputs to the same nodes give clear errors (one run serves both checks)
    _check_bad_inputs(_inputs(tiny_default_run))


def _inputs(tiny_default_run):
    catalog = tiny_default_run.catalog()
    params = _load(tiny_default_run, "evaluation")
    return {
        "user_embeddings": catalog.load("twhin_user_embeddings"),
        "user_clusters": catalog.load("twhin_kmeans.user_clusters"),
        "interactions": catalog.load("interactions"),
        "graph": catalog.load("graph"),
        "ground_truth": catalog.load("user_communities"),
        "training": {"train_seconds": 1.0},
        "params": params,
    }


def _check_bad_inputs(small_inputs):
    inputs = dict(small_inputs)
    inputs["user_embeddings"] = small_inputs["user_embeddings"].iloc[1:]
    with pytest.raises(ValueError, match="user_embeddings: 1 ids have no embedding"):
        evaluate_method(**inputs)
    bad = small_inputs["user_embeddings"].copy()
    bad.loc[3, "e0"] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values for ids"):
        evaluate_method(**{**small_inputs, "user_embeddings": bad})
    with pytest.raises(ValueError, match="dimension 63 differs from expected 64"):
        evaluate_method(
            **{
                **small_inputs,
                "user_embeddings": small_inputs["user_embeddings"].drop(columns=["e5"]),
                "training": {"embedding_dim": 64},
            }
        )
    no_test = small_inputs["interactions"].copy()
    no_test["split"] = pd.Categorical(
        ["train"] * len(no_test), categories=["train", "valid", "test"]
    )
    with pytest.raises(ValueError, match="has no test pairs"):
        evaluate_baselines(no_test, small_inputs["graph"], small_inputs["params"])
    with pytest.raises(
        ValueError, match="clustering.k=10000 is larger than the number of users"
    ):
        cluster_users(small_inputs["user_embeddings"], {"k": 10_000})


def _rec(recall50, **extra):
    return {"recall@50": recall50, "ndcg@50": recall50 / 2, **extra}


def test_compare_gap_closed_and_marks():
    from hgt_cluster_kedro.pipelines.evaluation.nodes import compare, fingerprints

    emb = np.arange(12, dtype=np.float32).reshape(4, 3)
    a = fingerprints(emb, np.array([0, 0, 1, 1]))
    b = fingerprints(emb, np.array([5, 5, 2, 2]))  # same partition, other labels
    c = fingerprints(emb + 1, np.array([0, 1, 1, 1]))
    assert a["embedding_fingerprint"] == b["embedding_fingerprint"]
    assert a["cluster_fingerprint"] == b["cluster_fingerprint"]
    assert a["cluster_fingerprint"] != c["cluster_fingerprint"]
    baselines = {"popularity": _rec(0.10), "random": _rec(0.01)}
    classical = {"ease": _rec(0.14, train_seconds=1.0)}
    oracle = {"available": True, **_rec(0.20)}
    records, table, _ = compare(
        baselines,
        classical_baselines=classical,
        oracle=oracle,
        m1=_rec(0.15, n_clusters=2.0, size_min=2.0, size_max=2.0, **a),
        m2=_rec(0.15, **b),
        m3=_rec(0.05, **c),
    )
    by = {r["method"]: r for r in records}
    assert [r["method"] for r in records] == [
        "m1",
        "m2",
        "m3",
        "popularity",
        "random",
        "ease",
        "oracle",
    ]
    assert by["m1"]["gap_closed@50"] == pytest.approx(0.5)
    assert by["ease"]["gap_closed@50"] == pytest.approx(0.4)
    assert by["m3"]["gap_closed@50"] == pytest.approx(-0.5)
    assert (
        by["oracle"]["gap_closed@50"] == pytest.approx(1.0)
        and by["oracle"]["reference"]
    )
    assert by["m2"]["same_embedding_as"] == "m1"
    assert by["m2"]["same_clusters_as"] == "m1"
    assert "same_embedding_as" not in by["m3"]
    assert "| 2 (2–2) |" in table and "clusters of m1 (ARI 1.0)" in table
    # no oracle (real data): null with the reason, in the table's legend too
    records, table, _ = compare(
        baselines,
        oracle={"available": False, "reason": "no ground truth"},
        m1=_rec(0.2),
    )
    assert all(r["gap_closed@50"] is None for r in records)
    assert records[0]["gap_closed_reason"] == "no ground truth"
    assert "gap_closed: no ground truth." in table
    assert "oracle" not in [r["method"] for r in records]


def test_oracle_and_classical_nodes_refuse_or_explain():
    from hgt_cluster_kedro.pipelines.evaluation.nodes import (
        evaluate_classical_baselines,
        evaluate_oracle,
    )

    off = evaluate_oracle(None, None, None, {"oracle": {"enabled": False}})
    assert off["available"] is False and "planted data only" in off["reason"]
    assert evaluate_oracle(None, None, None, {})["available"] is False
    no_truth = evaluate_oracle(
        None, None, None, {"oracle": {"enabled": True}, "ground_truth": None}
    )
    assert no_truth == {
        "available": False,
        "reason": "no ground truth (evaluation.ground_truth) for this data",
    }
    with pytest.raises(
        ValueError, match="evaluation.oracle.enabeld: unknown parameter"
    ):
        evaluate_oracle(None, None, None, {"oracle": {"enabeld": True}})
    with pytest.raises(
        ValueError,
        match=r"evaluation.classical_baselines.ease.max_items: Input should be greater",
    ):
        evaluate_classical_baselines(
            None, None, {"classical_baselines": {"ease": {"max_items": 0}}}
        )
