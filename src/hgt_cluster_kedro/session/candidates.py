"""Per-user candidate lists of a session model (Kedro-free).

The query of a user is the end of their latest train session(s): the last
``history`` sessions, concatenated, cut to the last ``max_length`` clicks. The
model scores every item after it; the user's train items are excluded (as in the
u2u2i evaluation) and the top ``k`` kept.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from .sessions import Sessions


def latest_sessions(train: Sessions, history: int) -> Sessions:
    """One pseudo-session per owner: their last ``history`` train sessions
    concatenated (sessions must be ordered by owner, then time)."""
    if history < 1:
        raise ValueError(f"session.candidates.history must be >= 1 (got {history})")
    owner = train.owner
    new = np.r_[True, owner[1:] != owner[:-1]] if len(owner) else np.zeros(0, bool)
    group_end = np.r_[np.flatnonzero(new)[1:], len(owner)]
    group = np.cumsum(new) - 1
    from_end = group_end[group] - 1 - np.arange(len(owner))
    keep = train.select(from_end < history)
    owner_k = keep.owner
    first = np.r_[True, owner_k[1:] != owner_k[:-1]] if len(owner_k) else new[:0]
    starts = np.flatnonzero(first)
    offsets = np.r_[keep.offsets[starts], keep.offsets[-1]].astype(np.int64)
    ends = np.r_[starts[1:], len(owner_k)] - 1
    return Sessions(offsets, keep.items, owner_k[starts], keep.end_time[ends])


def top_k_candidates(
    score: Callable[[np.ndarray], np.ndarray],
    queries: Sessions,
    seen: sp.csr_matrix,
    *,
    k: int,
    max_length: int,
    batch_size: int = 512,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``k`` unseen items of each query.

    Args:
        score: padded sequences -> ``(B, n_items)`` scores (item ``i + 1`` in
            column ``i``).
        queries: one pseudo-session per owner (model item ids).
        seen: ``(len(queries), n_items)`` boolean, the items to exclude per query.
        k: list length.
        max_length: clicks of a query kept (its end).

    Returns:
        ``(query_row, item, score)`` flat, ``item`` model ids, best first per row.
    """
    seqs = queries.last(max_length)
    rows, items, scores = [], [], []
    for lo in range(0, len(seqs), batch_size):
        s = score(seqs[lo : lo + batch_size]).astype(np.float64)
        block = seen[lo : lo + batch_size].tocoo()
        s[block.row, block.col] = -np.inf
        kk = min(k, s.shape[1])
        top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        top_s = np.take_along_axis(s, top, 1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        top, top_s = (
            np.take_along_axis(top, order, 1),
            np.take_along_axis(top_s, order, 1),
        )
        valid = np.isfinite(top_s)
        r = np.broadcast_to(np.arange(lo, lo + len(s))[:, None], top.shape)
        rows.append(r[valid])
        items.append(top[valid] + 1)
        scores.append(top_s[valid])
    cat = np.concatenate
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return cat(rows), cat(items), cat(scores)
