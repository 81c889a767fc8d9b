"""``SafetensorsDataset``: tensors plus JSON metadata in one safetensors file."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version
from kedro_datasets._typing import JSONPreview

from ._io import atomic_file
from ._versions import CompleteVersionsMixin


class SafetensorsDataset(
    CompleteVersionsMixin, AbstractVersionedDataset[dict[str, Any], dict[str, Any]]
):
    """Model weights (or any tensors) without pickle.

    The data is a ``dict`` with ``"tensors"`` (name -> ``torch.Tensor``) and
    optional ``"metadata"`` (a JSON-serialisable dict, e.g. the model's
    hyper-parameters), stored in one ``.safetensors`` file whose header keeps the
    metadata. Safe to load from untrusted sources; written atomically.

    Args:
        filepath: the ``.safetensors`` file.
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

    def load(self) -> dict[str, Any]:
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = str(self._get_load_path())
        with safe_open(path, framework="pt") as f:
            header = f.metadata() or {}
        return {
            "tensors": load_file(path),
            "metadata": json.loads(header.get("metadata", "{}")),
        }

    def save(self, data: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        if not isinstance(data, dict) or "tensors" not in data:
            raise DatasetError(
                f"{type(self).__name__} saves {{'tensors': {{...}}, 'metadata': "
                f"{{...}}}}, got {type(data).__name__} with keys "
                f"{sorted(data) if isinstance(data, dict) else None}"
            )
        tensors = {k: v.detach().cpu().contiguous() for k, v in data["tensors"].items()}
        header = {"metadata": json.dumps(data.get("metadata", {}))}
        atomic_file(
            Path(self._get_save_path()),
            lambda tmp: save_file(tensors, str(tmp), metadata=header),
        )

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).is_file()
        except Exception:  # noqa: BLE001 - no version saved yet
            return False

    def preview(self) -> JSONPreview:
        """Tensor names, shapes and the metadata (reads the header only)."""
        from safetensors import safe_open

        with safe_open(str(self._get_load_path()), framework="pt") as f:
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
            meta = json.loads((f.metadata() or {}).get("metadata", "{}"))
        return JSONPreview(json.dumps({"metadata": meta, "tensors": shapes}, indent=2))
