"""Pipeline ``twhin``: the TwHIN baseline (1-hop triplet embeddings)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
