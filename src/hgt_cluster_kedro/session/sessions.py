"""Sessions from time-stamped interactions, as in the SR-GNN protocol.

Wu et al., "Session-based Recommendation with Graph Neural Networks" (AAAI 2019)
and the authors' ``datasets/preprocess.py``: a session is a run of one owner's
(user's) clicks with no inactivity gap above ``gap``; sessions of length 1 are
dropped, items seen fewer than ``min_item_count`` times are dropped, then sessions
shorter than 2 again. Every prefix of a session predicts its next item.

Sessions are stored flat (CSR-like): ``items[offsets[s]:offsets[s + 1]]`` are the
clicks of session ``s`` in time order. Nothing here loops over sessions in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sessions:
    """Sessions in flat form.

    Attributes:
        offsets: ``(n + 1,)`` start of each session in ``items``.
        items: clicked items in time order (raw ids, or vocabulary ids >= 1).
        owner: ``(n,)`` the user (or source session id) of each session.
        end_time: ``(n,)`` time of each session's last click (int64, e.g. ms).
    """

    offsets: np.ndarray
    items: np.ndarray
    owner: np.ndarray
    end_time: np.ndarray

    def __len__(self) -> int:
        return len(self.owner)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def session_index(self) -> np.ndarray:
        """Session of each entry of ``items``."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def select(self, keep: np.ndarray) -> Sessions:
        """The sessions where the boolean ``keep`` is true (order kept)."""
        keep = np.asarray(keep, dtype=bool)
        entry = keep[self.session_index()]
        return Sessions(
            offsets=np.r_[0, np.cumsum(self.lengths[keep])].astype(np.int64),
            items=self.items[entry],
            owner=self.owner[keep],
            end_time=self.end_time[keep],
        )

    def filter_items(self, keep_item: np.ndarray) -> Sessions:
        """Drop the clicks whose entry of the boolean ``keep_item`` is false."""
        keep_item = np.asarray(keep_item, dtype=bool)
        counts = np.bincount(
            self.session_index()[keep_item], minlength=len(self)
        ).astype(np.int64)
        return Sessions(
            offsets=np.r_[0, np.cumsum(counts)].astype(np.int64),
            items=self.items[keep_item],
            owner=self.owner,
            end_time=self.end_time,
        )

    def last(self, n: int) -> np.ndarray:
        """Up to the last ``n`` clicks of every session as a ``(len, n)`` matrix,
        left-aligned and padded with 0 (items must be vocabulary ids >= 1)."""
        lengths = np.minimum(self.lengths, n)
        out = np.zeros((len(self), n), dtype=np.int64)
        col = np.arange(n)
        valid = col[None, :] < lengths[:, None]
        start = self.offsets[1:] - lengths
        pos = start[:, None] + col[None, :]
        out[valid] = self.items[pos[valid]]
        return out


def cut_sessions(
    owner: np.ndarray,
    item: np.ndarray,
    time: np.ndarray,
    *,
    gap: float,
    max_length: int | None = None,
    order: np.ndarray | None = None,
) -> Sessions:
    """Cut each owner's time-ordered clicks into sessions.

    Args:
        owner: user (or session id) of each click.
        item: item of each click.
        time: time of each click (int64; the unit of ``gap``).
        gap: a new session starts after an inactivity gap strictly above this.
        max_length: longer sessions are split into consecutive pieces of at most
            this many clicks (``None``: no limit).
        order: tie-breaker within equal times (e.g. the CSV's ``timeframe``);
            defaults to the input order.

    Raises:
        ValueError: ``gap <= 0`` or ``max_length < 2``.
    """
    if not gap > 0:
        raise ValueError(f"session.gap must be > 0 (got {gap!r})")
    if max_length is not None and int(max_length) < 2:
        raise ValueError(f"session.max_length must be >= 2 (got {max_length!r})")
    owner = np.asarray(owner, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    time = np.asarray(time, dtype=np.int64)
    tie = np.arange(len(owner)) if order is None else np.asarray(order)
    idx = np.lexsort((tie, time, owner))
    owner, item, time = owner[idx], item[idx], time[idx]
    new = np.ones(len(owner), dtype=bool)
    if len(owner):
        new[1:] = (owner[1:] != owner[:-1]) | (np.diff(time) > gap)
    if max_length is not None and len(owner):
        start = np.flatnonzero(new)
        session = np.cumsum(new) - 1
        position = np.arange(len(owner)) - start[session]
        new |= (position % int(max_length)) == 0
    starts = np.flatnonzero(new)
    offsets = np.r_[starts, len(owner)].astype(np.int64)
    ends = offsets[1:] - 1
    return Sessions(
        offsets=offsets,
        items=item,
        owner=owner[starts] if len(starts) else owner[:0],
        end_time=time[ends] if len(starts) else time[:0],
    )


def drop_short(sessions: Sessions, min_length: int = 2) -> Sessions:
    """Sessions with at least ``min_length`` clicks."""
    return sessions.select(sessions.lengths >= min_length)


def drop_rare_items(
    sessions: Sessions, min_item_count: int, counted: Sessions | None = None
) -> Sessions:
    """Drop clicks on items seen fewer than ``min_item_count`` times in
    ``counted`` (default: ``sessions`` itself), then sessions shorter than 2."""
    if min_item_count < 1:
        raise ValueError(
            f"session.min_item_count must be >= 1 (got {min_item_count!r})"
        )
    source = sessions if counted is None else counted
    values, counts = np.unique(source.items, return_counts=True)
    frequent = values[counts >= min_item_count]
    keep = np.isin(sessions.items, frequent)
    return drop_short(sessions.filter_items(keep))


@dataclass(frozen=True)
class ItemVocab:
    """Raw item id <-> model id ``1..n`` (0 is padding), from the train sessions
    in order of first appearance (as the authors' preprocessing numbers them)."""

    raw: np.ndarray  # (n,) raw id of model id i + 1

    @classmethod
    def from_sessions(cls, sessions: Sessions) -> ItemVocab:
        _, first = np.unique(sessions.items, return_index=True)
        return cls(raw=sessions.items[np.sort(first)])

    def __len__(self) -> int:
        return len(self.raw)

    def encode(self, raw: np.ndarray) -> np.ndarray:
        """Model ids of ``raw`` (0 where the item is not in the vocabulary)."""
        order = np.argsort(self.raw, kind="stable")
        sorted_raw = self.raw[order]
        raw = np.asarray(raw, dtype=np.int64)
        pos = np.minimum(np.searchsorted(sorted_raw, raw), max(len(order) - 1, 0))
        found = (sorted_raw[pos] == raw) if len(order) else np.zeros(len(raw), bool)
        return np.where(found, order[pos] + 1, 0).astype(np.int64)

    def encode_sessions(self, sessions: Sessions) -> Sessions:
        """Sessions with model ids; unknown items dropped, then sessions < 2."""
        ids = self.encode(sessions.items)
        coded = Sessions(sessions.offsets, ids, sessions.owner, sessions.end_time)
        return drop_short(coded.filter_items(ids > 0))


@dataclass(frozen=True)
class Prefixes:
    """Every (prefix -> next item) example of a set of sessions.

    Example ``j`` is ``items[start[j]:start[j] + length[j]]`` of the session
    items, with target ``target[j]``; prefixes longer than ``max_length`` keep
    their last ``max_length`` clicks.
    """

    items: np.ndarray
    start: np.ndarray
    length: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return len(self.target)

    def padded(self, index: np.ndarray) -> np.ndarray:
        """Examples ``index`` as a left-aligned ``(len(index), L)`` matrix padded
        with 0, ``L`` the longest of them."""
        length = self.length[index]
        width = int(length.max()) if len(index) else 1
        col = np.arange(width)
        valid = col[None, :] < length[:, None]
        pos = self.start[index][:, None] + col[None, :]
        out = np.zeros((len(index), width), dtype=np.int64)
        out[valid] = self.items[pos[valid]]
        return out


def prefixes(sessions: Sessions, max_length: int | None = None) -> Prefixes:
    """Every prefix of every session with its next item (the paper's protocol:
    a session of ``n`` clicks gives ``n - 1`` examples)."""
    lengths = sessions.lengths
    n_ex = np.maximum(lengths - 1, 0)
    session = np.repeat(np.arange(len(sessions)), n_ex)
    first = np.r_[0, np.cumsum(n_ex)[:-1]]
    k = np.arange(len(session)) - first[session] + 1  # prefix length 1..n-1
    start = sessions.offsets[:-1][session]
    target = sessions.items[start + k]
    length = k
    if max_length is not None:
        length = np.minimum(k, int(max_length))
        start = start + k - length
    return Prefixes(
        items=sessions.items,
        start=start.astype(np.int64),
        length=length.astype(np.int64),
        target=target.astype(np.int64),
    )
