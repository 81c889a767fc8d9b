"""Wiring of ``session``: sessions from the graph's target relations, SR-GNN,
the next-item report and per-user candidates (scored by ``evaluation``)."""

from kedro.pipeline import Node, Pipeline

from .nodes import candidates, clicks_from_graph, report, train


def model_pipeline() -> Pipeline:
    """Training and the next-item report, from ``session_clicks``."""
    return Pipeline(
        [
            Node(
                func=train,
                inputs=["session_clicks", "params:session"],
                outputs=["srgnn_model", "srgnn_training"],
                name="train_srgnn",
            ),
            Node(
                func=report,
                inputs=["session_clicks", "srgnn_model", "params:session"],
                outputs="session_report",
                name="session_report",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return (
        Pipeline(
            [
                Node(
                    func=clicks_from_graph,
                    inputs=["raw_edges", "graph", "interactions", "params:session"],
                    outputs="session_clicks",
                    name="cut_sessions",
                )
            ]
        )
        + model_pipeline()
        + Pipeline(
            [
                Node(
                    func=candidates,
                    inputs=[
                        "session_clicks",
                        "srgnn_model",
                        "interactions",
                        "graph",
                        "params:session",
                    ],
                    outputs="srgnn_candidates",
                    name="srgnn_candidates",
                )
            ]
        )
    )
