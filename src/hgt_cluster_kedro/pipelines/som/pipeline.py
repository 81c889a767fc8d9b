"""Wiring of ``som``: one namespaced copy per SOM method of ``methods.py``."""

from kedro.pipeline import Node, Pipeline

from ..methods import per_method
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
    return per_method(_template(), "som", "params:som")
