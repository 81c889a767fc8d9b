"""Every parameter section is checked before the first node of a real
KedroSession runs: nothing is written under data/ on a bad parameter."""

from __future__ import annotations

import pytest
import yaml

from hgt_cluster_kedro.config import ParameterError
from tests.config.test_sections import TYPOS


def _edit(project, key: str, value) -> None:
    section, *path = key.split(".")
    files = sorted((project.root / "conf/base").glob("parameters*.yml"))
    file = next(f for f in files if section in yaml.safe_load(f.read_text()))
    data = yaml.safe_load(file.read_text())
    node = data[section]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    file.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_typo_in_every_section_stops_the_run_before_any_file(kedro_project):
    """One run with a misspelt key in every section (the environment has an
    ``ingestion`` section, so its default run starts with ``ingestion``):
    every key is named, with the nearest valid name, and data/ stays empty."""
    typos = {s: k for s, k in TYPOS.items() if s != "run"}
    (kedro_project.root / "conf/base/parameters_ingestion.yml").write_text(
        yaml.safe_dump(
            {
                "ingestion": {
                    "root": "data/raw_files",
                    "edgs": {},
                    "edges": {"e": {"file": {"path": "e.csv"}, "src": "a", "dst": "b"}},
                }
            }
        )
    )
    typos["ingestion"] = ("ingestion.edgs", "edges")
    for key, _ in typos.values():
        if key != "ingestion.edgs":
            _edit(kedro_project, key, 3)
    with pytest.raises(Exception) as err:  # noqa: PT011 - Kedro wraps ours
        kedro_project.run()
    text = str(err.value)
    for key, suggestion in typos.values():
        assert f"{key}: unknown parameter; did you mean {suggestion!r}?" in text, key
    assert kedro_project.files() == []


def test_a_bad_run_section_stops_before_anything(kedro_project):
    _edit(kedro_project, "run.sorce", "ingestion")
    with pytest.raises(ParameterError, match=r"run\.sorce: .*did you mean 'source'"):
        kedro_project.run()
    assert kedro_project.files() == []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("clustering.k", 5000, r"clustering\.k=5000 is larger than the 400 users"),
        ("graph.partition.num_parts", 5000, r"num_parts=5000 is larger than the 1000"),
        ("hgt.train.batch_size", 32, r"hgt\.train: batch_size=32 is too small"),
        ("hgt_som_joint.train.batch_size", 32, r"hgt_som_joint\.train: batch_size"),
    ],
)
def test_rules_across_sections_stop_the_run_before_any_file(
    kedro_project, key, value, message
):
    if key.startswith("hgt_som_joint"):
        section = yaml.safe_load(
            (kedro_project.root / "conf/base/parameters_hgt.yml").read_text()
        )["hgt_som_joint"]
        section["train"]["batch_size"] = value
        kedro_project.set_params("parameters_hgt.yml", "hgt_som_joint", section)
    else:
        _edit(kedro_project, key, value)
    with pytest.raises(Exception, match=message):  # noqa: PT011
        kedro_project.run()
    assert kedro_project.files() == []


def test_nodes_receive_the_validated_models(kedro_project):
    """A section missing from the YAML gets its model's defaults, and nodes
    receive models (``params:evaluation.ground_truth`` too)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from hgt_cluster_kedro.config import ClusteringParams, GroundTruthParams
    from hgt_cluster_kedro.hooks import ParameterCheckHook

    (kedro_project.root / "conf/base/parameters_clustering.yml").unlink()
    bootstrap_project(kedro_project.root)
    with KedroSession.create(project_path=kedro_project.root, env="base") as s:
        context = s.load_context()
        catalog = context.catalog
        from kedro.framework.project import pipelines
        from kedro.pipeline import Node, Pipeline

        truth = Node(lambda t: t, "params:evaluation.ground_truth", "t", name="t")
        pipeline = pipelines["clustering"] + Pipeline([truth])
        ParameterCheckHook().before_pipeline_run({}, pipeline, catalog)
    clustering = catalog.load("params:clustering")
    assert isinstance(clustering, ClusteringParams) and clustering.k == 16
    assert isinstance(catalog.load("params:evaluation.ground_truth"), GroundTruthParams)


def test_stored_tables_of_another_pipeline_name_it_and_the_fix(kedro_project):
    """Raw tables written by ``data_generation`` loaded into a graph whose schema
    has other types: stopped before ``graph`` writes anything."""
    kedro_project.run(pipeline_names=["data_generation"])
    before = kedro_project.files()
    path = kedro_project.root / "conf/base/parameters_graph.yml"
    text = path.read_text().replace("note", "item")
    path.write_text(text)
    with pytest.raises(ParameterError) as err:
        kedro_project.run(pipeline_names=["graph"])
    message = str(err.value)
    assert "node types ['item'] and relations ['comment_item'" in message
    assert "written by pipeline 'data_generation' (fake users and notes)" in message
    assert "add an `ingestion` section" in message
    assert kedro_project.files() == before


def test_node_side_checks_where_sizes_are_known_only_from_the_data():
    """Without a source of known size (e.g. ingestion with implied counts) the
    first graph node checks ``num_parts`` before split / build write, and the
    joint HGT + SOM checks its centres before starting torchrun."""
    from hgt_cluster_kedro.config import GraphParams
    from hgt_cluster_kedro.generation import GeneratorConfig, generate
    from hgt_cluster_kedro.pipelines.graph.nodes import build, split, validate_tables
    from hgt_cluster_kedro.pipelines.hgt.nodes import train_joint_som
    from tests.config.test_sections import base_params
    from tests.conftest import tiny_generation_params

    data = generate(GeneratorConfig.model_validate(tiny_generation_params()))
    raw = base_params()["graph"]
    raw["partition"]["num_parts"] = 5000
    with pytest.raises(ValueError, match="num_parts=5000 is larger than the 1000"):
        validate_tables(data.nodes, data.edges, GraphParams.model_validate(raw))
    raw["partition"]["num_parts"] = 2
    tables = validate_tables(data.nodes, data.edges, raw)
    interactions = split(tables, raw)
    graph = build(tables, interactions)
    joint = {"train": {"objectives": {"link": {}, "som": {"num_centres": 401}}}}
    with pytest.raises(ValueError, match="num_centres=401 is larger than the 400"):
        train_joint_som(graph, interactions, {}, {}, params={}, joint=joint)
