"""Ingestion of real data (no Kedro): node tables, edge lists, wide flag tables,
matrices and labels described in configuration, turned into the canonical graph
tables."""

from .build import IngestedGraph, check_config, ingest
from .config import (
    CategoricalColumn,
    EdgeSource,
    FeatureSource,
    FileSource,
    GroundTruthSource,
    IngestionConfig,
    NodeSource,
    WideEdgeSource,
)
from .readers import (
    IngestionError,
    locate_decode_error,
    read_labels,
    read_matrix,
    read_table,
)

__all__ = [
    "CategoricalColumn",
    "EdgeSource",
    "FeatureSource",
    "FileSource",
    "GroundTruthSource",
    "IngestedGraph",
    "IngestionConfig",
    "IngestionError",
    "NodeSource",
    "WideEdgeSource",
    "check_config",
    "ingest",
    "locate_decode_error",
    "read_labels",
    "read_matrix",
    "read_table",
]
