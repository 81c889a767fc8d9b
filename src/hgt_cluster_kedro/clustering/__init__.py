"""Clustering backends (no Kedro): fast PyTorch k-means and a backend dispatcher."""

from .kmeans import KMeansResult, fit_clusters, inertia_of, kmeans

__all__ = ["KMeansResult", "fit_clusters", "inertia_of", "kmeans"]
