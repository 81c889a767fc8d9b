"""Pipeline ``som``: post-hoc self-organising-map clustering of each method's user
embeddings (namespaced)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
