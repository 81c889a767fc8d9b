"""Wiring of ``simclusters``: similarity → KnownFor → InterestedIn → embeddings."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_embeddings,
    build_interested_in,
    build_knownfor,
    build_similarity,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=build_similarity,
                inputs=["graph", "params:simclusters"],
                outputs=[
                    "simclusters_producer_similarity",
                    "simclusters_similarity_summary",
                ],
                name="simclusters_similarity",
            ),
            Node(
                func=build_knownfor,
                inputs=[
                    "simclusters_producer_similarity",
                    "graph",
                    "params:simclusters",
                ],
                outputs=["simclusters_knownfor", "simclusters_knownfor_report"],
                name="simclusters_knownfor",
            ),
            Node(
                func=build_interested_in,
                inputs=["simclusters_knownfor", "graph", "params:simclusters"],
                outputs=[
                    "simclusters_interested_in",
                    "simclusters_user_embeddings",
                    "simclusters.user_clusters",
                    "simclusters_interested_in_summary",
                ],
                name="simclusters_interested_in",
            ),
            Node(
                func=build_embeddings,
                inputs={
                    "interested_table": "simclusters_interested_in",
                    "graph": "graph",
                    "params": "params:simclusters",
                    "similarity_summary": "simclusters_similarity_summary",
                    "knownfor_report": "simclusters_knownfor_report",
                    "interested_summary": "simclusters_interested_in_summary",
                },
                outputs=[
                    "simclusters_producer_embeddings",
                    "simclusters_item_embeddings",
                    "simclusters_training",
                ],
                name="simclusters_embeddings",
            ),
        ]
    )
