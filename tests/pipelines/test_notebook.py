"""``notebooks/explore.ipynb`` runs top to bottom on the tiny run (through the
Kedro IPython extension), and is committed without outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explore.ipynb"
OLD_VERSION = "2020-01-01T00.00.00.000Z"


def test_notebook_is_committed_without_outputs():
    notebook = json.loads(NOTEBOOK.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, cell[
                "source"
            ][:80]


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(str(output["data"].get("text/plain", "")))
            parts.append(str(output["data"].get("text/markdown", "")))
    return "\n".join(parts)


@pytest.mark.slow
def test_notebook_runs_on_the_tiny_run(tiny_run_project, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    root = tmp_path / "project"
    shutil.copytree(
        tiny_run_project.root, root, ignore=shutil.ignore_patterns("mlruns")
    )
    # an older run, so the history section has two versions to put side by side
    versions = root / "data" / "08_reporting" / "comparison.json"
    (latest,) = list(versions.iterdir())
    shutil.copytree(latest, versions / OLD_VERSION)
    monkeypatch.setenv("HGT_PROJECT_PATH", str(root))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        # started outside the project, so `%load_ext` finds none and only
        # `%reload_kedro $HGT_PROJECT_PATH` loads it (once)
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    everything = "\n".join(_text(c) for c in code)
    assert "twhin_kmeans" in everything and "popularity" in everything
    images = sum(
        "image/png" in o.get("data", {}) for c in code for o in c.get("outputs", [])
    )
    assert images >= 2  # the projections, the history trend (SOM maps if any)
    assert "projected: {" in everything and "'twhin': 400" in everything
    assert "SOM maps shown:" in everything
    assert "2 runs" in everything
    assert f"| {OLD_VERSION} | twhin_kmeans |" in everything
    assert not any(
        o["output_type"] == "error" for c in code for o in c.get("outputs", [])
    )
