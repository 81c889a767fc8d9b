"""Session-based recommendation data and baselines (Kedro-free): sessions cut from
time-stamped interactions, the SR-GNN prefix protocol, popularity / item-kNN /
SKNN, and next-item HitRate / MRR."""

from .baselines import ItemKNN, Popularity, SessionKNN
from .evaluate import next_item_metrics, target_ranks
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
    "Sessions",
    "cut_sessions",
    "drop_rare_items",
    "drop_short",
    "next_item_metrics",
    "prefixes",
    "target_ranks",
]
