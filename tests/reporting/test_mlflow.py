"""The optional ``mlflow`` extra: ``kedro run --env mlflow`` logs the run's
parameters, every method's comparison metrics and the comparison files to a
local MLflow file store (``mlruns/``). Skipped unless kedro-mlflow is installed
(``pip install -c requirements.lock -e ".[mlflow]"``)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml

pytest.importorskip("kedro_mlflow")

EXPERIMENT = "hgt_cluster_kedro"  # conf/mlflow/mlflow.yml


@pytest.mark.slow
def test_mlflow_env_logs_params_metrics_and_table(
    tiny_run_project, tmp_path, monkeypatch
):
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from mlflow.telemetry.client import get_telemetry_client

    # nothing phones home: tests/conftest.py turns telemetry off before import
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert get_telemetry_client() is None
    root = tmp_path / "project"
    shutil.copytree(
        tiny_run_project.root, root, ignore=shutil.ignore_patterns("mlruns")
    )
    monkeypatch.chdir(root)
    # the shared tiny run (base environment: kedro-mlflow's defaults, nested
    # runs) leaves its run active in this process; close it
    while mlflow.active_run() is not None:
        mlflow.end_run()
    bootstrap_project(root)
    with KedroSession.create(project_path=root, env="mlflow") as session:
        session.run(pipeline_names=["evaluation"])

    client = mlflow.MlflowClient(tracking_uri=(root / "mlruns").as_uri())
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "evaluation"
    assert mlflow.active_run() is None  # closed at the end (run.nested: false)
    # parameters: every params:<name> input, nested keys flattened
    params = run.data.params
    evaluation = yaml.safe_load(
        (root / "conf/base/parameters_evaluation.yml").read_text()
    )["evaluation"]
    assert params["evaluation.m_neighbors"] == str(evaluation["m_neighbors"])
    # metrics: every method's numeric results, as saved in the comparison JSON
    versions = sorted((root / "data/08_reporting/comparison.json").iterdir())
    records = json.loads((versions[-1] / "comparison.json").read_text())
    metrics = run.data.metrics
    for record in records:
        name = f"{record['method']}.recall_at_50"
        assert metrics[name] == pytest.approx(record["recall@50"]), name
    twhin = next(r for r in records if r["method"] == "twhin_kmeans")
    assert metrics["twhin_kmeans.nmi"] == pytest.approx(twhin["nmi"])
    # the comparison JSON, table and plot as artifacts
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "reporting")}
    assert {
        "reporting/comparison.json",
        "reporting/comparison.md",
        "reporting/comparison.png",
    } <= artifacts
