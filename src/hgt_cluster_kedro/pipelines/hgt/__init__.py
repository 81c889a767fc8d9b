"""Pipeline ``hgt``: self-supervised HGT trained with torchrun workers."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
