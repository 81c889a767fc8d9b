"""Wiring of ``evaluation``: one namespaced ``evaluate`` per method, baselines,
and the comparison over all of them."""

from kedro.pipeline import Node, Pipeline

from ..methods import METHODS
from .nodes import (
    compare,
    evaluate_baselines,
    evaluate_c2i_channel,
    evaluate_method,
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


def _c2i_channels() -> Pipeline:
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
            for method in METHODS
        ]
    )


def _simclusters_u2i() -> Pipeline:
    """SimClusters u2i retrieval (InterestedIn · item embeddings)."""
    if "simclusters" not in METHODS:
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


#: extra comparison rows (recall channels): record name -> metrics dataset
CHANNEL_ROWS = {
    **{f"{m}_c2i": f"{m}.c2i_metrics" for m in METHODS},
    **(
        {"simclusters_u2i": "simclusters.u2i_metrics"}
        if "simclusters" in METHODS
        else {}
    ),
}


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
    return (
        per_method
        + _c2i_channels()
        + _simclusters_u2i()
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
                        **CHANNEL_ROWS,
                    },
                    outputs=["comparison", "comparison_table", "comparison_plot"],
                    name="compare_methods",
                ),
            ]
        )
    )
