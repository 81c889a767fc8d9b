"""Pipeline ``count_profile``: the metapath count-profile baseline's user embeddings."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
