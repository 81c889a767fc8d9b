"""Environments: overrides merge key by key (``graph.schema`` as a unit), each
environment has its own data root, and its configuration decides its default
run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from hgt_cluster_kedro.config_loader import ProjectConfigLoader, data_root
from hgt_cluster_kedro.pipeline_registry import default_pipelines
from hgt_cluster_kedro.settings import CONFIG_LOADER_ARGS

REPO = Path(__file__).resolve().parents[2]
REST = (
    "graph",
    "twhin",
    "hgt",
    "count_profile",
    "simclusters",
    "clustering",
    "som",
    "session",
    "evaluation",
)


def loader(conf: Path, env: str | None, **runtime) -> ProjectConfigLoader:
    return ProjectConfigLoader(
        conf_source=str(conf), env=env, runtime_params=runtime, **CONFIG_LOADER_ARGS
    )


def write(conf: Path, env: str, name: str, data: dict) -> None:
    (conf / env).mkdir(parents=True, exist_ok=True)
    (conf / env / name).write_text(yaml.safe_dump(data, sort_keys=False))


def test_dblp_states_only_its_differences_and_replaces_the_schema_whole():
    base = loader(REPO / "conf", "base")["parameters"]
    dblp = loader(REPO / "conf", "dblp")["parameters"]
    train = dblp["hgt"]["train"]
    assert train["epochs"] == 20  # its own budget
    # the protocol: DBLP runs the fake-data defaults, only the budget and
    # operational settings differ
    own = {"epochs", "checkpoint_every", "progress"}
    for key, value in base["hgt"]["train"].items():
        if key not in own:
            assert train[key] == value, key
    assert dblp["hgt"]["warm_start"] == base["hgt"]["warm_start"]
    assert dblp["hgt"]["launch"]["nproc_per_node"] == 2
    schema = dblp["graph"]["schema"]
    assert set(schema["node_types"]) == {"author", "paper", "term", "venue"}
    assert set(schema["relations"]) == {"writes", "has_term", "in_venue"}
    assert dblp["graph"]["validation"] == base["graph"]["validation"]
    assert dblp["graph"]["split"]["test_fraction"] == 0.2
    assert dblp["evaluation"]["label_protocol"]["seeds"] == 10  # base's
    lines = sum(len(p.read_text().splitlines()) for p in (REPO / "conf/dblp").iterdir())
    assert lines < 150  # was 7 files, 202 lines of copies


def test_an_environment_schema_never_mixes_with_base(tmp_path):
    conf = tmp_path / "conf"
    write(
        conf,
        "base",
        "parameters.yml",
        {
            "graph": {
                "schema": {
                    "node_types": {
                        "user": {"id_column": "u"},
                        "note": {"id_column": "n"},
                    },
                    "user_type": "user",
                    "item_type": "note",
                },
                "split": {"seed": 0},
            }
        },
    )
    write(
        conf,
        "other",
        "parameters.yml",
        {
            "graph": {
                "schema": {
                    "node_types": {"author": {"id_column": "a"}},
                    "user_type": "author",
                }
            }
        },
    )
    graph = loader(conf, "other")["parameters"]["graph"]
    assert graph["schema"] == {
        "node_types": {"author": {"id_column": "a"}},
        "user_type": "author",
    }
    assert graph["split"] == {"seed": 0}


def test_one_data_root_per_environment(tmp_path):
    assert data_root(None) == data_root("local") == data_root("base") == "data"
    assert data_root("yelp") == "data/yelp"
    with pytest.raises(ValueError, match="cannot name a data directory"):
        data_root("../x")
    conf = REPO / "conf"
    assert loader(conf, "mlflow")._globals["data_root"] == "data"  # its globals.yml
    assert loader(conf, "dblp")["parameters"]["hgt"]["run_dir"] == (
        "data/dblp/06_models/hgt_runs"
    )
    assert loader(conf, None)["parameters"]["twhin"]["checkpoint_dir"] == (
        "data/06_models/checkpoints"
    )
    base_cat = loader(conf, "base")["catalog"]
    dblp_cat = loader(conf, "dblp")["catalog"]
    for name in ("raw_nodes", "graph", "comparison", "{method}_model"):
        assert base_cat[name]["filepath"].startswith("data/0"), name
        assert dblp_cat[name]["filepath"].startswith("data/dblp/0"), name


def test_a_base_run_never_loads_an_environment_versions(kedro_project):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    (kedro_project.root / "conf/other").mkdir()
    bootstrap_project(kedro_project.root)

    def catalog(env):
        with KedroSession.create(project_path=kedro_project.root, env=env) as s:
            return s.load_context().catalog

    tables = {"user": pd.DataFrame({"user_id": [1, 2]})}
    catalog("other").save("raw_nodes", tables)
    assert (kedro_project.root / "data/other/01_raw/nodes").is_dir()
    assert not catalog("base").exists("raw_nodes")
    catalog("base").save("raw_nodes", {"user": pd.DataFrame({"user_id": [7]})})
    assert list(catalog("other").load("raw_nodes")["user"]["user_id"]) == [1, 2]
    assert list(catalog("base").load("raw_nodes")["user"]["user_id"]) == [7]


def test_the_environment_configuration_decides_the_default_run(tmp_path):
    conf = tmp_path / "conf"
    write(
        conf,
        "base",
        "parameters_run.yml",
        yaml.safe_load((REPO / "conf/base/parameters_run.yml").read_text()),
    )
    write(conf, "own", "parameters_ingestion.yml", {"ingestion": {"edges": {}}})
    write(conf, "tables", "parameters.yml", {"run": {"source": "none"}})
    write(conf, "short", "parameters.yml", {"run": {"pipelines": ["graph"]}})
    assert default_pipelines(loader(conf, "base")["parameters"]) == (
        "data_generation",
        *REST,
    )
    assert default_pipelines(loader(conf, "own")["parameters"]) == ("ingestion", *REST)
    assert default_pipelines(loader(conf, "tables")["parameters"]) == REST
    assert default_pipelines(loader(conf, "short")["parameters"]) == (
        "data_generation",
        "graph",
    )
    forced = loader(conf, "own", **{"run": {"source": "data_generation"}})
    assert default_pipelines(forced["parameters"])[0] == "data_generation"
    assert default_pipelines(loader(REPO / "conf", "dblp")["parameters"])[0] == (
        "ingestion"
    )
