"""Wiring of ``hgt``."""

from kedro.pipeline import Node, Pipeline

from .nodes import train


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=train,
                inputs=["graph", "interactions", "graph_partitions", "params:hgt"],
                outputs=[
                    "hgt_model",
                    "hgt_user_embeddings",
                    "hgt_item_embeddings",
                    "hgt_training",
                ],
                name="train_hgt",
            )
        ]
    )
