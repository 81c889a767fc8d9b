"""Wiring of ``ingestion``: the same outputs as ``data_generation``, so ``graph``
and ``evaluation`` run unchanged on real data."""

from kedro.pipeline import Node, Pipeline

from .nodes import ingest_tables


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=ingest_tables,
                inputs=[
                    "params:ingestion",
                    "params:graph",
                    "params:evaluation.ground_truth",
                ],
                outputs=["raw_nodes", "raw_edges", "user_communities"],
                name="ingest_tables",
            )
        ]
    )
