"""SimClusters follow graphs along metapaths (author -> paper -> venue) on a tiny
hand-made graph: the product, the config checks, the train-only guarantee."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hgt_cluster_kedro.graph import GraphSchema
from hgt_cluster_kedro.graph.artifact import build_graph
from hgt_cluster_kedro.graph.csr import HeteroCSR
from hgt_cluster_kedro.graph.tables import EdgeArrays, IndexedTables
from hgt_cluster_kedro.simclusters import (
    SimClustersConfig,
    engagement_matrix,
    follow_matrix,
    metapath_matrix,
)

N = {"author": 4, "paper": 5, "venue": 3, "term": 2}
#: (author, paper): author 0 wrote papers 0, 1, 2; author 3 wrote nothing
WRITES = [(0, 0), (0, 1), (0, 2), (1, 2), (1, 3), (2, 4)]
#: (paper, venue): papers 0 and 1 in venue 0
IN_VENUE = [(0, 0), (1, 0), (2, 1), (3, 2), (4, 2)]
HAS_TERM = [(0, 0), (1, 0), (1, 1), (2, 1), (4, 1)]


def _dense(pairs, shape) -> np.ndarray:
    out = np.zeros(shape, np.float32)
    for s, d in pairs:
        out[s, d] = 1.0
    return out


def _schema() -> GraphSchema:
    def rel(src, dst):
        return {
            "src": src,
            "dst": dst,
            "src_column": f"{src}_id",
            "dst_column": f"{dst}_id",
        }

    return GraphSchema.model_validate(
        {
            "node_types": {t: {"id_column": f"{t}_id"} for t in N},
            "relations": {
                "writes": rel("author", "paper"),
                "in_venue": rel("paper", "venue"),
                "has_term": rel("paper", "term"),
                "cites": rel("paper", "paper"),
            },
            "user_type": "author",
            "item_type": "paper",
            "target_relations": ["writes"],
        }
    )


def _coo(pairs):
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


@pytest.fixture(scope="module")
def schema() -> GraphSchema:
    return _schema()


@pytest.fixture(scope="module")
def csr(schema) -> HeteroCSR:
    edges = {
        schema.edge_type("writes"): WRITES,
        schema.edge_type("in_venue"): IN_VENUE,
        schema.edge_type("has_term"): HAS_TERM,
        schema.edge_type("cites"): [(0, 1)],
    }
    coo = {
        et: tuple(torch.from_numpy(a) for a in _coo(pairs))
        for et, pairs in edges.items()
    }
    return HeteroCSR.from_coo(N, coo, add_reverse=True)


def _follow(csr, schema, **params):
    params = {"engagement_relations": ["writes"], "knownfor": {"k": 2}, **params}
    cfg = SimClustersConfig.parse(params)
    cfg.check_graph(schema, N)
    weights = None
    if cfg.follow_weights:
        weights = [cfg.follow_weights.get(r, 1.0) for r in cfg.follow_relations]
    return follow_matrix(
        csr,
        cfg.follow_paths(schema),
        weights,
        metapath_weighting=cfg.metapath_weighting,
    )


WP = _dense(WRITES, (N["author"], N["paper"]))
PV = _dense(IN_VENUE, (N["paper"], N["venue"]))
PT = _dense(HAS_TERM, (N["paper"], N["term"]))


@pytest.mark.parametrize(
    "spelling", ["writes.in_venue", [["writes", "in_venue"]], ["writes.in_venue"]]
)
def test_metapath_is_the_product_of_counts(csr, schema, spelling):
    a = _follow(csr, schema, follow_relation=spelling)
    expected = WP @ PV  # hand-worked: author 0 has 2 papers in venue 0, 1 in venue 1
    np.testing.assert_array_equal(
        expected, [[2, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0]]
    )
    assert a.shape == (N["author"], N["venue"]) and a.dtype == np.float32
    np.testing.assert_array_equal(a.toarray(), expected)
    assert a.nnz == np.count_nonzero(expected)  # sparse, no stored zeros


def test_metapath_binary_and_rev_hops(csr, schema):
    a = _follow(
        csr, schema, follow_relation="writes.has_term", metapath_weighting="binary"
    )
    np.testing.assert_array_equal(a.toarray(), (WP @ PT > 0).astype(np.float32))
    # writes.rev_writes: co-authorship (author -> paper -> author), path counts
    co = _follow(csr, schema, follow_relation="writes.rev_writes")
    np.testing.assert_array_equal(co.toarray(), WP @ WP.T)
    # three hops, with a paper -> paper relation in the middle
    cited = _follow(csr, schema, follow_relation=[["writes", "cites", "in_venue"]])
    cites = _dense([(0, 1)], (N["paper"], N["paper"]))
    np.testing.assert_array_equal(cited.toarray(), WP @ cites @ PV)


def test_union_of_metapaths(csr, schema):
    both = ["writes.in_venue", "writes.cites.in_venue"]
    cites = _dense([(0, 1)], (N["paper"], N["paper"]))
    direct, cited = WP @ PV, WP @ cites @ PV
    a = _follow(csr, schema, follow_relation=both)
    np.testing.assert_array_equal(a.toarray(), np.maximum(direct, cited))
    w = _follow(
        csr,
        schema,
        follow_relation=both,
        follow_weights={"writes.in_venue": 1.0, "writes.cites.in_venue": 0.5},
    )
    np.testing.assert_allclose(w.toarray(), direct + 0.5 * cited)


def test_single_relation_unchanged(csr, schema):
    et = schema.edge_type("writes")
    a = _follow(csr, schema, follow_relation="writes")
    ref = engagement_matrix(csr, [et])
    assert (a != ref).nnz == 0 and a.dtype == ref.dtype
    np.testing.assert_array_equal(a.indptr, ref.indptr)
    np.testing.assert_array_equal(a.indices, ref.indices)
    np.testing.assert_array_equal(a.toarray(), WP)
    # a one-hop metapath is the relation itself
    one = metapath_matrix(csr, [et])
    np.testing.assert_array_equal(one.toarray(), WP)


def test_metapath_product_needs_chained_hops(csr, schema):
    with pytest.raises(ValueError, match="'in_venue' starts at 'paper'"):
        metapath_matrix(
            csr, [schema.edge_type("in_venue"), schema.edge_type("in_venue")]
        )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # a hop that does not start where the previous one ended
        (
            "writes.in_venue.has_term",
            r"simclusters\.follow_relation='writes\.in_venue\.has_term': hop 3 "
            r"'has_term' goes paper -> term, but the path is at 'venue'",
        ),
        (
            [["writes", "has_term", "in_venue"]],
            r"simclusters\.follow_relation=\['writes', 'has_term', 'in_venue'\]: "
            r"hop 3 'in_venue'",
        ),
        # not starting at the users
        (
            "in_venue.rev_in_venue",
            r"simclusters\.follow_relation='in_venue\.rev_in_venue' goes paper -> "
            r"venue; its consumers must be the users \(author\)",
        ),
        # a list is a union: [writes, in_venue] is not a metapath
        (
            ["writes", "in_venue"],
            r"simclusters\.follow_relation='in_venue' goes paper -> venue; .*"
            r"a metapath is one entry",
        ),
        # unknown hop, empty hop, empty metapath
        (
            "writes.published_in",
            r"simclusters\.follow_relation='writes\.published_in': 'published_in' "
            r"is not a relation",
        ),
        ("writes..in_venue", r"simclusters\.follow_relation='writes\.\.in_venue'"),
        ([[]], r"simclusters\.follow_relation=\[\]: a metapath needs"),
        ("likes", r"simclusters\.follow_relation='likes' is not a relation"),
        # entries of a union must end at one producer type
        (
            ["writes.in_venue", "writes.has_term"],
            r"simclusters\.follow_relation=\['writes\.in_venue', 'writes\.has_term'\]"
            r": the entries go to different producer types \['term', 'venue'\]",
        ),
    ],
)
def test_bad_metapath_names_parameter_and_value(schema, value, message):
    cfg = SimClustersConfig.parse(
        {"follow_relation": value, "engagement_relations": ["writes"]}
    )
    with pytest.raises(ValueError, match=message):
        cfg.check_graph(schema, N)


def test_metapath_config_checks(schema):
    cfg = SimClustersConfig.parse(
        {
            "follow_relation": "writes.in_venue",
            "follow_weights": {"writes": 2.0},
            "engagement_relations": ["writes"],
        }
    )
    with pytest.raises(ValueError, match=r"follow_weights: 'writes' is not one of"):
        cfg.check_graph(schema, N)
    cfg = SimClustersConfig.parse(
        {
            "follow_relation": "writes.in_venue",
            "engagement_relations": ["writes"],
            "knownfor": {"k": 4},
        }
    )
    with pytest.raises(ValueError, match=r"knownfor\.k=4 is larger .*\(3 venue"):
        cfg.check_graph(schema, N)
    with pytest.raises(ValueError, match=r"simclusters\.metapath_weighting"):
        SimClustersConfig.parse(
            {
                "follow_relation": "writes.in_venue",
                "metapath_weighting": "log",
                "engagement_relations": ["writes"],
            }
        )
    cfg = SimClustersConfig.parse(
        {"follow_relation": [["writes", "in_venue"]], "engagement_relations": ["w"]}
    )
    assert cfg.follow_relations == ["writes.in_venue"]


def test_metapath_walks_train_pairs_only(schema):
    """A held-out (author, paper) pair is not in the graph's writes, so the
    author does not reach that paper's venue through it."""
    tables = IndexedTables(
        schema=schema,
        ids={t: pd.Index(np.arange(n)) for t, n in N.items()},
        edges={
            schema.edge_type("writes"): EdgeArrays(*_coo(WRITES)),
            schema.edge_type("in_venue"): EdgeArrays(*_coo(IN_VENUE)),
            schema.edge_type("has_term"): EdgeArrays(*_coo(HAS_TERM)),
            schema.edge_type("cites"): EdgeArrays(*_coo([(0, 1)])),
        },
    )
    # author 0's paper 2 (venue 1) is a test pair, author 1's paper 3 a valid one
    split = ["train", "train", "test", "train", "valid", "train"]
    interactions = pd.DataFrame(
        {
            "user": [u for u, _ in WRITES],
            "item": [p for _, p in WRITES],
            "split": split,
        }
    )
    graph = build_graph(tables, interactions)
    a = _follow(graph.csr, schema, follow_relation="writes.in_venue")
    train_wp = _dense(
        [pair for pair, s in zip(WRITES, split, strict=True) if s == "train"],
        (N["author"], N["paper"]),
    )
    np.testing.assert_array_equal(a.toarray(), train_wp @ PV)
    assert a[0, 1] == 0 and a[1, 2] == 0  # only reached through held-out papers
    co = _follow(graph.csr, schema, follow_relation="writes.rev_writes")
    np.testing.assert_array_equal(co.toarray(), train_wp @ train_wp.T)
