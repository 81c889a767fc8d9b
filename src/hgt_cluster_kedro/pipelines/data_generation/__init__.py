"""Pipeline ``data_generation``: planted-community fake user–note data."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
