"""``session`` / ``session_csv`` through a real KedroSession on tiny data."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from hgt_cluster_kedro.pipelines.evaluation.nodes import evaluate_candidates
from hgt_cluster_kedro.session.source import clicks_from_relations


def _session_params(project, **overrides):
    path = project.root / "conf/base/parameters_session.yml"
    params = yaml.safe_load(path.read_text())["session"]
    params["model"].update({"hidden": 16, "epochs": 2, "batch_size": 128})
    params.update(overrides)
    project.set_params("parameters_session.yml", "session", params)
    return params


def _planted(project):
    path = project.root / "conf/base/parameters_data_generation.yml"
    gen = yaml.safe_load(path.read_text())["data_generation"]
    gen["sessions"] = {"relation": "follow_note", "mean_length": 5, "p_follow": 0.9}
    project.set_params("parameters_data_generation.yml", "data_generation", gen)


@pytest.mark.slow
def test_session_pipeline_on_planted_sessions(kedro_project):
    _planted(kedro_project)
    params = _session_params(kedro_project, relations=["follow_note"], min_item_count=2)
    kedro_project.run(pipeline_names=["data_generation", "graph", "session"])
    catalog = kedro_project.catalog()
    clicks = catalog.load("session_clicks")
    interactions = catalog.load("interactions")
    # no leakage: a train session never holds a held-out (user, item) pair
    held = interactions[interactions["split"] != "train"]
    held_keys = set(zip(held["user"], held["item"], strict=True))
    train = clicks[clicks["split"] == "train"]
    assert not held_keys & set(zip(train["owner"], train["item"], strict=True))
    for split in ("valid", "test"):
        part = clicks[clicks["split"] == split]
        pairs = interactions[interactions["split"] == split]
        assert set(zip(part["owner"], part["item"], strict=True)) <= set(
            zip(pairs["user"], pairs["item"], strict=True)
        )
    report = catalog.load("session_report")
    for name in ("srgnn", "popularity", "item_knn", "sknn"):
        assert 0.0 <= report["test"][name]["hitrate@20"] <= 1.0
        assert report["test"][name]["mrr@20"] <= report["test"][name]["hitrate@20"]
    # planted successors: item-kNN (last click) beats popularity by far
    assert (
        report["test"]["item_knn"]["hitrate@20"]
        > 2 * report["test"]["popularity"]["hitrate@20"]
    )
    cands = catalog.load("srgnn_candidates")
    assert cands.groupby("user")["rank"].max().max() == params["candidates"]["k"] - 1
    seen = set(
        zip(
            interactions.loc[interactions.split == "train", "user"],
            interactions.loc[interactions.split == "train", "item"],
            strict=True,
        )
    )
    assert not seen & set(zip(cands["user"], cands["item"], strict=True))
    summary = catalog.load("srgnn_training")
    assert summary["epochs"] == 2 and 1 <= summary["best_epoch"] <= 2
    eval_params = yaml.safe_load(
        (kedro_project.root / "conf/base/parameters_evaluation.yml").read_text()
    )["evaluation"]
    record = evaluate_candidates(
        candidates=cands,
        interactions=interactions,
        graph=catalog.load("graph"),
        training=summary,
        params=eval_params,
    )
    assert 0 < record["recall@100"] <= 1 and 0 < record["coverage"] <= 1


@pytest.mark.slow
def test_session_bad_input_writes_nothing(kedro_project):
    kedro_project.run(pipeline_names=["data_generation", "graph"])
    before = kedro_project.files()
    _session_params(kedro_project, gap=0)
    with pytest.raises(Exception, match="session.gap must be > 0"):
        kedro_project.run(pipeline_names=["session"])
    _session_params(kedro_project, gap="1D", min_item_count=10**6)
    with pytest.raises(Exception, match="no train session left"):
        kedro_project.run(pipeline_names=["session"])
    assert kedro_project.files() == before
    # a relation without a time column (schema or table): the error names it
    catalog = kedro_project.catalog()
    graph_artifact = catalog.load("graph")
    edges = catalog.load("raw_edges")
    schema = graph_artifact.schema.model_copy(deep=True)
    schema.relations["share_note"].time_column = None
    args = (
        graph_artifact.ids["user"],
        graph_artifact.ids["note"],
        catalog.load("interactions"),
    )
    with pytest.raises(ValueError, match="'share_note' has no time_column"):
        clicks_from_relations(
            edges, schema, *args, relations=["share_note"], gap=60, max_length=None
        )
    edges["share_note"] = edges["share_note"].drop(columns="timestamp")
    with pytest.raises(ValueError, match="no timestamp column 'timestamp'"):
        clicks_from_relations(
            edges, graph_artifact.schema, *args, relations=None, gap=60, max_length=None
        )


@pytest.mark.slow
def test_session_csv_pipeline(kedro_project):
    rng = np.random.default_rng(0)
    rows = []
    for sid in range(300):
        day = f"2016-01-{1 + sid % 28:02d}"
        start = rng.integers(1, 30)
        for k in range(rng.integers(2, 6)):
            rows.append(f"{sid};NA;{(start + k) % 30 + 1};{k * 1000};{day}")
    path = kedro_project.root / "log.csv"
    path.write_text(
        "session_id;user_id;item_id;timeframe;eventdate\n" + "\n".join(rows)
    )
    _session_params(
        kedro_project,
        gap=1e9,
        count_scope="all",
        csv={"path": str(path), "test_days": 7, "valid_fraction": 0.1},
    )
    kedro_project.run(pipeline_names=["session_csv"])
    report = kedro_project.catalog().load("session_report")
    assert report["test"]["srgnn"]["n_prefixes"] > 50
    # every next item is the successor of the last: item-kNN finds it
    assert report["test"]["item_knn"]["hitrate@20"] > 0.9
