"""kedro-viz: a static build (``kedro viz build --include-previews``) of the tiny
run lists every registered pipeline, the ``comparison`` dataset with its preview,
and datasets in layers that follow the data flow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

#: Kedro's layer convention, in data order (the catalog's ``kedro-viz.layer``)
LAYERS = (
    "raw",
    "intermediate",
    "primary",
    "feature",
    "model_input",
    "models",
    "model_output",
    "reporting",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def viz_build(tiny_run_project, tmp_path_factory) -> dict[str, Any]:
    """``build/api`` of a copy of the tiny run (the build writes into the project)."""
    root = tmp_path_factory.mktemp("viz") / "project"
    shutil.copytree(
        tiny_run_project.root, root, ignore=shutil.ignore_patterns("mlruns")
    )
    kedro = Path(sys.executable).parent / "kedro"
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}
    done = subprocess.run(
        [str(kedro), "viz", "build", "--include-previews"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    api = root / "build" / "api"
    main = json.loads((api / "main").read_text())
    nodes = {n["id"]: n for n in main["nodes"]}
    details = {
        n["name"]: json.loads((api / "nodes" / n["id"]).read_text())
        for n in main["nodes"]
        if n["type"] == "data" and (api / "nodes" / n["id"]).exists()
    }
    return {"root": root, "main": main, "nodes": nodes, "details": details}


def _registered(root: Path) -> set[str]:
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(root)
    from hgt_cluster_kedro.pipeline_registry import register_pipelines

    return set(register_pipelines())


def test_build_lists_every_pipeline_and_comparison(viz_build):
    main = viz_build["main"]
    assert {p["id"] for p in main["pipelines"]} == _registered(viz_build["root"])
    assert main["selected_pipeline"] == "__default__"
    (comparison,) = [n for n in main["nodes"] if n["name"] == "comparison"]
    assert comparison["type"] == "data"
    assert comparison["layer"] == "reporting"
    assert {"evaluation", "__default__"} <= set(comparison["pipelines"])
    # previews come from the saved data: JSON records, the plot as an image
    detail = viz_build["details"]["comparison"]
    assert detail["preview_type"] == "JSONPreview"
    methods = [r["method"] for r in json.loads(detail["preview"])]
    assert {"twhin_kmeans", "popularity", "random"} <= set(methods)
    assert viz_build["details"]["comparison_plot"]["preview_type"] == "ImagePreview"
    assert viz_build["details"]["user_communities"]["preview_type"] == "TablePreview"


def test_datasets_carry_layers_in_data_order(viz_build):
    main, nodes = viz_build["main"], viz_build["nodes"]
    # every persisted dataset has a known layer (memory datasets need none)
    unlayered = [
        n["name"]
        for n in main["nodes"]
        if n["type"] == "data"
        and "MemoryDataset" not in (n.get("dataset_type") or "")
        and n.get("layer") not in LAYERS
    ]
    assert not unlayered, f"datasets without a known layer: {unlayered}"
    # no node reads a dataset from a later layer than one it writes
    inputs: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    for edge in main["edges"]:
        source, target = nodes[edge["source"]], nodes[edge["target"]]
        if target["type"] == "task" and source.get("layer"):
            inputs.setdefault(target["id"], []).append(source["layer"])
        if source["type"] == "task" and target.get("layer"):
            outputs.setdefault(source["id"], []).append(target["layer"])
    backwards = [
        (nodes[task]["name"], layer_in, layer_out)
        for task, layers_in in inputs.items()
        for layer_in in layers_in
        for layer_out in outputs.get(task, [])
        if LAYERS.index(layer_in) > LAYERS.index(layer_out)
    ]
    assert not backwards, f"nodes writing to an earlier layer: {backwards}"


def test_viz_shows_layers_in_order(viz_build):
    layers = viz_build["main"]["layers"]
    assert layers, "kedro-viz found a cycle among layers and shows none"
    assert layers == sorted(layers, key=LAYERS.index)
