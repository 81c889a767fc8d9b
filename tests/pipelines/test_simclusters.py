"""Pipeline ``simclusters`` on tiny planted data, and its bad-input errors
(raised before anything of the pipeline is written)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import yaml
from sklearn.metrics import normalized_mutual_info_score

SIMCLUSTERS_OUTPUTS = (
    "simclusters_producer_similarity",
    "simclusters_knownfor",
    "simclusters_interested_in",
    "simclusters_user_embeddings",
    "simclusters_item_embeddings",
)


def tiny_simclusters_params(root) -> dict[str, Any]:
    """Base parameters scaled to 400 users / 600 notes, k = 4 (planted)."""
    params = yaml.safe_load(
        (root / "conf/base/parameters_simclusters.yml").read_text()
    )["simclusters"]
    params["similarity"].update({"min_consumers": 3, "top_n": 20})
    params["knownfor"].update({"k": 4, "penalty": 1.0, "compare_leiden": False})
    return params


def _configure(project) -> None:
    project.set_params(
        "parameters_simclusters.yml",
        "simclusters",
        tiny_simclusters_params(project.root),
    )


@pytest.mark.slow
def test_simclusters_pipeline_recovers_communities(kedro_project):
    _configure(kedro_project)
    kedro_project.run(pipeline_names=["data_generation", "graph", "simclusters"])
    catalog = kedro_project.catalog()
    knownfor = catalog.load("simclusters_knownfor")
    assert set(knownfor.columns) == {"id", "community", "score"}
    assert knownfor["id"].is_unique and knownfor["community"].between(0, 3).all()
    clusters = catalog.load("simclusters.user_clusters")
    truth = catalog.load("user_communities").set_index("user_id")["community"]
    nmi = normalized_mutual_info_score(
        truth.reindex(clusters["id"]).to_numpy(), clusters["cluster"].to_numpy()
    )
    assert nmi > 0.2, nmi  # chance is ~0 for 4 planted communities
    interested = catalog.load("simclusters_interested_in")
    assert interested.groupby("id").size().max() <= 5  # top_m
    emb = catalog.load("simclusters_user_embeddings")
    assert emb.shape[1] == 1 + 4
    # l2-normalised rows, pruned by min_score: norms in (0.5, 1] (or empty)
    norms = np.linalg.norm(emb.drop(columns="id").to_numpy(), axis=1)
    has = clusters["cluster"].to_numpy() >= 0
    assert (norms[has] <= 1 + 1e-5).all() and (norms[has] > 0.5).all()
    assert (norms[~has] == 0).all()
    items = catalog.load("simclusters_item_embeddings")
    assert items.groupby("id").size().max() <= 10
    training = catalog.load("simclusters_training")
    assert training["train_seconds"] > 0 and training["embedding_dim"] == 4


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("follow_relation", "likes_note", r"simclusters\.follow_relation='likes_note'"),
        (
            "follow_relation",
            "follow_note.comment_note",
            r"simclusters\.follow_relation='follow_note\.comment_note': hop 2",
        ),
        (("knownfor", "k"), 10_000, r"simclusters\.knownfor\.k=10000 is larger"),
        (("similarity", "threshold"), 1.5, r"simclusters\.similarity\.threshold"),
        (("similarity", "threshold"), 0.999, r"similarity graph is empty"),
    ],
)
def test_bad_input_fails_before_writing(kedro_project, key, value, message):
    _configure(kedro_project)
    kedro_project.run(pipeline_names=["data_generation", "graph"])
    params = tiny_simclusters_params(kedro_project.root)
    if isinstance(key, tuple):
        params[key[0]][key[1]] = value
    else:
        params[key] = value
    kedro_project.set_params("parameters_simclusters.yml", "simclusters", params)
    with pytest.raises(Exception, match=message):
        kedro_project.run(pipeline_names=["simclusters"])
    written = [p for p in kedro_project.files() if "simclusters" in str(p)]
    assert written == []
