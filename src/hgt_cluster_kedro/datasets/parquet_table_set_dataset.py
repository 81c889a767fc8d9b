"""``ParquetTableSetDataset``: a named set of tables, versioned together."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Literal

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version
from kedro_datasets._typing import TablePreview

from ._io import atomic_dir, count_rows, read_parts, write_parts
from ._versions import CompleteVersionsMixin


class ParquetTableSetDataset(
    CompleteVersionsMixin, AbstractVersionedDataset[dict[str, Any], dict[str, Any]]
):
    """A ``dict`` of tables (node types, or relations) saved as one version.

    Each table is a sub-directory of parquet parts (see ``ParquetPartsDataset``);
    the whole set is written to a temporary directory and renamed into place, so
    a version is complete or absent. Values may be pandas or dask DataFrames
    (dask ones are written partition by partition). ``load`` returns a ``dict`` of
    pandas (or dask) DataFrames keyed by table name.

    Used for the canonical graph tables: ``raw_nodes`` keyed by node type and
    ``raw_edges`` keyed by relation, so any schema fits one catalog entry.

    Args:
        filepath: directory of the set.
        backend: ``pandas`` (default) or ``dask``, the type of the loaded tables.
        tables: if given, ``load`` returns only these tables (error if missing).
        load_args: passed to the parquet reader of each table.
        save_args: passed to ``to_parquet`` of each table.
        version: Kedro version (set by the catalog when ``versioned: true``).
        metadata: free-form metadata, ignored by Kedro.
    """

    def __init__(
        self,
        *,
        filepath: str,
        backend: Literal["pandas", "dask"] = "pandas",
        tables: list[str] | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if backend not in ("pandas", "dask"):
            raise ValueError(f"backend must be 'pandas' or 'dask', got {backend!r}")
        super().__init__(filepath=PurePosixPath(filepath), version=version)
        self._backend = backend
        self._tables = list(tables) if tables else None
        self._load_args = dict(load_args or {})
        self._save_args = dict(save_args or {})
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "backend": self._backend,
            "tables": self._tables,
            "version": self._version,
        }

    def _table_dirs(self) -> dict[str, Path]:
        root = Path(self._get_load_path())
        return {p.name: p for p in sorted(root.iterdir()) if p.is_dir()}

    def load(self) -> dict[str, Any]:
        dirs = self._table_dirs()
        names = self._tables or list(dirs)
        missing = [n for n in names if n not in dirs]
        if missing:
            raise DatasetError(
                f"tables {missing} not found in {self._get_load_path()}; "
                f"present: {sorted(dirs)}"
            )
        return {n: read_parts(dirs[n], self._backend, **self._load_args) for n in names}

    def save(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict) or not data:
            raise DatasetError(
                f"{type(self).__name__} saves a non-empty dict of DataFrames, "
                f"got {type(data).__name__}"
            )
        bad = [k for k in data if not k or "/" in k or k.startswith(".")]
        if bad:
            raise DatasetError(f"invalid table names {bad}")

        def write(tmp: Path) -> None:
            for name, frame in data.items():
                write_parts(frame, tmp / name, **self._save_args)

        atomic_dir(Path(self._get_save_path()), write)

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).is_dir()
        except Exception:  # noqa: BLE001 - no version saved yet
            return False

    def preview(self, nrows: int = 5) -> TablePreview:
        """A table of the tables (name, rows, columns) for kedro-viz."""
        import pyarrow.parquet as pq

        rows = []
        for name, path in list(self._table_dirs().items())[:nrows]:
            files = sorted(path.glob("part-*.parquet"))
            cols = pq.ParquetFile(files[0]).schema_arrow.names if files else []
            rows.append([name, count_rows(path), len(files), ", ".join(cols)])
        return TablePreview(
            {
                "index": list(range(len(rows))),
                "columns": ["table", "rows", "parts", "columns"],
                "data": rows,
            }
        )
