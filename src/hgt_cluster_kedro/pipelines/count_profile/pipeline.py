"""Wiring of ``count_profile``."""

from kedro.pipeline import Node, Pipeline

from .nodes import build_count_profile


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=build_count_profile,
                inputs=["graph", "params:count_profile"],
                outputs=["count_profile_user_embeddings", "count_profile_training"],
                name="build_count_profile",
            )
        ]
    )
