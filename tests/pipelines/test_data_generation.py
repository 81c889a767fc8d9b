"""``data_generation`` through a real KedroSession on a tiny configuration."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from tests.conftest import tiny_generation_params


def _latest(root, name):
    versions = sorted((root / "data" / "01_raw" / name).iterdir())
    return versions[-1] / name


@pytest.mark.slow
def test_pipeline_writes_versioned_tables(kedro_project):
    kedro_project.run(pipeline_names=["data_generation"])
    catalog = kedro_project.catalog()
    edges = catalog.load("raw_edges")
    nodes = catalog.load("raw_nodes")
    truth = catalog.load("user_communities")
    assert set(edges) == {"follow_note", "comment_note", "share_note"}
    assert set(nodes) == {"user", "note"}
    assert len(edges["share_note"]) == 1200
    assert len(truth) == 400
    # versioned: <filepath>/<timestamp>/<name>/<table>/part-*.parquet
    assert (_latest(kedro_project.root, "edges") / "share_note").is_dir()


@pytest.mark.slow
def test_dask_mode_equals_local_mode(kedro_project):
    kedro_project.run(pipeline_names=["data_generation"])
    local = kedro_project.catalog().load("raw_edges")
    kedro_project.set_params(
        "parameters_data_generation.yml",
        "data_generation",
        tiny_generation_params(mode="dask"),
    )
    kedro_project.run(pipeline_names=["data_generation"])
    dask = kedro_project.catalog().load("raw_edges")
    parts = list(
        (_latest(kedro_project.root, "edges") / "follow_note").glob("*.parquet")
    )
    assert len(parts) == 4  # one part per block
    for rel in local:
        pd.testing.assert_frame_equal(local[rel], dask[rel])


@pytest.mark.slow
def test_dask_statistics_match_local_with_other_block_count(kedro_project):
    """Different n_parts gives other random streams but the same statistics."""
    from hgt_cluster_kedro.generation import GeneratorConfig, generate_local

    local = generate_local(GeneratorConfig.model_validate(tiny_generation_params()))
    kedro_project.set_params(
        "parameters_data_generation.yml",
        "data_generation",
        tiny_generation_params(mode="dask", n_parts=5),
    )
    kedro_project.run(pipeline_names=["data_generation"])
    catalog = kedro_project.catalog()
    dask_edges = catalog.load("raw_edges")
    truth = catalog.load("user_communities")
    topics = catalog.load("note_topics")
    for rel, edges in dask_edges.items():
        assert len(edges) == len(local.edges[rel])
        m = edges.merge(truth, on="user_id").merge(topics, on="note_id")
        ml = local.edges[rel].merge(local.user_communities, on="user_id")
        ml = ml.merge(local.note_topics, on="note_id")
        share_d = (m["community"] == m["topic"]).mean()
        share_l = (ml["community"] == ml["topic"]).mean()
        assert share_d == pytest.approx(share_l, abs=0.06), rel
        assert edges["weight"].mean() == pytest.approx(
            local.edges[rel]["weight"].mean(), rel=0.15
        )


@pytest.mark.slow
def test_bad_parameter_stops_before_anything_is_written(kedro_project):
    kedro_project.set_params(
        "parameters_data_generation.yml",
        "data_generation",
        tiny_generation_params(n_communities=10_000),
    )
    with pytest.raises(Exception, match="n_communities=10000 must be <= n_users=400"):
        kedro_project.run(pipeline_names=["data_generation"])
    assert kedro_project.files() == []


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_path_stops_before_anything_is_written(kedro_project):
    readonly = kedro_project.root / "data" / "01_raw"
    readonly.mkdir(parents=True)
    readonly.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="raw_edges"):
            kedro_project.run(pipeline_names=["data_generation"])
    finally:
        readonly.chmod(0o700)
    assert kedro_project.files() == []


@pytest.mark.slow
def test_output_path_blocked_by_a_file_stops_before_anything_is_written(
    kedro_project,
):
    (kedro_project.root / "data" / "01_raw").write_text("not a directory")
    with pytest.raises(PermissionError, match="is a file"):
        kedro_project.run(pipeline_names=["data_generation"])
    assert [p.name for p in kedro_project.files()] == ["01_raw"]


def test_unwritable_reason_reports_permission(tmp_path, monkeypatch):
    """The pre-flight check names a directory the process may not write to."""
    from hgt_cluster_kedro import hooks

    monkeypatch.setattr(hooks.os, "access", lambda path, mode: False)
    reason = hooks.unwritable_reason(tmp_path / "a" / "b")
    assert reason == f"{tmp_path} is not writable"
