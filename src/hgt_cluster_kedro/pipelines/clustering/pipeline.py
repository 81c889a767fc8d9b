"""Wiring of ``clustering``: one namespaced copy per method of ``methods.py``."""

from kedro.pipeline import Node, Pipeline

from ..methods import per_method
from .nodes import cluster_users


def _template() -> Pipeline:
    return Pipeline(
        [
            Node(
                func=cluster_users,
                inputs=["user_embeddings", "params:clustering"],
                outputs=["user_clusters", "cluster_centroids"],
                name="cluster_users",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_method(_template(), "kmeans", "params:clustering")
