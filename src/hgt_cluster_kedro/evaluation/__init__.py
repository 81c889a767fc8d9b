"""Evaluation harness (no Kedro): u2u2i retrieval, ranking metrics, cluster quality."""

from .clusters import cluster_quality, cluster_sizes, plot_cluster_sizes, size_stats
from .metrics import (
    hit_matrix,
    interactions_csr,
    ranking_metrics,
    relevant_csr,
)
from .retrieval import (
    Recommendations,
    check_embeddings,
    evaluate_u2u2i,
    neighbor_rows,
    popularity_recommend,
    random_recommend,
    recommend_from_neighbor_prefixes,
    recommend_from_neighbors,
    recommend_from_neighbors_grid,
    top_m_similar,
    u2u2i_recommend,
)

__all__ = [
    "Recommendations",
    "check_embeddings",
    "cluster_quality",
    "cluster_sizes",
    "evaluate_u2u2i",
    "hit_matrix",
    "interactions_csr",
    "neighbor_rows",
    "plot_cluster_sizes",
    "popularity_recommend",
    "random_recommend",
    "ranking_metrics",
    "recommend_from_neighbor_prefixes",
    "recommend_from_neighbors",
    "recommend_from_neighbors_grid",
    "relevant_csr",
    "size_stats",
    "top_m_similar",
    "u2u2i_recommend",
]
