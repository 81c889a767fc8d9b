"""Schema and input-table validation: every problem gets its own clear error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from hgt_cluster_kedro.graph import (
    GraphValidationError,
    ValidationPolicy,
    index_tables,
)
from tests.graph._tables import user_note_schema, user_note_tables


def _problems(nodes, edges, schema=None, policy=None) -> str:
    with pytest.raises(GraphValidationError) as err:
        index_tables(nodes, edges, schema or user_note_schema(), policy)
    return str(err.value)


def test_valid_tables_are_indexed_with_contiguous_ids():
    nodes, edges = user_note_tables()
    t = index_tables(nodes, edges, user_note_schema())
    assert t.num_nodes == {"user": 30, "note": 40}
    follow = t.edges[("user", "follow_note", "note")]
    assert follow.src.max() < 30 and follow.dst.max() < 40
    assert t.ids["user"][follow.src[0]] == edges["follow_note"]["user_id"][0]
    # features standardised (log1p first for views)
    assert t.features["note"].shape == (40, 1)
    assert abs(float(t.features["note"].mean())) < 1e-5
    assert t.feature_stats["note"]["log1p"] == ["views"]


def test_duplicate_node_ids():
    nodes, edges = user_note_tables()
    nodes["user"].loc[3, "user_id"] = "u0"
    msg = _problems(nodes, edges)
    assert "raw_nodes['user'].user_id: duplicate node ids ['u0'] at rows [0, 3]" in msg


def test_edges_to_unknown_nodes():
    nodes, edges = user_note_tables()
    edges["follow_note"].loc[5, "note_id"] = 99999
    msg = _problems(nodes, edges)
    assert (
        "raw_edges['follow_note'].note_id: ids [99999] are not in raw_nodes['note']"
        in msg
    )
    assert "rows [5]" in msg


def test_null_and_non_finite_values():
    nodes, edges = user_note_tables()
    nodes["user"]["age"] = nodes["user"]["age"].astype(float)
    nodes["user"].loc[2, "age"] = np.inf
    edges["share_note"].loc[1, "weight"] = np.nan
    edges["follow_note"].loc[4, "user_id"] = None
    msg = _problems(nodes, edges)
    assert "raw_nodes['user'].age: null or non-finite values at rows [2]" in msg
    assert (
        "raw_edges['share_note'].weight: null or non-finite weights at rows [1]" in msg
    )
    assert "raw_edges['follow_note'].user_id: null ids at rows [4]" in msg


def test_negative_weights_and_empty_relation():
    nodes, edges = user_note_tables()
    edges["follow_note"].loc[0, "weight"] = -1.0
    edges["share_note"] = edges["share_note"].iloc[:0]
    msg = _problems(nodes, edges)
    assert "raw_edges['follow_note'].weight: negative weights at rows [0]" in msg
    assert "raw_edges['share_note']: relation has no edges" in msg


def test_unknown_tables_and_missing_columns():
    nodes, edges = user_note_tables()
    edges["like_note"] = edges["follow_note"]
    nodes["venue"] = nodes["note"]
    edges["share_note"] = edges["share_note"].drop(columns=["timestamp"])
    msg = _problems(nodes, edges)
    assert "raw_edges: table 'like_note' is not a relation of the schema" in msg
    assert "raw_nodes: table 'venue' is not a node type of the schema" in msg
    assert "raw_edges['share_note']: missing column(s) ['timestamp']" in msg


def test_duplicate_edges_dropped_or_rejected_by_policy(caplog):
    nodes, edges = user_note_tables()
    edges["follow_note"] = pd.concat(
        [edges["follow_note"], edges["follow_note"].head(3)], ignore_index=True
    )
    t = index_tables(nodes, edges, user_note_schema())
    assert len(t.edges[("user", "follow_note", "note")].src) == 30 * 8
    assert "dropped 3 duplicate edges" in caplog.text
    msg = _problems(nodes, edges, policy=ValidationPolicy(duplicate_edges="error"))
    assert "raw_edges['follow_note']: 3 duplicate edges" in msg


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"user_type": "person"}, "user_type='person' is not a node type"),
        ({"target_relations": ["like_note"]}, "'like_note' is not a relation"),
        (
            {
                "relations": {
                    "follow_note": {
                        "src": "user",
                        "dst": "venue",
                        "src_column": "a",
                        "dst_column": "b",
                    }
                }
            },
            "relations.follow_note.dst='venue' is not a node type",
        ),
    ],
)
def test_schema_errors_name_the_key(overrides, message):
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        user_note_schema(**overrides)


def test_conflicting_duplicate_edge_weights_are_reported(caplog):
    nodes, edges = user_note_tables()
    follow = edges["follow_note"]
    dup = follow.head(2).copy()
    dup.loc[1, "weight"] = 9.0  # row 241 duplicates row 1 with another weight
    edges["follow_note"] = pd.concat([follow, dup], ignore_index=True)
    n = len(follow)
    index_tables(nodes, edges, user_note_schema())
    assert "dropped 2 duplicate edges" in caplog.text
    assert (
        f"1 duplicate edges have another weight than the first edge of their "
        f"pair: row {n + 1} (weight 9) vs row 1 (1)" in caplog.text
    )
    msg = _problems(nodes, edges, policy=ValidationPolicy(duplicate_edges="error"))
    assert f"row {n + 1} (weight 9) vs row 1 (1)" in msg
    # equal weights: no conflict reported
    caplog.clear()
    edges["follow_note"] = pd.concat([follow, follow.head(2)], ignore_index=True)
    index_tables(nodes, edges, user_note_schema())
    assert "another weight" not in caplog.text
