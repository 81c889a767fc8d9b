"""Planted-community fake data for the user–note graph (numpy; dask optional).

No Kedro imports: the same generator runs in notebooks, scripts and dask workers.
"""

from .cluster import start_client, stop_client
from .config import KNOWN_RELATIONS, DaskConfig, GeneratorConfig, RelationConfig
from .driver import GeneratedGraph, generate, generate_dask, generate_local

__all__ = [
    "KNOWN_RELATIONS",
    "DaskConfig",
    "GeneratedGraph",
    "GeneratorConfig",
    "RelationConfig",
    "generate",
    "generate_dask",
    "generate_local",
    "start_client",
    "stop_client",
]
