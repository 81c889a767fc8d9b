"""Wiring of ``evaluation``: one namespaced ``evaluate`` per method, baselines
(popularity and random; EASE and item-kNN), the community oracle, and the
comparison over all of them."""

from kedro.pipeline import Node, Pipeline

from ..methods import selected_candidates, selected_methods
from .nodes import (
    compare,
    evaluate_baselines,
    evaluate_c2i_channel,
    evaluate_candidates,
    evaluate_classical_baselines,
    evaluate_method,
    evaluate_oracle,
    evaluate_simclusters_u2i,
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


def _c2i_channels(methods) -> Pipeline:
    """One ``c2i`` node per clustered method: ``<method>.c2i_metrics``."""
    return Pipeline(
        [
            Node(
                func=evaluate_c2i_channel,
                inputs=[
                    f"{method}.user_clusters",
                    "interactions",
                    "graph",
                    "params:evaluation",
                    "params:c2i",
                ],
                outputs=f"{method}.c2i_metrics",
                name="evaluate_c2i",
                namespace=method,
            )
            for method in methods
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


def _simclusters_u2i(methods) -> Pipeline:
    """SimClusters u2i retrieval (InterestedIn · item embeddings)."""
    if "simclusters" not in methods:
        return Pipeline([])
    return Pipeline(
        [
            Node(
                func=evaluate_simclusters_u2i,
                inputs={
                    "interested_in": "simclusters_interested_in",
                    "item_embeddings": "simclusters_item_embeddings",
                    "interactions": "interactions",
                    "graph": "graph",
                    "params": "params:evaluation",
                    "u2i_params": "params:simclusters_u2i",
                },
                outputs="simclusters.u2i_metrics",
                name="evaluate_u2i",
                namespace="simclusters",
            )
        ]
    )


def channel_rows(methods) -> dict[str, str]:
    """Extra comparison rows (recall channels): record name -> metrics dataset."""
    return {
        **{f"{m}_c2i": f"{m}.c2i_metrics" for m in methods},
        **(
            {"simclusters_u2i": "simclusters.u2i_metrics"}
            if "simclusters" in methods
            else {}
        ),
    }


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
    candidates = selected_candidates()
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
            for method, prefix in candidates.items()
        ),
        Pipeline([]),
    )
    return (
        per_method
        + per_candidates
        + _c2i_channels(methods)
        + _simclusters_u2i(methods)
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
                        **channel_rows(methods),
                        **{m: f"{m}.metrics" for m in candidates},
                    },
                    outputs=["comparison", "comparison_table", "comparison_plot"],
                    name="compare_methods",
                ),
            ]
        )
    )
