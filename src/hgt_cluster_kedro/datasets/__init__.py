"""Custom Kedro datasets: versioned, atomic, no pickle."""

from .graph_artifact_dataset import GraphArtifactDataset
from .json_dataset import JSONDataset
from .parquet_parts_dataset import ParquetPartsDataset
from .parquet_table_set_dataset import ParquetTableSetDataset
from .safetensors_dataset import SafetensorsDataset

__all__ = [
    "GraphArtifactDataset",
    "JSONDataset",
    "ParquetPartsDataset",
    "ParquetTableSetDataset",
    "SafetensorsDataset",
]
