"""Wiring of ``hgt``: the self-supervised HGT, then its joint fine-tuning with a
SOM (the original's HGT + SOM)."""

from kedro.pipeline import Node, Pipeline

from .nodes import train, train_joint_som


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=train,
                inputs=[
                    "graph",
                    "interactions",
                    "graph_partitions",
                    "twhin_model",
                    "params:hgt",
                ],
                outputs=[
                    "hgt_model",
                    "hgt_user_embeddings",
                    "hgt_item_embeddings",
                    "hgt_training",
                ],
                name="train_hgt",
            ),
            Node(
                func=train_joint_som,
                inputs={
                    "graph": "graph",
                    "interactions": "interactions",
                    "partitions": "graph_partitions",
                    "hgt_model": "hgt_model",
                    "params": "params:hgt",
                    "joint": "params:hgt_som_joint",
                },
                outputs=[
                    "hgt_som_joint_model",
                    "hgt_som_joint_user_embeddings",
                    "hgt_som_joint_item_embeddings",
                    "hgt_som_joint_training",
                    "hgt_som_joint.user_clusters",
                    "hgt_som_joint.cluster_centroids",
                ],
                name="train_hgt_som_joint",
            ),
        ]
    )
