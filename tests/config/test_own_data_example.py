"""docs/own_data.md end to end: a generated interaction log + item table run
through ``kedro run --env example_log`` with no ``--pipelines`` (tiny budgets)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hgt_cluster_kedro.examples.interaction_log import write_example_log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_example_log_files_are_seeded_and_planted(tmp_path):
    rows = write_example_log(tmp_path / "a", n_users=200, n_items=150, seed=3)
    write_example_log(tmp_path / "b", n_users=200, n_items=150, seed=3)
    for name in ("interactions.csv", "items.csv", "user_segments.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (
            tmp_path / "b" / name
        ).read_bytes()
    log = pd.read_csv(tmp_path / "a/interactions.csv")
    assert list(log.columns) == ["user", "item", "timestamp", "weight"]
    assert len(log) == rows["interactions"] and log["user"].nunique() == 200
    assert not log.duplicated(["user", "item"]).any() and (log["weight"] >= 1).all()
    items = pd.read_csv(tmp_path / "a/items.csv")
    segments = pd.read_csv(tmp_path / "a/user_segments.csv")
    merged = log.merge(items, on="item").merge(segments, on="user")
    share = (merged["category"] % 4 == merged["segment"]).mean()
    assert share > 0.7  # the planted signal (p_in_segment 0.8 plus chance)


@pytest.mark.slow
def test_own_data_guide_runs_with_a_plain_kedro_run(kedro_project):
    root = kedro_project.root
    write_example_log(root / "data/example_log/input", n_users=300, n_items=240)
    tiny = {
        "twhin.epochs": 2,
        "twhin.batch_size": 512,
        "hgt.train.max_steps": 3,
        "hgt.train.batch_size": 64,
        "hgt.train.val_max_users": 50,
        "hgt.train.progress": "false",
        "hgt.launch.nproc_per_node": 1,
        "hgt.launch.rdzv_endpoint": f"127.0.0.1:{_free_port()}",
        "hgt_som_joint.train.max_steps": 2,
        "hgt_som_joint.train.objectives.som.init_users": 100,
        "graph.partition.compare": "false",
        "som.rows": 4,
        "som.cols": 4,
        "som.progress": "false",
        "evaluation.label_protocol.seeds": 2,
    }
    kedro = Path(sys.executable).parent / "kedro"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KEDRO_DISABLE_TELEMETRY": "1"}
    out = subprocess.run(
        [
            str(kedro),
            "run",
            "--env",
            "example_log",
            "--params",
            ",".join(f"{k}={v}" for k, v in tiny.items()),
        ],
        check=False,
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    reporting = root / "data/example_log/08_reporting"
    (version,) = (reporting / "comparison.json").iterdir()
    records = {
        r["method"]: r for r in json.loads((version / "comparison.json").read_text())
    }
    assert {"twhin_kmeans", "hgt_kmeans", "count_profile_kmeans", "popularity"} <= set(
        records
    )
    # the count profile (user -> item -> category) recovers the planted segments
    assert records["count_profile_kmeans"]["nmi_k4_mean"] > 0.5
    assert records["count_profile_kmeans"]["recall@50"] > records["random"]["recall@50"]
    assert (reporting / "comparison.md").is_file()
    # nothing of the base environment's data root was written
    assert not (root / "data/01_raw").exists()
