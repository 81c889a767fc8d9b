"""Wiring of ``data_generation``."""

from kedro.pipeline import Node, Pipeline

from .nodes import generate_fake_data


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=generate_fake_data,
                inputs="params:data_generation",
                outputs=["raw_nodes", "raw_edges", "user_communities", "note_topics"],
                name="generate_fake_data",
            )
        ]
    )
