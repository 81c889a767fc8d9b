"""Wiring of ``evaluation``: one namespaced ``evaluate`` per method, baselines,
and the comparison over all of them."""

from kedro.pipeline import Node, Pipeline

from ..methods import CANDIDATE_METHODS, METHODS
from .nodes import compare, evaluate_baselines, evaluate_candidates, evaluate_method

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


def create_pipeline(**kwargs) -> Pipeline:
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
            for method, m in METHODS.items()
        ),
        Pipeline([]),
    )
    per_candidates = sum(
        (
            Pipeline(
                [
                    Node(
                        func=evaluate_candidates,
                        inputs={
                            "candidates": "candidates",
                            "interactions": "interactions",
                            "graph": "graph",
                            "training": "training",
                            "params": "params:evaluation",
                        },
                        outputs="metrics",
                        name="evaluate",
                    )
                ],
                namespace=method,
                inputs={
                    "candidates": f"{prefix}_candidates",
                    "training": f"{prefix}_training",
                    "interactions": "interactions",
                    "graph": "graph",
                },
                parameters={"params:evaluation": "params:evaluation"},
            )
            for method, prefix in CANDIDATE_METHODS.items()
        ),
        Pipeline([]),
    )
    return (
        per_method
        + per_candidates
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
                        **{m: f"{m}.metrics" for m in METHODS},
                        **{m: f"{m}.metrics" for m in CANDIDATE_METHODS},
                    },
                    outputs=["comparison", "comparison_table", "comparison_plot"],
                    name="compare_methods",
                ),
            ]
        )
    )
