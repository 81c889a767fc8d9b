"""Leakage-free split: per-user temporal/random holdout, held-out edges removed."""

from __future__ import annotations

import numpy as np
import pytest

from hgt_cluster_kedro.graph import (
    SplitConfig,
    build_graph,
    index_tables,
    split_interactions,
)
from hgt_cluster_kedro.graph.sampler import NeighborSampler
from tests.graph._tables import user_note_schema, user_note_tables


@pytest.fixture(scope="module")
def tables():
    nodes, edges = user_note_tables()
    return index_tables(nodes, edges, user_note_schema())


def test_distinct_pairs_and_fractions(tables):
    inter = split_interactions(
        tables, SplitConfig(valid_fraction=0.125, test_fraction=0.25)
    )
    assert not inter.duplicated(["user", "item"]).any()
    assert len(inter) == 30 * 8  # share edges are a subset of follow pairs
    counts = inter.groupby(["user", "split"], observed=False).size().unstack()
    assert (counts["test"] == 2).all() and (counts["valid"] == 1).all()
    assert (counts["train"] == 5).all()


def test_temporal_split_holds_out_latest(tables):
    inter = split_interactions(tables, SplitConfig())
    for _, g in inter.groupby("user"):
        train_max = g.loc[g["split"] == "train", "time"].max()
        assert (g.loc[g["split"] == "test", "time"] >= train_max).all()
        assert (
            g.loc[g["split"] == "test", "time"]
            >= g.loc[g["split"] == "valid", "time"].max()
        ).all()


def test_random_split_is_seeded(tables):
    a = split_interactions(tables, SplitConfig(method="random", seed=3))
    b = split_interactions(tables, SplitConfig(method="random", seed=3))
    c = split_interactions(tables, SplitConfig(method="random", seed=4))
    assert a.equals(b)

    def test_pairs(frame):
        held = frame[frame["split"] == "test"]
        return set(zip(held["user"], held["item"], strict=True))

    assert test_pairs(a) != test_pairs(c)


def test_min_history_keeps_short_users_in_train(tables):
    inter = split_interactions(tables, SplitConfig(min_history=9))
    assert (inter["split"] == "train").all()


def test_temporal_split_needs_timestamps():
    nodes, edges = user_note_tables()
    schema = user_note_schema()
    schema.relations["share_note"].time_column = None
    t = index_tables(nodes, edges, schema)
    with pytest.raises(ValueError, match="relation 'share_note' has no time_column"):
        split_interactions(t, SplitConfig())


def test_no_held_out_edge_is_reachable_by_the_sampler(tables):
    inter = split_interactions(tables, SplitConfig())
    graph = build_graph(tables, inter)
    held = inter[inter["split"] != "train"]
    held_keys = set(zip(held["user"], held["item"], strict=True))
    csr = graph.csr
    # no held-out pair in any relation, either direction
    for et in csr.edge_types:
        src, dst = csr.to_coo(et)
        pairs = zip(src.tolist(), dst.tolist(), strict=True)
        if et[0] == "user":
            assert not held_keys & set(pairs), et
        else:
            assert not held_keys & {(d, s) for s, d in pairs}, et
    # and the sampler, asked for 2-hop neighbourhoods of every user, never
    # returns an edge between a held-out pair
    sampler = NeighborSampler(csr, [-1, -1], seed=0)
    import torch

    batch = sampler.sample_nodes({"user": torch.arange(graph.num_nodes["user"])})
    for et in batch.edge_types:
        ei = batch[et].edge_index
        s = batch[et[0]].n_id[ei[0]].tolist()
        d = batch[et[2]].n_id[ei[1]].tolist()
        pairs = (
            set(zip(s, d, strict=True))
            if et[0] == "user"
            else set(zip(d, s, strict=True))
        )
        assert not held_keys & pairs, et
    # train pairs are still there
    train = inter[inter["split"] == "train"]
    has = csr.has_edges(
        ("user", "follow_note", "note"),
        torch.as_tensor(train["user"].to_numpy()),
        torch.as_tensor(train["item"].to_numpy()),
    )
    assert bool(has.all())
    assert np.isin(held["user"].unique(), train["user"].unique()).all()
