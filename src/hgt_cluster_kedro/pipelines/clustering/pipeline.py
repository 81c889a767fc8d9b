"""Wiring of ``clustering``: one namespaced copy per method of ``methods.py``."""

from kedro.pipeline import Node, Pipeline

from ..methods import KMEANS_METHODS
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
    return sum(
        (
            Pipeline(
                _template(),
                namespace=method,
                inputs={"user_embeddings": f"{prefix}_user_embeddings"},
                parameters={"params:clustering": "params:clustering"},
            )
            for method, prefix in KMEANS_METHODS.items()
        ),
        Pipeline([]),
    )
