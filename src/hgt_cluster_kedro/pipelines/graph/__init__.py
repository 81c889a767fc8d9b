"""Pipeline ``graph``: validate, split, build the training graph, partition it."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
