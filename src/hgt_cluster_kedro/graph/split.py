"""Leakage-free train / valid / test split of the target interactions.

The unit of the split is a distinct (user, item) pair over all target relations
(a user who shared and commented on a note interacted with it once, at the
earliest time). A held-out pair is removed from *every* relation between the
user and item types, in both directions, so message passing never sees it.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .schema import SplitConfig
from .tables import EdgeArrays, IndexedTables

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


def split_interactions(tables: IndexedTables, config: SplitConfig) -> pd.DataFrame:
    """Split the distinct target (user, item) pairs per user.

    Returns:
        One row per distinct pair: ``user``, ``item`` (contiguous ids),
        ``user_id``, ``item_id`` (original ids), ``time`` (earliest interaction,
        milliseconds; 0 without a time column), ``n_relations`` and ``split``.

    Raises:
        ValueError: ``temporal`` split on a target relation without timestamps.
    """
    schema = tables.schema
    users, items, times = [], [], []
    for rname in schema.target_relations:
        arrays = tables.edges[schema.edge_type(rname)]
        if arrays.time is None and config.method == "temporal":
            raise ValueError(
                f"graph.split.method='temporal' needs timestamps, but relation "
                f"{rname!r} has no time_column; set one or use method: random"
            )
        users.append(arrays.src)
        items.append(arrays.dst)
        times.append(
            arrays.time
            if arrays.time is not None
            else np.zeros(len(arrays.src), np.int64)
        )
    user = np.concatenate(users)
    item = np.concatenate(items)
    time = np.concatenate(times)
    n_items = tables.num_nodes[schema.item_type]
    key = user * n_items + item
    order = np.lexsort((time, key))
    key_sorted = key[order]
    first = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
    counts = np.diff(np.r_[first, len(key_sorted)])
    pair_key = key_sorted[first]
    pair_time = time[order][first]
    pair_user = pair_key // n_items
    pair_item = pair_key % n_items

    if config.method == "temporal":
        rank_key = pair_time
    else:
        rank_key = np.random.default_rng(config.seed).random(len(pair_key))
    # within each user: oldest first (ties broken by item id), held-out at the end
    order = np.lexsort((pair_item, rank_key, pair_user))
    sorted_user = pair_user[order]
    n_users = tables.num_nodes[schema.user_type]
    per_user = np.bincount(sorted_user, minlength=n_users)
    start = np.r_[0, np.cumsum(per_user)[:-1]]
    pos_from_end = (
        per_user[sorted_user] - 1 - (np.arange(len(order)) - start[sorted_user])
    )

    eligible = per_user >= config.min_history
    n_test = np.where(
        eligible, np.maximum(1, np.floor(per_user * config.test_fraction)), 0
    )
    n_valid = np.floor(per_user * config.valid_fraction)
    if config.valid_fraction > 0:
        n_valid = np.maximum(1, n_valid)
    n_valid = np.where(eligible, np.minimum(n_valid, per_user - n_test - 1), 0)
    t = n_test[sorted_user]
    v = n_valid[sorted_user]
    split_code = np.where(pos_from_end < t, 2, np.where(pos_from_end < t + v, 1, 0))

    ids_user = tables.ids[schema.user_type]
    ids_item = tables.ids[schema.item_type]
    u = pair_user[order]
    i = pair_item[order]
    frame = pd.DataFrame(
        {
            "user": u,
            "item": i,
            "user_id": ids_user.to_numpy()[u],
            "item_id": ids_item.to_numpy()[i],
            "time": pair_time[order].astype("datetime64[ms]"),
            "n_relations": counts[order].astype(np.int16),
            "split": pd.Categorical.from_codes(split_code, categories=list(SPLITS)),
        }
    )
    sizes = frame["split"].value_counts().reindex(list(SPLITS)).to_dict()
    logger.info(
        "Split %d distinct %s-%s pairs (%s, %d of %d users hold out): %s",
        len(frame),
        schema.user_type,
        schema.item_type,
        config.method,
        int(eligible.sum()),
        n_users,
        sizes,
    )
    return frame


def held_out_mask(
    src: np.ndarray,
    dst: np.ndarray,
    held_keys: np.ndarray,
    n_items: int,
    user_is_src: bool,
) -> np.ndarray:
    """True for edges whose (user, item) pair is in ``held_keys`` (sorted keys)."""
    key = src * n_items + dst if user_is_src else dst * n_items + src
    pos = np.searchsorted(held_keys, key)
    pos = np.minimum(pos, max(len(held_keys) - 1, 0))
    return (held_keys[pos] == key) if len(held_keys) else np.zeros(len(key), bool)


def train_edges(tables: IndexedTables, interactions: pd.DataFrame) -> dict:
    """Edges for message passing: every relation minus the held-out pairs.

    Any relation between the user and item types (either direction) loses the
    edges of valid and test pairs; other relations are unchanged.
    """
    schema = tables.schema
    n_items = tables.num_nodes[schema.item_type]
    held = interactions[interactions["split"] != "train"]
    held_keys = np.sort(held["user"].to_numpy() * n_items + held["item"].to_numpy())
    out: dict = {}
    removed = 0
    for et, arrays in tables.edges.items():
        ends = (et[0], et[2])
        if ends == (schema.user_type, schema.item_type):
            drop = held_out_mask(arrays.src, arrays.dst, held_keys, n_items, True)
        elif ends == (schema.item_type, schema.user_type):
            drop = held_out_mask(arrays.src, arrays.dst, held_keys, n_items, False)
        else:
            out[et] = arrays
            continue
        removed += int(drop.sum())
        keep = ~drop
        out[et] = EdgeArrays(
            arrays.src[keep],
            arrays.dst[keep],
            None if arrays.weight is None else arrays.weight[keep],
            None if arrays.time is None else arrays.time[keep],
        )
    logger.info("Removed %d held-out edges from the message-passing graph", removed)
    return out
