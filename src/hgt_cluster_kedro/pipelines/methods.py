"""The methods compared by the project: which embeddings feed which clusterer.

``clustering`` and ``evaluation`` build one namespaced copy of their nodes per
method listed here, so adding a method is one line (and its embeddings).
"""

from __future__ import annotations

#: method name (the namespace, and the record in ``comparison``) -> the prefix of
#: its ``<prefix>_user_embeddings`` / ``<prefix>_item_embeddings`` /
#: ``<prefix>_training`` datasets.
KMEANS_METHODS: dict[str, str] = {
    "twhin_kmeans": "twhin",
    "hgt_kmeans": "hgt",
}
