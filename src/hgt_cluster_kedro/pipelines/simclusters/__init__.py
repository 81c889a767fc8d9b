"""Pipeline ``simclusters``: SimClusters communities and embeddings (KDD 2020)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
