"""Graph layer (no Kedro): schema, validation, split, CSR store, sampler, partitions."""

from .artifact import GraphArtifact, build_graph
from .csr import EdgeType, HeteroCSR
from .schema import (
    GraphConfig,
    GraphSchema,
    NodeTypeConfig,
    PartitionConfig,
    RelationConfig,
    SplitConfig,
    ValidationPolicy,
)
from .split import split_interactions, train_edges
from .tables import GraphValidationError, IndexedTables, index_tables

__all__ = [
    "EdgeType",
    "GraphArtifact",
    "GraphConfig",
    "GraphSchema",
    "GraphValidationError",
    "HeteroCSR",
    "IndexedTables",
    "NodeTypeConfig",
    "PartitionConfig",
    "RelationConfig",
    "SplitConfig",
    "ValidationPolicy",
    "build_graph",
    "index_tables",
    "split_interactions",
    "train_edges",
]
