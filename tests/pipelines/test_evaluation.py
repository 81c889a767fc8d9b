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
    assert methods == [*METHODS, *CANDIDATE_METHODS, "popularity", "random"]
    by_method = {r["method"]: r for r in comparison}
    twhin = by_method["twhin_kmeans"]
    for key in ("nmi", "ari", "recall@50", "ndcg@50", "hitrate@50", "train_seconds"):
        assert key in twhin, key
    # TwHIN recovers the planted communities well above chance on tiny data
    assert twhin["nmi"] > 0.2
    assert twhin["recall@50"] > by_method["random"]["recall@50"]  # beats random
    for method in METHODS:  # every method was clustered and scored
        assert 0.0 <= by_method[method]["nmi"] <= 1.0, method
    table = (tiny_default_run.root / "data/08_reporting/comparison.md").read_text()
    assert table.splitlines()[0].startswith("| method | nmi | ari")
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
