"""Clustering backends (no Kedro): fast PyTorch k-means and a backend dispatcher,
and self-organising maps (batch SOM in PyTorch, MiniSom) for post-hoc clustering."""

from .kmeans import KMeansResult, fit_clusters, inertia_of, kmeans
from .som import SOMResult, fit_som, merge_units, som_errors, u_matrix
from .som_plots import plot_hit_map, plot_u_matrix

__all__ = [
    "KMeansResult",
    "SOMResult",
    "fit_clusters",
    "fit_som",
    "inertia_of",
    "kmeans",
    "merge_units",
    "plot_hit_map",
    "plot_u_matrix",
    "som_errors",
    "u_matrix",
]
