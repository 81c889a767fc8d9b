"""Wiring of ``som``: one namespaced copy per SOM method of ``methods.py``."""

from kedro.pipeline import Node, Pipeline

from ..methods import methods_using
from .nodes import plot_som, train_som


def _template() -> Pipeline:
    return Pipeline(
        [
            Node(
                func=train_som,
                inputs=["user_embeddings", "params:som"],
                outputs=["user_clusters", "som_codebook", "som_report"],
                name="train_som",
            ),
            Node(
                func=plot_som,
                inputs=["som_codebook", "som_report"],
                outputs=["som_u_matrix", "som_hit_map"],
                name="plot_som",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return sum(
        (
            Pipeline(
                _template(),
                namespace=method,
                inputs={"user_embeddings": f"{prefix}_user_embeddings"},
                parameters={"params:som": "params:som"},
            )
            for method, prefix in methods_using("som").items()
        ),
        Pipeline([]),
    )
