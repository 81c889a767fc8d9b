"""Wiring of ``evaluation``: one namespaced ``evaluate`` per method, baselines
(popularity and random; EASE and item-kNN), the community oracle, and the
comparison over all of them."""

from kedro.pipeline import Node, Pipeline

from ..methods import selected_methods
from .nodes import (
    compare,
    evaluate_baselines,
    evaluate_classical_baselines,
    evaluate_method,
    evaluate_oracle,
)

SHARED = ["interactions", "graph", "user_communities"]


def _template() -> Pipeline:
    return Pipeline(
        [
            Node(
                func=evaluate_method,
                inputs={
                    "user_embeddings": "user_embeddings",
                    "user_clusters": "user_clusters",
                    "interactions": "interactions",
                    "graph": "graph",
                    "ground_truth": "user_communities",
                    "training": "training",
                    "params": "params:evaluation",
                },
                outputs="metrics",
                name="evaluate",
            )
        ]
    )


def _references() -> Pipeline:
    """EASE, item-kNN and the community oracle (scored like every method)."""
    return Pipeline(
        [
            Node(
                func=evaluate_classical_baselines,
                inputs=["interactions", "graph", "params:evaluation"],
                outputs="classical_baseline_metrics",
                name="evaluate_classical_baselines",
            ),
            Node(
                func=evaluate_oracle,
                inputs=[
                    "interactions",
                    "graph",
                    "user_communities",
                    "params:evaluation",
                ],
                outputs="oracle_metrics",
                name="evaluate_oracle",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    methods = selected_methods()
    per_method = sum(
        (
            Pipeline(
                _template(),
                namespace=method,
                inputs={
                    "user_embeddings": f"{m.embeddings}_user_embeddings",
                    "training": f"{m.embeddings}_training",
                    **{name: name for name in SHARED},
                },
                parameters={"params:evaluation": "params:evaluation"},
            )
            for method, m in methods.items()
        ),
        Pipeline([]),
    )
    return (
        per_method
        + _references()
        + Pipeline(
            [
                Node(
                    func=evaluate_baselines,
                    inputs=["interactions", "graph", "params:evaluation"],
                    outputs="baseline_metrics",
                    name="evaluate_baselines",
                ),
                Node(
                    func=compare,
                    inputs={
                        "baselines": "baseline_metrics",
                        "classical_baselines": "classical_baseline_metrics",
                        "oracle": "oracle_metrics",
                        **{m: f"{m}.metrics" for m in methods},
                    },
                    outputs=["comparison", "comparison_table", "comparison_plot"],
                    name="compare_methods",
                ),
            ]
        )
    )
