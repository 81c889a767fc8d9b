"""benchmarks/bench_make_run.py: the node-time summary and comparison rows it
reads from a run (no clone, no `make run`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_make_run  # noqa: E402

LINE = "2026-12-06 02:46:23,075 - hgt_cluster_kedro.hooks - INFO - "


def test_node_times_reads_the_last_summary():
    log = "\n".join(
        [
            LINE + "Node times (s), run 5.0 s: a 3.0, b 2.0",
            LINE + "Node x ran 1.0 s",
            LINE + "Node times (s), run 22.1 s: train_hgt 7.9, hgt_kmeans.evaluate 0.3",
        ]
    )
    total, nodes = bench_make_run.node_times(log)
    assert total == 22.1
    assert nodes == {"train_hgt": 7.9, "hgt_kmeans.evaluate": 0.3}


def test_node_times_refuses_a_log_without_summary():
    with pytest.raises(ValueError, match="Node times"):
        bench_make_run.node_times(LINE + "Node x ran 1.0 s\n")
    with pytest.raises(ValueError, match="unreadable node time"):
        bench_make_run.node_times(LINE + "Node times (s), run 1.0 s: a b c\n")


def test_comparison_rows_from_the_newest_version(tmp_path):
    base = tmp_path / "08_reporting" / "comparison.json"
    for version, recall in (
        ("2026-01-01T00.00.00.000Z", 0.1),
        ("2026-02-01T00.00.00.000Z", 0.2),
    ):
        (base / version).mkdir(parents=True)
        rows = [
            {"method": "hgt_kmeans", "recall@50": recall, "nmi": 0.5, "extra": 1},
            {"method": "not_kept", "recall@50": 0.9},
        ]
        (base / version / "comparison.json").write_text(json.dumps(rows))
    got = bench_make_run.comparison_rows(tmp_path)
    assert [r["method"] for r in got] == ["hgt_kmeans"]
    assert got[0]["recall@50"] == 0.2 and got[0]["nmi"] == 0.5
    assert "extra" not in got[0] and got[0]["ari"] is None
