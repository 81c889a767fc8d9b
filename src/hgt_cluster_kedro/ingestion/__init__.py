"""Ingestion of real data (no Kedro): node tables, edge lists, matrices and labels
described in configuration, turned into the canonical graph tables."""

from .build import IngestedGraph, check_config, ingest
from .config import (
    EdgeSource,
    FeatureSource,
    FileSource,
    GroundTruthSource,
    IngestionConfig,
    NodeSource,
)
from .readers import IngestionError, read_labels, read_matrix, read_table

__all__ = [
    "EdgeSource",
    "FeatureSource",
    "FileSource",
    "GroundTruthSource",
    "IngestedGraph",
    "IngestionConfig",
    "IngestionError",
    "NodeSource",
    "check_config",
    "ingest",
    "read_labels",
    "read_matrix",
    "read_table",
]
