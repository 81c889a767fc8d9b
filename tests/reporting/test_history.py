"""``reporting.history``: every saved version of ``comparison`` in one table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from hgt_cluster_kedro.reporting.history import (
    flat_metrics,
    load_history,
    main,
    over_time,
    parse_version,
    to_markdown,
)

V1, V2, V3 = (
    "2026-01-02T03.04.05.006Z",
    "2026-01-03T00.00.00.000Z",
    "2026-02-01T12.30.00.500Z",
)


def _save(root: Path, version: str, payload) -> None:
    folder = root / "comparison.json" / version
    folder.mkdir(parents=True)
    (folder / "comparison.json").write_text(json.dumps(payload))


@pytest.fixture
def versions(tmp_path: Path) -> Path:
    """Three runs, saved out of order, in both formats the dataset may hold."""
    _save(
        tmp_path,
        V2,
        [
            {"method": "twhin_kmeans", "nmi": 0.5, "recall@50": 0.12, "sizes": [1, 2]},
            {"method": "popularity", "recall@50": 0.15},
        ],
    )
    _save(tmp_path, V1, {"twhin_kmeans": {"nmi": 0.4, "recall@50": 0.1}})
    _save(
        tmp_path,
        V3,
        [
            {"method": "twhin_kmeans", "nmi": 0.6, "recall@50": 0.13},
            {
                "method": "hgt_kmeans",
                "nmi": 0.1,
                "recall@50": 0.11,
                "train_seconds": 67.5,
            },
        ],
    )
    return tmp_path / "comparison.json"


def test_parse_version():
    assert parse_version(V1) == pd.Timestamp("2026-01-02 03:04:05.006", tz="UTC")
    assert parse_version("not-a-version") is None


def test_load_history_is_tidy_and_ordered(versions):
    frame = load_history(versions)
    assert list(frame.columns[:3]) == ["version", "timestamp", "method"]
    assert frame["version"].tolist() == [V1, V2, V2, V3, V3]  # oldest first
    assert frame["method"].tolist() == [
        "twhin_kmeans",
        "twhin_kmeans",
        "popularity",  # saved order kept within a run
        "twhin_kmeans",
        "hgt_kmeans",
    ]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert "sizes" not in frame.columns  # nested values left out
    assert frame["nmi"].tolist()[:2] == [0.4, 0.5]
    assert math.isnan(frame.loc[2, "nmi"])  # popularity has no NMI
    assert frame.loc[4, "train_seconds"] == 67.5


def test_last_and_methods(versions):
    last = load_history(versions, last=2)
    assert sorted(set(last["version"])) == [V2, V3]
    only = load_history(versions, methods=["twhin_kmeans"])
    assert only["method"].unique().tolist() == ["twhin_kmeans"]
    assert len(only) == 3
    with pytest.raises(ValueError, match="last=0"):
        load_history(versions, last=0)


def test_bad_versions_are_skipped(versions, caplog):
    (versions / "2026-03-01T00.00.00.000Z").mkdir()  # empty (no file inside)
    _save(versions.parent, "2026-03-02T00.00.00.000Z", {"x": 1})  # not records
    broken = versions / "2026-03-03T00.00.00.000Z"
    broken.mkdir()
    (broken / "comparison.json").write_text("{not json")
    frame = load_history(versions)
    assert sorted(set(frame["version"])) == [V1, V2, V3]
    assert caplog.text.count("Skipping version") == 3
    # skipped versions do not count towards --last
    assert sorted(set(load_history(versions, last=1)["version"])) == [V3]


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no comparison has been saved"):
        load_history(tmp_path / "nothing.json")


def test_single_unversioned_file(tmp_path):
    path = tmp_path / "comparison.json"
    path.write_text(json.dumps([{"method": "a", "nmi": 0.3}]))
    frame = load_history(path)
    assert frame["version"].tolist() == ["unversioned"]
    assert frame["nmi"].tolist() == [0.3]


def test_markdown_and_over_time(versions):
    frame = load_history(versions)
    table = to_markdown(frame, ["nmi", "train_seconds"])
    lines = table.splitlines()
    assert lines[0] == "| version | method | nmi | train_seconds |"
    assert lines[2] == f"| {V1} | twhin_kmeans | 0.4000 | – |"
    assert lines[-1] == f"| {V3} | hgt_kmeans | 0.1000 | 67.5 |"
    # default metrics: those of DEFAULT_METRICS that were saved
    assert to_markdown(frame).splitlines()[0] == (
        "| version | method | nmi | recall@50 | train_seconds |"
    )
    with pytest.raises(ValueError, match=r"metrics \['ndcg@5'\] are in no saved"):
        to_markdown(frame, ["ndcg@5"])
    trend = over_time(frame, "recall@50")
    assert trend.index.tolist() == [V1, V2, V3]
    assert trend.loc[V2, "popularity"] == 0.15


def test_flat_metrics_names_are_mlflow_safe():
    records = [
        {"method": "hgt_kmeans", "recall@50": 0.2, "nmi": float("nan"), "k": 4},
        {"method": "random", "backend": "exact", "ok": True, "sizes": [1]},
    ]
    assert flat_metrics(records) == {
        "hgt_kmeans.recall_at_50": 0.2,
        "hgt_kmeans.k": 4.0,
    }
    assert flat_metrics(records, ["k"]) == {"hgt_kmeans.k": 4.0}


def test_cli(versions, capsys):
    assert main(["--path", str(versions), "--metrics", "nmi", "--last", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "| version | method | nmi |"
    assert len(out.splitlines()) == 4  # header, rule, two methods of the last run
    assert main(["--path", str(versions), "--metrics", "nope"]) == 2
    assert "available: ['nmi'" in capsys.readouterr().err
    assert main(["--path", str(versions.parent / "missing")]) == 2
    assert main(["--path", str(versions), "--methods", "nobody"]) == 1


def test_kedro_history_command(kedro_project):
    """``kedro history`` (project ``cli.py``) finds ``comparison`` via the catalog."""
    from click.testing import CliRunner
    from kedro.framework.startup import bootstrap_project

    from hgt_cluster_kedro.cli import cli

    metadata = bootstrap_project(kedro_project.root)
    _save(
        kedro_project.root / "data/08_reporting",
        V1,
        [{"method": "twhin_kmeans", "nmi": 0.4}],
    )
    result = CliRunner().invoke(cli, ["history", "--metrics", "nmi"], obj=metadata)
    assert result.exit_code == 0, result.output
    assert f"| {V1} | twhin_kmeans | 0.4000 |" in result.output
    result = CliRunner().invoke(cli, ["history", "--last", "0"], obj=metadata)
    assert result.exit_code == 2
