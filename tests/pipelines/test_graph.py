"""``graph`` through a real KedroSession: user–note and a four-node-type schema."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hgt_cluster_kedro.graph import GraphArtifact


@pytest.mark.slow
def test_generation_then_graph_builds_graph(kedro_project):
    kedro_project.set_params(
        "parameters_graph.yml",
        "graph",
        {
            **__import__("yaml").safe_load(
                (kedro_project.root / "conf/base/parameters_graph.yml").read_text()
            )["graph"],
            "partition": {"num_parts": 4, "method": "metis", "compare": True},
        },
    )
    kedro_project.run(pipeline_names=["data_generation", "graph"])
    catalog = kedro_project.catalog()
    graph: GraphArtifact = catalog.load("graph")
    inter = catalog.load("interactions")
    assert graph.num_nodes == {"user": 400, "note": 600}
    assert ("note", "rev_share_note", "user") in graph.csr.edge_types
    assert set(inter["split"].unique()) == {"train", "valid", "test"}
    report = catalog.load("partition_report")
    assert report["chosen"] == "metis"
    assert {"metis", "hash"} <= set(report)
    assert report["metis"]["edge_cut_fraction"] < report["hash"]["edge_cut_fraction"]
    parts = catalog.load("graph_partitions")
    owners = parts["owners"]
    assert len(owners) == 1000 and owners["part"].between(0, 3).all()
    assert list((kedro_project.root / "data/08_reporting").rglob("*.png"))


def _bibliographic_tables(tmp_root):
    rng = np.random.default_rng(0)
    n_a, n_p, n_t, n_v = 60, 120, 30, 4
    area = rng.integers(0, 4, n_a)
    paper_area = rng.integers(0, 4, n_p)
    writes = []
    for a in range(n_a):
        same = np.flatnonzero(paper_area == area[a])
        for p in rng.choice(same, 6, replace=False):
            writes.append((a, int(p)))
    writes = pd.DataFrame(writes, columns=["author_id", "paper_id"])
    has_term = pd.DataFrame(
        {
            "paper_id": np.repeat(np.arange(n_p), 3),
            "term_id": rng.integers(0, n_t, 3 * n_p),
        }
    ).drop_duplicates()
    in_venue = pd.DataFrame({"paper_id": np.arange(n_p), "venue_id": paper_area})
    nodes = {
        "author": pd.DataFrame(
            {"author_id": np.arange(n_a), "f0": rng.random(n_a), "f1": rng.random(n_a)}
        ),
        "paper": pd.DataFrame({"paper_id": np.arange(n_p)}),
        "term": pd.DataFrame({"term_id": np.arange(n_t)}),
        "venue": pd.DataFrame({"venue_id": np.arange(n_v)}),
    }
    edges = {"writes": writes, "has_term": has_term, "in_venue": in_venue}
    return nodes, edges


FOUR_TYPE_SCHEMA = {
    "schema": {
        "node_types": {
            "author": {"id_column": "author_id", "features": ["f0", "f1"]},
            "paper": {"id_column": "paper_id"},
            "term": {"id_column": "term_id"},
            "venue": {"id_column": "venue_id"},
        },
        "relations": {
            "writes": {
                "src": "author",
                "dst": "paper",
                "src_column": "author_id",
                "dst_column": "paper_id",
            },
            "has_term": {
                "src": "paper",
                "dst": "term",
                "src_column": "paper_id",
                "dst_column": "term_id",
            },
            "in_venue": {
                "src": "paper",
                "dst": "venue",
                "src_column": "paper_id",
                "dst_column": "venue_id",
            },
        },
        "user_type": "author",
        "item_type": "paper",
        "target_relations": ["writes"],
    },
    "split": {"method": "random", "min_history": 4, "seed": 1},
    "partition": {"num_parts": 3, "method": "hash", "compare": True},
}


@pytest.mark.slow
def test_four_node_type_schema_runs_with_configuration_only(kedro_project):
    from hgt_cluster_kedro.datasets import ParquetTableSetDataset
    from hgt_cluster_kedro.graph.sampler import NeighborSampler

    nodes, edges = _bibliographic_tables(kedro_project.root)
    root = kedro_project.root / "data" / "01_raw"
    ParquetTableSetDataset(filepath=str(root / "bib_nodes")).save(nodes)
    ParquetTableSetDataset(filepath=str(root / "bib_edges")).save(edges)
    catalog = kedro_project.root / "conf" / "base" / "catalog.yml"
    import yaml

    entries = yaml.safe_load(catalog.read_text())
    entries["raw_nodes"] = {
        "type": "hgt_cluster_kedro.datasets.ParquetTableSetDataset",
        "filepath": "data/01_raw/bib_nodes",
    }
    entries["raw_edges"] = {
        "type": "hgt_cluster_kedro.datasets.ParquetTableSetDataset",
        "filepath": "data/01_raw/bib_edges",
    }
    catalog.write_text(yaml.safe_dump(entries))
    kedro_project.set_params("parameters_graph.yml", "graph", FOUR_TYPE_SCHEMA)
    kedro_project.run(pipeline_names=["graph"])
    cat = kedro_project.catalog()
    graph = cat.load("graph")
    assert graph.num_nodes == {"author": 60, "paper": 120, "term": 30, "venue": 4}
    assert ("venue", "rev_in_venue", "paper") in graph.csr.edge_types
    report = cat.load("partition_report")
    assert report["chosen"] == "hash"
    import torch

    batch = NeighborSampler(graph.csr, [3, 2], seed=0).sample_nodes(
        {"author": torch.arange(5)}
    )
    assert batch["author"].n_id[:5].tolist() == [0, 1, 2, 3, 4]
    assert json.loads(json.dumps(graph.summary()))["user_type"] == "author"


@pytest.mark.slow
def test_invalid_tables_stop_before_anything_is_written(kedro_project):
    from hgt_cluster_kedro.datasets import ParquetTableSetDataset

    nodes, edges = _bibliographic_tables(kedro_project.root)
    edges["writes"].loc[0, "paper_id"] = 9999
    root = kedro_project.root / "data" / "01_raw"
    ParquetTableSetDataset(filepath=str(root / "bib_nodes")).save(nodes)
    ParquetTableSetDataset(filepath=str(root / "bib_edges")).save(edges)
    import yaml

    catalog = kedro_project.root / "conf" / "base" / "catalog.yml"
    entries = yaml.safe_load(catalog.read_text())
    entries["raw_nodes"]["filepath"] = "data/01_raw/bib_nodes"
    entries["raw_nodes"].pop("versioned")
    entries["raw_edges"]["filepath"] = "data/01_raw/bib_edges"
    entries["raw_edges"].pop("versioned")
    catalog.write_text(yaml.safe_dump(entries))
    kedro_project.set_params("parameters_graph.yml", "graph", FOUR_TYPE_SCHEMA)
    before = kedro_project.files()
    with pytest.raises(
        Exception, match=r"raw_edges\['writes'\].paper_id: ids \[9999\]"
    ):
        kedro_project.run(pipeline_names=["graph"])
    assert kedro_project.files() == before
