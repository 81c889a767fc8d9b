"""Small raw tables for the schema / validation / split tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hgt_cluster_kedro.graph import GraphSchema


def user_note_schema(**overrides) -> GraphSchema:
    rel = {
        "src": "user",
        "dst": "note",
        "src_column": "user_id",
        "dst_column": "note_id",
        "weight_column": "weight",
        "time_column": "timestamp",
    }
    data = {
        "node_types": {
            "user": {"id_column": "user_id", "features": ["age"]},
            "note": {
                "id_column": "note_id",
                "features": ["views"],
                "log_features": ["views"],
            },
        },
        "relations": {"follow_note": dict(rel), "share_note": dict(rel)},
        "user_type": "user",
        "item_type": "note",
        "target_relations": ["follow_note", "share_note"],
    }
    data.update(overrides)
    return GraphSchema.model_validate(data)


def user_note_tables(n_users: int = 30, n_notes: int = 40, per_user: int = 8, seed=0):
    rng = np.random.default_rng(seed)
    users = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n_users)],
            "age": rng.integers(18, 60, n_users),
        }
    )
    notes = pd.DataFrame(
        {
            "note_id": np.arange(100, 100 + n_notes),
            "views": rng.integers(0, 1000, n_notes),
        }
    )
    rows = []
    for u in range(n_users):
        for n in rng.choice(n_notes, per_user, replace=False):
            rows.append((f"u{u}", 100 + int(n)))
    follow = pd.DataFrame(rows, columns=["user_id", "note_id"])
    follow["weight"] = 1.0
    follow["timestamp"] = pd.to_datetime(
        rng.integers(1_700_000_000, 1_710_000_000, len(follow)), unit="s"
    )
    share = follow.sample(frac=0.3, random_state=1).reset_index(drop=True)
    share["timestamp"] = share["timestamp"] + pd.Timedelta(hours=1)
    return {"user": users, "note": notes}, {"follow_note": follow, "share_note": share}
