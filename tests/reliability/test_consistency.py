"""Whole versions: a node whose run stops between two saves leaves a pending
version that loads skip; stale temporaries are cleaned; checkpoint and run
directories are in the pre-flight check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from kedro.io.core import Version, VersionNotFoundError

from hgt_cluster_kedro.datasets import ParquetPartsDataset
from hgt_cluster_kedro.datasets._versions import (
    COMPLETE,
    PENDING,
    clean_stale_temporaries,
    mark_complete,
    mark_pending,
    temp_tag,
)
from hgt_cluster_kedro.hooks import run_dir_problems

from ._launch import REPO

# a two-output node run by Kedro's runner with the project's hook; with
# "crash" the process dies (os._exit) after the first output is saved
RUN = """
import os, sys
import pandas as pd
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog
from kedro.io.core import Version
from kedro.pipeline import node, Pipeline
from kedro.runner import SequentialRunner
from hgt_cluster_kedro.datasets import ParquetPartsDataset
from hgt_cluster_kedro.hooks import RunConsistencyHook

root, version, crash = sys.argv[1], sys.argv[2], sys.argv[3] == "crash"

class Crashing(ParquetPartsDataset):
    def save(self, data):
        if crash:
            os._exit(3)
        super().save(data)

def produce():
    if sys.argv[3] == "fail":
        raise ValueError("bad input")
    frame = pd.DataFrame({"v": [version]})
    return frame, frame

catalog = DataCatalog({
    "model": ParquetPartsDataset(filepath=f"{root}/model", version=Version(None, version)),
    "embeddings": Crashing(filepath=f"{root}/embeddings", version=Version(None, version)),
})
hooks = _create_hook_manager()
hooks.register(RunConsistencyHook())
SequentialRunner().run(
    Pipeline([node(produce, None, ["model", "embeddings"], name="train")]),
    catalog, hook_manager=hooks,
)
"""


def _run(root: Path, version: str, mode: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(root), version, mode],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1, 3), proc.stderr[-3000:]
    return proc.returncode


def _latest(root: Path, name: str) -> str:
    return ParquetPartsDataset(
        filepath=str(root / name), version=Version(None, None)
    ).load()["v"][0]


def test_a_run_that_stops_between_saves_is_not_loaded(tmp_path, caplog):
    v1, v2 = "2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"
    assert _run(tmp_path, v1, "ok") == 0
    marker = json.loads((tmp_path / "model" / v1 / COMPLETE).read_text())
    assert marker["node"] == "train"
    assert marker["outputs"] == {"embeddings": v1, "model": v1}
    assert not (tmp_path / "model" / v1 / PENDING).exists()
    # the second run saves `model`, then dies before `embeddings`
    assert _run(tmp_path, v2, "crash") == 3
    assert (tmp_path / "model" / v2 / "model").is_dir()
    assert (tmp_path / "model" / v2 / PENDING).is_file()
    assert not (tmp_path / "embeddings" / v2 / "embeddings").exists()
    # loads pair the outputs of one complete run
    assert _latest(tmp_path, "model") == v1
    assert _latest(tmp_path, "embeddings") == v1
    assert f"skipped incomplete version(s) ['{v2}']" in caplog.text
    # a node that fails before saving writes nothing, not even a marker
    v3 = "2026-01-03T00.00.00.000Z"
    assert _run(tmp_path, v3, "fail") == 1
    assert not (tmp_path / "model" / v3).exists()
    assert not (tmp_path / "embeddings" / v3).exists()
    # an explicitly requested version is loaded as asked
    pinned = ParquetPartsDataset(
        filepath=str(tmp_path / "model"), version=Version(v2, None)
    )
    assert pinned.load()["v"][0] == v2


def test_own_pending_versions_load_and_all_pending_is_an_error(tmp_path):
    root = tmp_path / "table"
    data = pd.DataFrame({"v": [1]})
    ds = ParquetPartsDataset(filepath=str(root), version=Version(None, "V1"))
    mark_pending(root / "V1", "node", ["table"])  # this process writes it
    ds.save(data)
    assert (
        ParquetPartsDataset(filepath=str(root), version=Version(None, None)).load()[
            "v"
        ][0]
        == 1
    )
    # another writer's pending marker: no complete version to load
    marker = root / "V1" / PENDING
    info = json.loads(marker.read_text())
    marker.write_text(json.dumps({**info, "writer": "otherhost:1:abc"}))
    with pytest.raises(VersionNotFoundError, match="incomplete"):
        ParquetPartsDataset(filepath=str(root), version=Version(None, None)).load()
    mark_complete(root / "V1", "node", {"table": "V1"})
    assert not marker.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_are_removed(tmp_path):
    host_tag = temp_tag().split("-")[0]
    dead = _dead_pid()
    version = tmp_path / "model" / "V1"
    version.mkdir(parents=True)
    stale_dir = version / f".model.tmp-{host_tag}-{dead}-abcdef12"
    stale_file = version / f".model.safetensors.{host_tag}-{dead}-x1y2z3w4.tmp"
    live_file = version / f".model.safetensors.{temp_tag()}a1b2c3d4.tmp"
    old_legacy = version / ".model.tmp-0123abcd"
    new_legacy = version / ".model.safetensors.ab12cd34.tmp"
    keep = [version / ".lock", version / PENDING, version / "model", live_file]
    stale_dir.mkdir()
    (stale_dir / "part-00000.parquet").write_text("x")
    old_legacy.mkdir()
    for path in (stale_file, live_file, new_legacy, *keep[:2]):
        path.write_text("x")
    keep[2].mkdir()
    old = time.time() - 2 * 24 * 3600
    os.utime(old_legacy, (old, old))
    removed = clean_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([stale_dir, stale_file, old_legacy])
    for path in (*keep, new_legacy):
        assert path.exists(), path


class _Pipeline:
    def __init__(self, *inputs: str) -> None:
        self._inputs = set(inputs)

    def inputs(self) -> set[str]:
        return self._inputs


def test_checkpoint_and_run_directories_are_in_the_preflight_check(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    params = {
        "twhin": {"checkpoint_dir": str(blocker / "ckpt")},
        "hgt": {"run_dir": str(tmp_path / "runs"), "train": {"checkpoint_dir": None}},
    }
    problems = run_dir_problems(params, _Pipeline("graph", "params:twhin"))
    assert len(problems) == 1
    assert problems[0].startswith(f"parameter 'twhin.checkpoint_dir' ({blocker}")
    assert "is a file" in problems[0]
    # only the pipelines of the run count
    assert run_dir_problems(params, _Pipeline("params:hgt")) == []
    if os.geteuid() != 0:  # root writes anywhere
        readonly = tmp_path / "ro"
        readonly.mkdir()
        readonly.chmod(0o500)
        params["hgt"]["run_dir"] = str(readonly / "runs")
        problems = run_dir_problems(params, _Pipeline("params:hgt"))
        assert problems and "hgt.run_dir" in problems[0]
