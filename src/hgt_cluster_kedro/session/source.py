"""Where sessions come from, and the SR-GNN filtering of them (Kedro-free).

Two sources give the same per-click table (``session``, ``owner``, ``item``,
``time``, ``split``):

* :func:`clicks_from_relations`: the project's own user -> item relations (the
  ``raw_edges`` tables of the graph schema). Each click takes the split of its
  (user, item) pair in the ``interactions`` table, and each split's clicks are cut
  into sessions separately, so a train session never holds a held-out pair;
* :func:`clicks_from_csv`: a session log such as Diginetica's
  ``train-item-views.csv`` (sessions given by a column), split as in the authors'
  ``preprocess.py``: sessions whose last date is in the final ``test_days``
  are test, a seeded ``valid_fraction`` of the others validation.

:func:`prepare` applies the SR-GNN protocol (length-1 sessions, rare items, the
train vocabulary) and returns model-ready sessions of every split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .sessions import ItemVocab, Sessions, cut_sessions, drop_rare_items, drop_short

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
CLICK_COLUMNS = ("session", "owner", "item", "time", "split")


def parse_gap(gap: Any) -> int:
    """``session.gap`` in milliseconds: a number of seconds or a pandas
    ``Timedelta`` string (``"30min"``, ``"7D"``); must be positive."""
    try:
        ms = (
            pd.Timedelta(gap).total_seconds() * 1000
            if isinstance(gap, str)
            else float(gap) * 1000
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"session.gap={gap!r} is not a duration") from exc
    if not ms > 0:
        raise ValueError(f"session.gap must be > 0 (got {gap!r})")
    return int(ms)


def _to_ms(values: pd.Series, where: str) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.to_numpy("datetime64[ms]").astype(np.int64)
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(np.int64)
    try:
        return pd.to_datetime(values).to_numpy("datetime64[ms]").astype(np.int64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not a time column ({values.dtype})") from exc


def _table(sessions: Sessions, split: str, start: int) -> pd.DataFrame:
    idx = sessions.session_index()
    click_time = np.zeros(len(idx), np.int64)  # filled by the caller
    return pd.DataFrame(
        {
            "session": idx + start,
            "owner": sessions.owner[idx],
            "item": sessions.items,
            "time": click_time,
            "split": split,
        }
    )


def clicks_from_relations(
    edges: dict[str, pd.DataFrame],
    schema: Any,
    user_ids: pd.Index,
    item_ids: pd.Index,
    interactions: pd.DataFrame,
    *,
    relations: list[str] | None,
    gap: Any,
    max_length: int | None,
) -> pd.DataFrame:
    """Clicks of ``relations`` (default: the schema's target relations) cut into
    sessions per user and split.

    ``owner`` is the user's contiguous id, ``item`` the item's contiguous id.

    Raises:
        ValueError: unknown relation, one without a time column, or a gap <= 0.
    """
    gap_ms = parse_gap(gap)
    names = list(relations or schema.target_relations)
    users, items, times = [], [], []
    for name in names:
        rel = schema.relations.get(name)
        if rel is None or (rel.src, rel.dst) != (schema.user_type, schema.item_type):
            raise ValueError(
                f"session.relations: {name!r} is not a {schema.user_type} -> "
                f"{schema.item_type} relation of graph.schema"
            )
        if rel.time_column is None:
            raise ValueError(
                f"session.relations: relation {name!r} has no time_column in "
                "graph.schema; sessions need timestamps"
            )
        table = edges.get(name)
        if table is None:
            raise ValueError(f"raw_edges: no table for relation {name!r}")
        if rel.time_column not in table.columns:
            raise ValueError(
                f"raw_edges[{name!r}]: no timestamp column {rel.time_column!r} "
                f"(columns: {list(table.columns)})"
            )
        u = user_ids.get_indexer(table[rel.src_column].to_numpy())
        i = item_ids.get_indexer(table[rel.dst_column].to_numpy())
        known = (u >= 0) & (i >= 0)  # rows the graph pipeline dropped
        users.append(u[known])
        items.append(i[known])
        times.append(_to_ms(table[rel.time_column], f"raw_edges[{name!r}]")[known])
    user = np.concatenate(users).astype(np.int64)
    item = np.concatenate(items).astype(np.int64)
    time = np.concatenate(times)
    n_items = len(item_ids)
    pair_key = interactions["user"].to_numpy(np.int64) * n_items + interactions[
        "item"
    ].to_numpy(np.int64)
    order = np.argsort(pair_key)
    pos = np.searchsorted(pair_key[order], user * n_items + item)
    pos = np.minimum(pos, len(order) - 1)
    found = pair_key[order][pos] == user * n_items + item
    split = np.where(
        found, interactions["split"].to_numpy()[order][pos], "train"
    ).astype(object)
    frames, start = [], 0
    for name in SPLITS:
        sel = split == name
        s = cut_sessions(
            user[sel], item[sel], time[sel], gap=gap_ms, max_length=max_length
        )
        frame = _table(s, name, start)
        frame["time"] = _click_times(user[sel], time[sel])
        frames.append(frame)
        start += len(s)
    return pd.concat(frames, ignore_index=True)


def _click_times(owner: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Times in the order :func:`cut_sessions` sorts clicks (owner, time)."""
    return time[np.lexsort((np.arange(len(owner)), time, owner))]


@dataclass(frozen=True)
class CsvSource:
    """A session log file (the authors' Diginetica format by default)."""

    path: str
    sep: str = ";"
    session_column: str = "session_id"
    item_column: str = "item_id"
    time_column: str = "eventdate"
    order_column: str | None = "timeframe"
    test_days: float = 1.0
    valid_fraction: float = 0.1
    seed: int = 0


def clicks_from_csv(
    source: CsvSource, *, gap: Any, max_length: int | None
) -> pd.DataFrame:
    """Clicks of a session log, split by session date as the authors do.

    A session's date is its last click's ``time_column``; sessions dated after
    ``max date - test_days`` are test; ``valid_fraction`` of the others (seeded)
    validation. ``gap`` also cuts sessions of the log (a large gap keeps them).

    Raises:
        ValueError: missing file or column, or a bad parameter.
    """
    gap_ms = parse_gap(gap)
    path = Path(source.path)
    if not path.is_file():
        raise ValueError(f"session.csv.path: {str(path)!r} is not a file")
    if not 0 <= source.valid_fraction < 1:
        raise ValueError(
            f"session.csv.valid_fraction must be in [0, 1) (got {source.valid_fraction})"
        )
    if not source.test_days > 0:
        raise ValueError(f"session.csv.test_days must be > 0 (got {source.test_days})")
    frame = pd.read_csv(path, sep=source.sep)
    needed = [source.session_column, source.item_column, source.time_column]
    if source.order_column:
        needed.append(source.order_column)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{str(path)!r}: no column(s) {missing} (session.csv; columns: "
            f"{list(frame.columns)}); a timestamp column is required"
        )
    frame = frame.dropna(subset=needed)
    time = _to_ms(
        frame[source.time_column], f"{str(path)!r} column {source.time_column!r}"
    )
    # within a session, clicks are ordered (and gaps measured) by the order
    # column when there is one (the authors' ``timeframe``, ms), else by time
    click_time = (
        frame[source.order_column].to_numpy(np.int64) if source.order_column else time
    )
    owner = pd.factorize(frame[source.session_column])[0].astype(np.int64)
    sessions = cut_sessions(
        owner,
        frame[source.item_column].to_numpy(np.int64),
        click_time,
        gap=gap_ms,
        max_length=max_length,
    )
    # session date: its last day (max of the time column)
    date = pd.Series(time).groupby(owner).max().to_numpy()
    end = date[sessions.owner]
    split = np.where(end > date.max() - source.test_days * 86_400_000, "test", "train")
    rng = np.random.default_rng(source.seed)
    train_idx = np.flatnonzero(split == "train")
    n_valid = int(round(source.valid_fraction * len(train_idx)))
    split[rng.permutation(train_idx)[:n_valid]] = "valid"
    s = Sessions(sessions.offsets, sessions.items, sessions.owner, end)
    out = _table(s, "", 0)
    out["split"] = split[s.session_index()]
    out["time"] = end[s.session_index()]
    return out


@dataclass(frozen=True)
class PreparedSessions:
    """Model-ready sessions (vocabulary ids ``1..len(vocab)``) of every split."""

    train: Sessions
    valid: Sessions
    test: Sessions
    vocab: ItemVocab


def _sessions(clicks: pd.DataFrame, split: str) -> Sessions:
    part = clicks[clicks["split"] == split]
    sid = part["session"].to_numpy(np.int64)
    if len(sid) and np.any(np.diff(sid) < 0):
        raise ValueError("session_clicks: rows are not grouped by session")
    new = np.r_[True, sid[1:] != sid[:-1]] if len(sid) else np.zeros(0, bool)
    starts = np.flatnonzero(new)
    offsets = np.r_[starts, len(sid)].astype(np.int64)
    last = offsets[1:] - 1
    return Sessions(
        offsets=offsets,
        items=part["item"].to_numpy(np.int64),
        owner=part["owner"].to_numpy(np.int64)[starts],
        end_time=part["time"].to_numpy(np.int64)[last],
    )


def prepare(
    clicks: pd.DataFrame, *, min_item_count: int, count_scope: str = "train"
) -> PreparedSessions:
    """The SR-GNN filtering: sessions of length 1 dropped, items seen fewer than
    ``min_item_count`` times dropped (counted over the train sessions, or over
    ``all`` sessions as the authors' preprocessing does), sessions shorter than 2
    dropped again; items numbered by the train sessions; valid / test clicks on
    items unknown to train dropped.

    Raises:
        ValueError: a missing column, or no train session left.
    """
    missing = [c for c in CLICK_COLUMNS if c not in clicks.columns]
    if missing:
        raise ValueError(f"session_clicks: missing column(s) {missing}")
    if count_scope not in ("train", "all"):
        raise ValueError(
            f"session.count_scope must be 'train' or 'all' (got {count_scope!r})"
        )
    parts = {s: drop_short(_sessions(clicks, s)) for s in SPLITS}
    counted = parts["train"]
    if count_scope == "all":
        counted = Sessions(
            offsets=np.zeros(1, np.int64),
            items=np.concatenate([p.items for p in parts.values()]),
            owner=np.zeros(0, np.int64),
            end_time=np.zeros(0, np.int64),
        )
    parts = {
        s: drop_rare_items(p, int(min_item_count), counted=counted)
        for s, p in parts.items()
    }
    if len(parts["train"]) == 0:
        raise ValueError(
            f"session_clicks: no train session left after filtering ({len(clicks)} "
            f"clicks; sessions of length 1 and items seen < session.min_item_count="
            f"{min_item_count} times dropped); raise session.gap or lower "
            "session.min_item_count"
        )
    vocab = ItemVocab.from_sessions(parts["train"])
    coded = {s: vocab.encode_sessions(p) for s, p in parts.items()}
    logger.info(
        "Sessions: %s, %d items",
        {s: len(p) for s, p in coded.items()},
        len(vocab),
    )
    return PreparedSessions(coded["train"], coded["valid"], coded["test"], vocab)
