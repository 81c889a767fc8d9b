"""``ParquetPartsDataset``: one table as a versioned directory of parquet parts."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Literal

from kedro.io.core import AbstractVersionedDataset, Version
from kedro_datasets._typing import TablePreview

from ._io import atomic_dir, count_rows, preview_parts, read_parts, write_parts
from ._versions import CompleteVersionsMixin


class ParquetPartsDataset(CompleteVersionsMixin, AbstractVersionedDataset[Any, Any]):
    """A table stored as ``part-NNNNN.parquet`` files in one directory.

    Saves a pandas DataFrame (one part) or a dask DataFrame (one part per
    partition, computed and written partition by partition on the active dask
    scheduler, so tables larger than memory stream to disk). Saves are atomic:
    parts are written to a temporary directory that is renamed into place.
    Unlike ``dask.ParquetDataset``, it is versioned.

    Example catalog entry::

        user_communities:
          type: hgt_cluster_kedro.datasets.ParquetPartsDataset
          filepath: data/01_raw/user_communities
          versioned: true

    Args:
        filepath: directory of the parts (local paths).
        backend: ``pandas`` (default) or ``dask``, the type returned by ``load``.
        load_args: passed to ``pandas.read_parquet`` / ``dask.dataframe.read_parquet``.
        save_args: passed to ``DataFrame.to_parquet``.
        version: Kedro version (set by the catalog when ``versioned: true``).
        metadata: free-form metadata, ignored by Kedro.
    """

    def __init__(
        self,
        *,
        filepath: str,
        backend: Literal["pandas", "dask"] = "pandas",
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if backend not in ("pandas", "dask"):
            raise ValueError(f"backend must be 'pandas' or 'dask', got {backend!r}")
        super().__init__(filepath=PurePosixPath(filepath), version=version)
        self._backend = backend
        self._load_args = dict(load_args or {})
        self._save_args = dict(save_args or {})
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "backend": self._backend,
            "version": self._version,
            "load_args": self._load_args,
            "save_args": self._save_args,
        }

    def load(self) -> Any:
        return read_parts(Path(self._get_load_path()), self._backend, **self._load_args)

    def save(self, data: Any) -> None:
        path = Path(self._get_save_path())
        atomic_dir(path, lambda tmp: write_parts(data, tmp, **self._save_args))

    def _exists(self) -> bool:
        try:
            path = Path(self._get_load_path())
        except Exception:  # noqa: BLE001 - no version saved yet
            return False
        return path.is_dir()

    def preview(self, nrows: int = 5) -> TablePreview:
        """First rows for kedro-viz (reads one parquet batch only)."""
        return TablePreview(preview_parts(Path(self._get_load_path()), nrows))

    def num_rows(self) -> int:
        """Rows of the loaded version, from parquet footers."""
        return count_rows(Path(self._get_load_path()))
