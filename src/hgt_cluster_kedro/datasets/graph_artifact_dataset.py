"""``GraphArtifactDataset``: the training graph as a versioned directory."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, Version
from kedro_datasets._typing import JSONPreview

from hgt_cluster_kedro.graph.artifact import GraphArtifact

from ._io import atomic_dir
from ._versions import CompleteVersionsMixin


class GraphArtifactDataset(
    CompleteVersionsMixin, AbstractVersionedDataset[GraphArtifact, GraphArtifact]
):
    """Saves and loads a :class:`~hgt_cluster_kedro.graph.artifact.GraphArtifact`.

    The directory holds ``graph.safetensors``, ``meta.json`` and ``ids/*.parquet``
    (no pickle); it is written to a temporary directory and renamed into place.

    Args:
        filepath: directory of the artifact.
        version: Kedro version (set by the catalog when ``versioned: true``).
        metadata: free-form metadata, ignored by Kedro.
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath=PurePosixPath(filepath), version=version)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}

    def load(self) -> GraphArtifact:
        return GraphArtifact.load(Path(self._get_load_path()))

    def save(self, data: GraphArtifact) -> None:
        atomic_dir(Path(self._get_save_path()), data.save)

    def _exists(self) -> bool:
        try:
            return (Path(self._get_load_path()) / "meta.json").is_file()
        except Exception:  # noqa: BLE001 - no version saved yet
            return False

    def preview(self) -> JSONPreview:
        """Schema and node counts, read from ``meta.json`` only."""
        meta = json.loads((Path(self._get_load_path()) / "meta.json").read_text())
        return JSONPreview(
            json.dumps({"schema": meta["schema"], "csr": meta["csr"]}, indent=2)
        )
