"""Shared I/O for the project's datasets: atomic directory writes, parquet parts.

Kept free of Kedro so workers and notebooks can read artifacts directly.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from ._versions import temp_tag


def is_dask(frame: Any) -> bool:
    """True for a dask DataFrame (without importing dask when it is not used)."""
    return type(frame).__module__.startswith("dask")


def atomic_dir(final: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a fresh sibling directory, then rename it to ``final``.

    A reader never sees a half-written ``final``; on error the temporary
    directory is removed and ``final`` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # host and pid in the name: clean_stale_temporaries knows when it is stale
    tmp = final.parent / f".{final.name}.tmp-{temp_tag()}{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        write(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_file(final: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary sibling file, then rename it to ``final``
    (the project's one atomic file write,
    :func:`hgt_cluster_kedro.training.checkpoint.atomic_write`)."""
    from hgt_cluster_kedro.training.checkpoint import atomic_write

    atomic_write(final, write)


def write_parts(frame: Any, directory: Path, **save_args: Any) -> None:
    """Write a pandas or dask DataFrame as ``part-NNNNN.parquet`` files.

    A dask DataFrame is computed partition by partition on the active scheduler
    (streaming: only the partitions being written are in memory).
    """
    directory.mkdir(parents=True, exist_ok=True)
    if is_dask(frame):
        frame.to_parquet(
            str(directory),
            write_index=False,
            name_function=lambda i: f"part-{i:05d}.parquet",
            write_metadata_file=False,
            **save_args,
        )
    else:
        frame.to_parquet(directory / "part-00000.parquet", index=False, **save_args)


def part_files(directory: Path) -> list[Path]:
    """The parquet parts of ``directory`` in order."""
    return sorted(Path(directory).glob("part-*.parquet"))


def read_parts(directory: Path, backend: str = "pandas", **load_args: Any) -> Any:
    """Read the parts of ``directory`` as one pandas (or dask) DataFrame."""
    files = part_files(directory)
    if not files:
        raise FileNotFoundError(f"no parquet parts (part-*.parquet) in {directory}")
    if backend == "dask":
        import dask.dataframe as dd

        return dd.read_parquet([str(f) for f in files], **load_args)
    frames = [pd.read_parquet(f, **load_args) for f in files]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def count_rows(directory: Path) -> int:
    """Rows over all parts, from parquet footers (reads no data)."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in part_files(directory))


def preview_parts(directory: Path, nrows: int) -> dict[str, Any]:
    """First ``nrows`` rows as ``DataFrame.to_dict(orient="split")``."""
    files = part_files(directory)
    if not files:
        return {"index": [], "columns": [], "data": []}
    table = next(pq.ParquetFile(files[0]).iter_batches(batch_size=nrows)).to_pandas()
    return table.head(nrows).astype(str).to_dict(orient="split")
