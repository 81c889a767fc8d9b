"""The graph artifact every model reads: CSR per relation, ids, features.

A directory (written atomically by ``GraphArtifactDataset``)::

    graph.safetensors   CSR tensors of the train message-passing graph (with
                        reverse relations) and features/<type> matrices
    meta.json           schema, node counts, feature names and statistics
    ids/<type>.parquet  original id of each contiguous id (row i = node i)

No pickle anywhere: tensors go through safetensors, the rest is JSON/parquet.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .csr import HeteroCSR
from .schema import GraphSchema
from .split import train_edges
from .tables import IndexedTables

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1


@dataclass
class GraphArtifact:
    """A heterogeneous graph ready for training.

    Attributes:
        schema: the :class:`GraphSchema` it was built with.
        csr: message-passing graph (train edges only, plus ``rev_`` relations).
        ids: original ids per node type (position = contiguous id).
        features: standardised ``float32`` features per node type (absent for
            types without feature columns: models give those id embeddings).
        feature_stats: means and standard deviations used for standardising.
    """

    schema: GraphSchema
    csr: HeteroCSR
    ids: dict[str, pd.Index]
    features: dict[str, Tensor] = field(default_factory=dict)
    feature_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def num_nodes(self) -> dict[str, int]:
        return dict(self.csr.num_nodes)

    def to_hetero_data(self) -> Any:
        """Full-graph PyG ``HeteroData`` (``x`` where features exist, ``n_id``)."""
        data = self.csr.to_hetero_data(self.features or None)
        for ntype, n in self.num_nodes.items():
            data[ntype].n_id = torch.arange(n)
            data[ntype].num_nodes = n
        return data

    def to_index(self, node_type: str, original_ids: Any) -> np.ndarray:
        """Contiguous ids of ``original_ids``; ``KeyError`` names unknown ones."""
        if node_type not in self.ids:
            raise KeyError(
                f"unknown node type {node_type!r}; known: {sorted(self.ids)}"
            )
        index = self.ids[node_type].get_indexer(np.asarray(original_ids))
        if (index < 0).any():
            bad = np.asarray(original_ids)[index < 0][:5].tolist()
            raise KeyError(f"{node_type} ids {bad} are not in the graph")
        return index

    def save(self, directory: str | Path) -> None:
        """Write the artifact into ``directory`` (which must be new or empty)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        (directory / "ids").mkdir(parents=True, exist_ok=True)
        tensors = self.csr.to_tensors()
        for ntype, x in self.features.items():
            tensors[f"features/{ntype}"] = x.contiguous()
        save_file(tensors, str(directory / "graph.safetensors"))
        meta = {
            "format_version": _FORMAT_VERSION,
            "schema": self.schema.model_dump(mode="json"),
            "csr": self.csr.metadata(),
            "feature_stats": self.feature_stats,
        }
        (directory / "meta.json").write_text(json.dumps(meta, indent=2))
        for ntype, ids in self.ids.items():
            pd.DataFrame({"id": ids.to_numpy()}).to_parquet(
                directory / "ids" / f"{ntype}.parquet", index=False
            )

    @classmethod
    def load(cls, directory: str | Path) -> GraphArtifact:
        """Read an artifact written by :meth:`save`."""
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"{directory}/meta.json: format_version {meta.get('format_version')!r}"
                f" is not supported (expected {_FORMAT_VERSION})"
            )
        tensors = load_file(str(directory / "graph.safetensors"))
        features = {
            k.split("/", 1)[1]: v
            for k, v in tensors.items()
            if k.startswith("features/")
        }
        csr = HeteroCSR.from_tensors(
            {k: v for k, v in tensors.items() if not k.startswith("features/")},
            meta["csr"],
        )
        schema = GraphSchema.model_validate(meta["schema"])
        ids = {
            t: pd.Index(pd.read_parquet(directory / "ids" / f"{t}.parquet")["id"])
            for t in schema.node_types
        }
        return cls(schema, csr, ids, features, meta.get("feature_stats", {}))

    def summary(self) -> dict[str, Any]:
        """Node and edge counts, feature dimensions and bytes (for logs, previews)."""
        return {
            "num_nodes": self.num_nodes,
            "num_edges": {
                "__".join(et): self.csr.num_edges(et) for et in self.csr.edge_types
            },
            "features": {t: list(x.shape) for t, x in self.features.items()},
            "user_type": self.schema.user_type,
            "item_type": self.schema.item_type,
            "csr_bytes": self.csr.nbytes(),
        }


def build_graph(tables: IndexedTables, interactions: pd.DataFrame) -> GraphArtifact:
    """Build the train message-passing graph: held-out pairs removed, reverse
    relations added, features as tensors."""
    edges = train_edges(tables, interactions)
    coo = {
        et: (torch.from_numpy(a.src), torch.from_numpy(a.dst))
        for et, a in edges.items()
    }
    weights = None
    if any(a.weight is not None for a in edges.values()):
        weights = {
            et: torch.from_numpy(a.weight)
            for et, a in edges.items()
            if a.weight is not None
        }
    csr = HeteroCSR.from_coo(tables.num_nodes, coo, weights=weights, add_reverse=True)
    features = {
        t: torch.from_numpy(x) for t, x in tables.features.items() if x is not None
    }
    artifact = GraphArtifact(
        tables.schema, csr, tables.ids, features, tables.feature_stats
    )
    logger.info("Built graph: %s", artifact.summary())
    return artifact
