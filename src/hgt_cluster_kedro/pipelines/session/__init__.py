"""Pipeline ``session``: SR-GNN, a session-based recall channel."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
