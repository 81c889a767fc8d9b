"""Ingestion: every supported format into the canonical tables, and a clear error
naming the file, line and column for every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

from hgt_cluster_kedro.graph import GraphSchema, GraphValidationError
from hgt_cluster_kedro.ingestion import IngestionConfig, IngestionError, ingest

PA = "0 0\n0 1\n1 1\n2 2\n3 3\n4 0\n"
TERMS = "paper,term,score,when\n0,10,1.5,2024-01-01\n1,11,2.0,2024-01-02\n2,10,0.5,2024-02-01\n"
VENUES = "pid\tvid\n0\t0\n1\t1\n2\t0\n3\t1\n4\t1\n"

SCHEMA = GraphSchema.model_validate(
    {
        "node_types": {
            "author": {"id_column": "author_id", "features": ["f0", "f1", "f2"]},
            "paper": {"id_column": "paper_id", "features": ["year"]},
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
                "weight_column": "weight",
                "time_column": "timestamp",
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
    }
)


def _config(root: Path, **changes) -> dict:
    cfg = {
        "root": str(root),
        "nodes": {
            "author": {"features": [{"path": "a_feat.npz", "prefix": "f"}]},
            "paper": {"table": {"path": "papers.parquet"}, "id": "pid"},
            "term": {"ids": "dense"},  # terms 10 and 11 only: 0..9 kept, no edge
        },
        "edges": {
            "writes": {
                "file": {"path": "pa.txt", "names": ["paper_id", "author_id"]},
                "src": "author_id",
                "dst": "paper_id",
            },
            "has_term": {
                "file": {"path": "terms.csv"},
                "src": "paper",
                "dst": "term",
                "weight": "score",
                "time": "when",
            },
            "in_venue": {
                "file": {"path": "venues.tsv", "format": "tsv"},
                "src": "pid",
                "dst": "vid",
            },
        },
        "ground_truth": {"file": {"path": "labels.npy"}, "node_type": "author"},
    }
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = cfg
        for key in path:
            node = node[key]
        node[last] = value
    return cfg


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "pa.txt").write_text(PA)
    (tmp_path / "terms.csv").write_text(TERMS)
    (tmp_path / "venues.tsv").write_text(VENUES)
    pd.DataFrame(
        {
            "pid": [0, 1, 2, 3, 4],
            "year": [2001, 2002, 2003, 2004, 2005],
            "title": list("abcde"),
        }
    ).to_parquet(tmp_path / "papers.parquet")
    np.save(tmp_path / "labels.npy", np.array([0, 1, 1, 0]))
    sp.save_npz(tmp_path / "a_feat.npz", sp.csr_matrix(np.eye(4, 3)))
    return tmp_path


def _ingest(root: Path, **changes):
    cfg = IngestionConfig.model_validate(_config(root, **changes))
    return ingest(cfg, SCHEMA, ground_truth_columns=("user_id", "community"))


def test_every_format_into_canonical_tables(root):
    out = _ingest(root)
    author = out.nodes["author"]
    assert list(author.columns) == ["author_id", "f0", "f1", "f2"]
    assert author["author_id"].tolist() == [0, 1, 2, 3]  # implied, inferred count
    assert author[["f0", "f1", "f2"]].to_numpy().tolist() == np.eye(4, 3).tolist()
    paper = out.nodes["paper"]
    assert list(paper.columns) == ["paper_id", "year", "title"]
    assert out.nodes["term"]["term_id"].tolist() == list(range(12))
    assert out.stats["isolated"] == {"author": 0, "paper": 0, "term": 10, "venue": 0}
    assert len(out.nodes["venue"]) == 2
    writes = out.edges["writes"]
    assert list(writes.columns) == ["author_id", "paper_id"]
    assert writes.dtypes.tolist() == [np.int64, np.int64]
    assert writes.iloc[1].tolist() == [1, 0]  # "0 1": paper 0, author 1
    terms = out.edges["has_term"]
    assert list(terms.columns) == ["paper_id", "term_id", "weight", "timestamp"]
    assert terms["weight"].dtype == np.float32
    assert str(terms["timestamp"].dtype) == "datetime64[ms]"
    assert out.edges["in_venue"]["venue_id"].tolist() == [0, 1, 0, 1, 1]
    truth = out.ground_truth
    assert list(truth.columns) == ["user_id", "community"]
    assert truth["community"].tolist() == [0, 1, 1, 0]


def test_label_table_given_count_and_integer_times(root):
    (root / "labels.csv").write_text("author;area\n3;1\n0;0\n")
    (root / "terms.csv").write_text("paper,term,score,when\n0,1,1,100\n1,1,2,50\n")
    out = _ingest(
        root,
        ground_truth={
            "file": {"path": "labels.csv", "sep": ";"},
            "node_type": "author",
            "id": "author",
            "label": "area",
        },
        nodes__term={"count": 5},
    )
    assert out.ground_truth.to_numpy().tolist() == [[3, 1], [0, 0]]
    assert len(out.nodes["term"]) == 5
    assert out.edges["has_term"]["timestamp"].tolist() == [100, 50]


def test_blank_lines_are_skipped_and_lines_still_counted(root):
    (root / "pa.txt").write_text("0 0\n\n0 1\n1 x\n")
    with pytest.raises(IngestionError, match=r"pa\.txt, line 4, column 'author_id'"):
        _ingest(root)


@pytest.mark.parametrize(
    ("file", "content", "pattern"),
    [
        ("pa.txt", "0 0\n0 1\n1 1 7\n", r"pa\.txt, line 3: expected 2 fields, found 3"),
        (
            "pa.txt",
            "0 0\n1\n",
            r"pa\.txt, line 2, column 'author_id': expected 2 fields, found 1: no "
            r"value in a column used by ingestion\.edges\.writes\.src",
        ),
        (
            "pa.txt",
            "0 0\n0 1\n1 1\n2 x\n",
            r"pa\.txt, line 4, column 'author_id': id 'x' is not an integer",
        ),
        ("pa.txt", "0 0\n0 -1\n", r"pa\.txt, line 2, column 'author_id': author id -1"),
        ("pa.txt", "0 0\n1.5 1\n", r"pa\.txt, line 2, column 'paper_id': id '1.5'"),
        (
            "terms.csv",
            "paper,term,score,when\n0,1,1,2024-01-01\n1,q,1,2024-01-01\n",
            r"terms\.csv, line 3, column 'term': id 'q' is not an integer",
        ),
        (
            "terms.csv",
            "paper,term,score,when\n0,1,abc,2024-01-01\n",
            r"terms\.csv, line 2, column 'score': value 'abc' is not a finite number",
        ),
        (
            "terms.csv",
            "paper,term,score,when\n0,1,1,2024-01-01\n0,2,1,someday\n",
            r"terms\.csv, line 3, column 'when': time 'someday'",
        ),
        (
            "terms.csv",
            "paper,term,score,when\n0,1,1,2024-01-01\n0,2,,2024-01-01\n",
            r"terms\.csv, line 3, column 'score': missing value \(empty field\) in "
            r"a column used by ingestion\.edges\.has_term\.weight; set fill: "
            r"\{score: <value>\}",
        ),
        ("terms.csv", "paper,term,weight,when\n0,1,1,1\n", r"column 'score' .*absent"),
        ("venues.tsv", "pid\tvid\n0\t0\n1\t1\t1\n", r"venues\.tsv, line 3: expected 2"),
        ("venues.tsv", "", r"venues\.tsv: the file is empty"),
    ],
)
def test_bad_text_input_names_file_line_and_column(root, file, content, pattern):
    (root / file).write_text(content)
    with pytest.raises(IngestionError, match=pattern):
        _ingest(root)


def test_missing_file_names_path_and_setting(root):
    (root / "venues.tsv").unlink()
    with pytest.raises(
        IngestionError,
        match=r"venues\.tsv: file not found \(ingestion\.edges\.in_venue\)",
    ):
        _ingest(root)


def test_not_utf8(root):
    (root / "pa.txt").write_bytes(b"0 0\n\xff\xfe 1\n")
    with pytest.raises(
        IngestionError,
        match=r"pa\.txt, line 2: not valid utf-8 text: invalid start byte, byte\(s\) "
        r"ff at byte offset 4 of the file",
    ):
        _ingest(root)


def test_parquet_ids_that_do_not_parse_name_the_row(root):
    pd.DataFrame({"pid": [0.0, 1.5, 2, 3, 4], "year": [1] * 5}).to_parquet(
        root / "papers.parquet"
    )
    with pytest.raises(
        IngestionError, match=r"papers\.parquet, row 1, column 'pid': id 1\.5"
    ):
        _ingest(root)


def test_configured_node_column_absent(root):
    with pytest.raises(IngestionError, match=r"column 'paper_key' \(ingestion\.nodes"):
        _ingest(
            root, nodes__paper={"table": {"path": "papers.parquet"}, "id": "paper_key"}
        )


def test_matrix_and_label_sizes(root):
    sp.save_npz(root / "a_feat.npz", sp.csr_matrix(np.eye(3)))
    np.save(root / "labels.npy", np.array([0, 1, 1]))
    with pytest.raises(
        IngestionError, match=r"a_feat\.npz: 3 rows but node type 'author' has 4"
    ):
        _ingest(root, nodes__author={"count": 4, "features": [{"path": "a_feat.npz"}]})
    sp.save_npz(root / "a_feat.npz", sp.csr_matrix(np.eye(4, 3)))
    with pytest.raises(IngestionError, match=r"labels\.npy: 3 labels \(by position\)"):
        _ingest(root, nodes__author={"count": 4, "features": [{"path": "a_feat.npz"}]})
    (root / "a_feat.npz").write_bytes(b"not a zip")
    with pytest.raises(IngestionError, match=r"a_feat\.npz: cannot read as a scipy"):
        _ingest(root)
    np.save(root / "labels.npy", np.array([[0, 1]]))
    sp.save_npz(root / "a_feat.npz", sp.csr_matrix(np.eye(4, 3)))
    with pytest.raises(IngestionError, match=r"labels\.npy: expected a 1-D label"):
        _ingest(root)


def test_id_outside_given_count(root):
    with pytest.raises(
        IngestionError,
        match=r"pa\.txt, line 5, column 'author_id': author id 3 is outside 0\.\.2",
    ):
        _ingest(root, nodes__author={"count": 3})


def test_graph_checks_run_before_anything_is_returned(root):
    pd.DataFrame({"pid": [0, 1, 2, 3, 4, 4], "year": [1] * 6}).to_parquet(
        root / "papers.parquet"
    )
    with pytest.raises(GraphValidationError, match="duplicate node ids"):
        _ingest(root)


def test_configuration_must_fit_the_schema(root):
    cfg = _config(root)
    del cfg["edges"]["in_venue"]
    cfg["edges"]["cites"] = cfg["edges"]["writes"]
    del cfg["edges"]["has_term"]["weight"]
    with pytest.raises(ValueError) as err:
        ingest(IngestionConfig.model_validate(cfg), SCHEMA)
    msg = str(err.value)
    assert "no source for relation 'in_venue'" in msg
    assert "ingestion.edges.cites: not a relation" in msg
    assert "ingestion.edges.has_term.weight: required" in msg


def test_source_options_are_checked():
    with pytest.raises(ValidationError, match="without header needs names"):
        IngestionConfig.model_validate(
            {"edges": {"r": {"file": {"path": "a.txt"}, "src": "a", "dst": "b"}}}
        )
    with pytest.raises(ValidationError, match="cannot infer the format"):
        IngestionConfig.model_validate(
            {"edges": {"r": {"file": {"path": "a.xls"}, "src": "a", "dst": "b"}}}
        )
    with pytest.raises(ValidationError, match="feature sources are npy / npz"):
        IngestionConfig.model_validate(
            {"nodes": {"a": {"features": [{"path": "f.csv"}]}}, "edges": {}}
        )


def test_edge_to_a_node_missing_from_the_node_table(root):
    (root / "venues.tsv").write_text("pid\tvid\n0\t0\n9\t1\n")
    with pytest.raises(
        IngestionError,
        match=r"venues\.tsv, line 3, column 'pid': paper id 9 is not in the paper",
    ):
        _ingest(root)


def test_text_node_table_features_must_be_numbers(root):
    (root / "papers.csv").write_text("pid,year,title\n0,2001,a\n1,y2k,b\n")
    with pytest.raises(
        IngestionError, match=r"papers\.csv, line 3, column 'year': value 'y2k'"
    ):
        _ingest(root, nodes__paper={"table": {"path": "papers.csv"}, "id": "pid"})


def test_label_table_with_an_unknown_node(root):
    (root / "labels.csv").write_text("author,area\n0,1\n7,0\n")
    truth = {
        "file": {"path": "labels.csv"},
        "node_type": "author",
        "id": "author",
        "label": "area",
    }
    with pytest.raises(
        IngestionError, match=r"labels\.csv, line 3, column 'author': id 7 is not"
    ):
        _ingest(root, ground_truth=truth)


def test_graph_checks_name_file_lines_not_table_rows(root):
    # a blank line: the negative weight is on physical line 4 of terms.csv
    (root / "terms.csv").write_text(
        "paper,term,score,when\n0,10,1.5,2024-01-01\n\n1,11,-2.0,2024-01-02\n"
    )
    with pytest.raises(
        GraphValidationError,
        match=r"raw_edges\['has_term'\]\.weight: negative weights at terms\.csv "
        r"lines \[4\]",
    ):
        _ingest(root)


def test_graph_checks_name_parquet_rows(root):
    pd.DataFrame({"pid": [0, 1, 2, 3, 4, 4], "year": [1] * 6}).to_parquet(
        root / "papers.parquet"
    )
    with pytest.raises(GraphValidationError, match=r"papers\.parquet rows \[4, 5\]"):
        _ingest(root)
