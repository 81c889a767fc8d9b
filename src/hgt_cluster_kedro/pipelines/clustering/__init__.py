"""Pipeline ``clustering``: KMeans on each method's user embeddings (namespaced)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
