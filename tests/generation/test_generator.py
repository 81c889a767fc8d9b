"""The planted-community generator: determinism, exactness, planted signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from hgt_cluster_kedro.generation import GeneratorConfig, generate_local
from hgt_cluster_kedro.generation.planted import allocate, block_bounds
from tests.conftest import tiny_generation_params


@pytest.fixture(scope="module")
def graph():
    return generate_local(GeneratorConfig.model_validate(tiny_generation_params()))


def _within_share(graph, relation: str) -> float:
    e = graph.edges[relation]
    m = e.merge(graph.user_communities, on="user_id").merge(
        graph.note_topics, on="note_id"
    )
    return float((m["community"] == m["topic"]).mean())


def test_same_seed_gives_identical_tables():
    cfg = GeneratorConfig.model_validate(tiny_generation_params())
    a, b = generate_local(cfg), generate_local(cfg)
    for rel in a.edges:
        pd.testing.assert_frame_equal(a.edges[rel], b.edges[rel])
    pd.testing.assert_frame_equal(a.nodes["user"], b.nodes["user"])
    pd.testing.assert_frame_equal(a.user_communities, b.user_communities)


def test_different_seed_gives_different_edges():
    a = generate_local(GeneratorConfig.model_validate(tiny_generation_params()))
    b = generate_local(GeneratorConfig.model_validate(tiny_generation_params(seed=8)))
    assert not a.edges["share_note"].equals(b.edges["share_note"])


def test_every_relation_present_with_exact_counts_and_no_duplicates(graph):
    params = tiny_generation_params()
    assert set(graph.edges) == {"follow_note", "comment_note", "share_note"}
    for rel, edges in graph.edges.items():
        assert len(edges) == params["relations"][rel]["n_edges"], rel
        assert not edges.duplicated(["user_id", "note_id"]).any(), rel
        assert list(edges.columns) == ["user_id", "note_id", "weight", "timestamp"]


def test_ids_in_range_and_nodes_cover_ranges(graph):
    params = tiny_generation_params()
    users, notes = graph.nodes["user"], graph.nodes["note"]
    assert users["user_id"].tolist() == list(range(params["n_users"]))
    assert notes["note_id"].tolist() == list(range(params["n_notes"]))
    for edges in graph.edges.values():
        assert edges["user_id"].between(0, params["n_users"] - 1).all()
        assert edges["note_id"].between(0, params["n_notes"] - 1).all()
        assert (edges["weight"] >= 1).all()


def test_ground_truth_is_kept_apart_from_observable_tables(graph):
    assert "community" not in graph.nodes["user"].columns
    assert "topic" not in graph.nodes["note"].columns
    assert graph.user_communities["community"].between(0, 3).all()


def test_planted_signal_follows_configured_order(graph):
    follow = _within_share(graph, "follow_note")
    comment = _within_share(graph, "comment_note")
    share = _within_share(graph, "share_note")
    assert follow < comment < share
    # noise lands in the own topic by chance too, so measured >= configured
    assert share == pytest.approx(0.75 + 0.25 / 4, abs=0.08)
    assert follow > 0.35


def test_timestamps_within_window_and_after_note_creation(graph):
    notes = graph.nodes["note"].set_index("note_id")["created_time"]
    for edges in graph.edges.values():
        assert (edges["timestamp"] >= notes.loc[edges["note_id"]].to_numpy()).all()
        assert edges["timestamp"].max() <= pd.Timestamp("2024-07-01")


def test_activity_and_popularity_are_heavy_tailed(graph):
    deg = graph.edges["follow_note"].groupby("user_id").size()
    pop = graph.edges["follow_note"].groupby("note_id").size()
    assert deg.max() > 5 * deg.median()
    assert pop.max() > 5 * pop.median()


def test_block_bounds_cover_without_overlap_or_remainder_loss():
    b = block_bounds(103, 20)
    assert b[0] == 0 and b[-1] == 103 and len(b) == 21
    assert np.all(np.diff(b) >= 5) and np.all(np.diff(b) <= 6)
    shares = allocate(1001, np.diff(b))
    assert shares.sum() == 1001


def test_result_depends_on_n_parts_only_through_streams_not_on_counts():
    cfg = GeneratorConfig.model_validate(tiny_generation_params(n_parts=3))
    g = generate_local(cfg)
    assert len(g.edges["follow_note"]) == 4000
    assert not g.edges["follow_note"].duplicated(["user_id", "note_id"]).any()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_users": 0}, "n_users"),
        ({"n_notes": -5}, "n_notes"),
        ({"n_communities": 500}, "n_communities=500 must be <= n_users=400"),
        ({"seed": -1}, "seed"),
        ({"n_parts": 0}, "n_parts"),
        ({"max_degree_fraction": 0.9}, "max_degree_fraction"),
        (
            {
                "relations": {
                    **tiny_generation_params()["relations"],
                    "like_note": {"n_edges": 5, "p_in_community": 0.1},
                }
            },
            "unknown relation name(s) ['like_note']",
        ),
        (
            {
                "relations": {
                    **tiny_generation_params()["relations"],
                    "share_note": {"n_edges": 10, "p_in_community": 1.5},
                }
            },
            "relations.share_note.p_in_community",
        ),
        (
            {
                "relations": {
                    **tiny_generation_params()["relations"],
                    "follow_note": {"n_edges": 10**7, "p_in_community": 0.5},
                }
            },
            "relations.follow_note.n_edges=10000000 is too large",
        ),
        ({"end_time": "2023-01-01T00:00:00"}, "end_time"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_parameters_name_the_parameter(overrides, message):
    with pytest.raises(ValidationError) as err:
        GeneratorConfig.model_validate(tiny_generation_params(**overrides))
    assert message in str(err.value)


def test_sessions_block_off_keeps_default_outputs():
    """The optional ``sessions`` block is off by default and leaves the generator's
    outputs bit-identical to the code before it existed (digest recorded then)."""
    import hashlib

    import pandas as pd

    from hgt_cluster_kedro.generation import planted
    from hgt_cluster_kedro.generation.config import GeneratorConfig

    cfg = GeneratorConfig(
        seed=7,
        n_parts=2,
        n_users=300,
        n_notes=400,
        n_communities=4,
        relations={
            "follow_note": {"n_edges": 3000, "p_in_community": 0.35},
            "comment_note": {
                "n_edges": 1200,
                "p_in_community": 0.55,
                "weight_mean": 1.0,
            },
            "share_note": {"n_edges": 600, "p_in_community": 0.75, "weight_mean": 0.5},
        },
    )
    assert cfg.sessions is None
    h = hashlib.sha256()
    frames = [
        planted.edges_frame(cfg, rel, b) for rel in cfg.relations for b in range(2)
    ]
    frames += [
        f(cfg, b) for b in range(2) for f in (planted.users_frame, planted.notes_frame)
    ]
    for frame in frames:
        h.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    assert h.hexdigest() == (
        "7fb23a6808f190c8af03f9599bc35f63162c4a4c9d21919962798a2730ac7c13"
    )


def test_sessions_block_plants_successors():
    import pandas as pd

    from hgt_cluster_kedro.generation import planted
    from hgt_cluster_kedro.generation.config import GeneratorConfig

    params = tiny_generation_params(
        sessions={"relation": "follow_note", "p_follow": 0.9, "mean_length": 5}
    )
    cfg = GeneratorConfig.model_validate(params)
    edges = planted.edges_frame(cfg, "follow_note", 0)
    assert not edges.duplicated(["user_id", "note_id"]).any()
    succ = planted.planted_successors(cfg)
    e = edges.sort_values(["user_id", "timestamp"])
    same = e.user_id.eq(e.user_id.shift()) & (e.timestamp.diff() < pd.Timedelta("1h"))
    prev = e.note_id.shift()[same].astype(int).to_numpy()
    rate = (succ[prev] == e.note_id[same].to_numpy()).mean()
    assert 0.8 < rate <= 0.95
    with pytest.raises(ValueError, match="sessions.relation='nope'"):
        GeneratorConfig.model_validate(
            tiny_generation_params(sessions={"relation": "nope"})
        )
