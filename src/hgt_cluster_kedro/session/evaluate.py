"""Next-item metrics over every session prefix (the SR-GNN protocol).

HitRate@K (the paper's P@20) is the share of prefixes whose next item is in the
top ``K``; MRR@K the mean reciprocal rank of the next item (0 beyond ``K``). The
rank of the target is ``1 +`` the number of items scored higher, ties broken by
item id (as a stable top-K would).

:func:`repeat_mask` marks the prefixes whose next item is already in the prefix
(a re-view): the report gives the metrics on the other ("new item") prefixes too,
because a log with many re-views rewards any method that recommends the prefix's
own items (S-POP, SKNN) without telling anything about discovering new items.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .sessions import Prefixes


def target_ranks(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1-based rank of each ``target`` (model id ``>= 1``) in its score row."""
    rows = np.arange(len(target))
    t = scores[rows, target - 1][:, None]
    cols = np.arange(scores.shape[1])[None, :]
    better = (scores > t) | ((scores == t) & (cols < (target - 1)[:, None]))
    return better.sum(1) + 1


def repeat_mask(examples: Prefixes) -> np.ndarray:
    """``(len(examples),)`` bool: the target is among the prefix's clicks."""
    if len(examples) == 0:
        return np.zeros(0, dtype=bool)
    seqs = examples.padded(np.arange(len(examples)))
    return (seqs == examples.target[:, None]).any(1)


def subset(examples: Prefixes, keep: np.ndarray) -> Prefixes:
    """The examples where the boolean ``keep`` is true."""
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != examples.target.shape:
        raise ValueError(
            f"keep has shape {keep.shape}, expected {examples.target.shape}"
        )
    return Prefixes(
        items=examples.items,
        start=examples.start[keep],
        length=examples.length[keep],
        target=examples.target[keep],
    )


def next_item_ranks(
    score: Callable[[np.ndarray], np.ndarray],
    examples: Prefixes,
    *,
    batch_size: int = 512,
) -> np.ndarray:
    """1-based rank of every example's target under ``score`` (padded prefixes
    -> ``(B, n_items)`` scores), scored ``batch_size`` prefixes at a time."""
    if len(examples) == 0:
        raise ValueError("no session prefix to evaluate (empty split)")
    return np.concatenate(
        [
            target_ranks(score(examples.padded(idx)), examples.target[idx])
            for idx in np.array_split(
                np.arange(len(examples)), max(1, -(-len(examples) // batch_size))
            )
        ]
    )


def metrics_from_ranks(ranks: np.ndarray, k: int = 20) -> dict[str, float]:
    """``hitrate@k``, ``mrr@k`` and ``n_prefixes`` of target ranks."""
    if len(ranks) == 0:
        raise ValueError("no session prefix to evaluate (empty split)")
    hit = ranks <= k
    return {
        f"hitrate@{k}": float(hit.mean()),
        f"mrr@{k}": float(np.where(hit, 1.0 / ranks, 0.0).mean()),
        "n_prefixes": int(len(ranks)),
    }


def next_item_metrics(
    score: Callable[[np.ndarray], np.ndarray],
    examples: Prefixes,
    *,
    k: int = 20,
    batch_size: int = 512,
) -> dict[str, float]:
    """``hitrate@k``, ``mrr@k`` and ``n_prefixes`` of ``score`` (padded prefixes
    -> ``(B, n_items)`` scores) over every example."""
    return metrics_from_ranks(
        next_item_ranks(score, examples, batch_size=batch_size), k
    )
