"""Wiring of ``twhin``."""

from kedro.pipeline import Node, Pipeline

from .nodes import train


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=train,
                inputs=["graph", "params:twhin"],
                outputs=[
                    "twhin_model",
                    "twhin_user_embeddings",
                    "twhin_item_embeddings",
                    "twhin_training",
                ],
                name="train_twhin",
            )
        ]
    )
