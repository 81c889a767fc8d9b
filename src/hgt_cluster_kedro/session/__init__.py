"""Session-based recommendation data and baselines (Kedro-free): sessions cut from
time-stamped interactions, the SR-GNN prefix protocol, popularity / S-POP /
item-kNN / SKNN, and next-item HitRate / MRR."""

from .baselines import ItemKNN, Popularity, SessionKNN, SessionPopularity
from .evaluate import next_item_metrics, repeat_mask, subset, target_ranks
from .sessions import (
    ItemVocab,
    Prefixes,
    Sessions,
    cut_sessions,
    drop_rare_items,
    drop_short,
    prefixes,
)

__all__ = [
    "ItemKNN",
    "ItemVocab",
    "Popularity",
    "Prefixes",
    "SessionKNN",
    "SessionPopularity",
    "Sessions",
    "cut_sessions",
    "drop_rare_items",
    "drop_short",
    "next_item_metrics",
    "prefixes",
    "repeat_mask",
    "subset",
    "target_ranks",
]
