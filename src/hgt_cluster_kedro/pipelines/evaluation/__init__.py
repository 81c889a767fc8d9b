"""Pipeline ``evaluation``: u2u2i recall, cluster boost, cluster quality, comparison."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
