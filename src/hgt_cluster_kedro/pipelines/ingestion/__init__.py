"""Pipeline ``ingestion``: real data from configured files into the canonical tables."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
