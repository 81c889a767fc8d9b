"""Embedding tables: round trip by original ids and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from hgt_cluster_kedro.embeddings import from_frame, to_frame


def test_round_trip_reorders_by_ids():
    m = np.arange(12, dtype=np.float32).reshape(4, 3)
    frame = to_frame(np.array(["a", "b", "c", "d"]), m)
    assert list(frame.columns) == ["id", "e0", "e1", "e2"]
    out = from_frame(frame.iloc[::-1], ["b", "d"], dim=3)
    np.testing.assert_array_equal(out, m[[1, 3]])


@pytest.mark.parametrize(
    ("mutate", "ids", "message"),
    [
        (
            lambda f: f.drop(index=1),
            ["a", "b"],
            r"1 ids have no embedding, e.g. \['b'\]",
        ),
        (
            lambda f: f.assign(e0=[np.nan, 1.0, 2.0]),
            ["a"],
            r"NaN or infinite values for ids \['a'\]",
        ),
        (
            lambda f: f.drop(columns=["e1"]),
            ["a"],
            "dimension 1 differs from expected 2",
        ),
        (lambda f: f.assign(id=["a", "a", "c"]), ["a"], r"duplicate ids \['a'\]"),
    ],
)
def test_bad_embeddings(mutate, ids, message):
    frame = mutate(to_frame(np.array(["a", "b", "c"]), np.ones((3, 2))))
    with pytest.raises(ValueError, match=message):
        from_frame(frame, ids, dim=2, name="user_embeddings")
