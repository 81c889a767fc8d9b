"""Pipeline ``session_csv``: the ``session`` channel on a session log file."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
