"""Wiring of ``graph``."""

from kedro.pipeline import Node, Pipeline

from .nodes import build, partition, split, validate_tables


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=validate_tables,
                inputs=["raw_nodes", "raw_edges", "params:graph"],
                outputs="indexed_graph_tables",
                name="validate_graph_tables",
            ),
            Node(
                func=split,
                inputs=["indexed_graph_tables", "params:graph"],
                outputs="interactions",
                name="split_interactions",
            ),
            Node(
                func=build,
                inputs=["indexed_graph_tables", "interactions"],
                outputs="graph",
                name="build_graph",
            ),
            Node(
                func=partition,
                inputs=["graph", "params:graph"],
                outputs=["graph_partitions", "partition_report", "partition_plot"],
                name="partition_graph",
            ),
        ]
    )
