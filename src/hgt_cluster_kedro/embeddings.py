"""Embedding tables keyed by original node ids: the hand-off between models,
clustering and evaluation.

An embedding table is a DataFrame with an ``id`` column (original node ids) and
one float32 column per dimension, ``e0 … e{d-1}``; it writes well to parquet and
reads back into numpy without copies per row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_SHOW = 5


def to_frame(ids: pd.Index | np.ndarray, matrix: np.ndarray) -> pd.DataFrame:
    """Embedding table of ``matrix`` (row i = node ``ids[i]``)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or len(matrix) != len(ids):
        raise ValueError(
            f"matrix of shape {matrix.shape} does not match {len(ids)} ids "
            "(expected [n_ids, dim])"
        )
    frame = pd.DataFrame(matrix, columns=[f"e{j}" for j in range(matrix.shape[1])])
    frame.insert(0, "id", np.asarray(ids))
    return frame


def from_frame(
    frame: pd.DataFrame,
    ids: pd.Index | np.ndarray,
    *,
    dim: int | None = None,
    name: str = "embeddings",
) -> np.ndarray:
    """Rows of ``frame`` in the order of ``ids`` as a float32 matrix.

    Raises:
        ValueError: naming ``name`` when ids are missing or duplicated, values
            are NaN or infinite, or the dimension differs from ``dim``.
    """
    if "id" not in frame.columns:
        raise ValueError(f"{name}: no 'id' column; columns: {list(frame.columns)[:8]}")
    cols = [c for c in frame.columns if c != "id"]
    if dim is not None and len(cols) != dim:
        raise ValueError(f"{name}: dimension {len(cols)} differs from expected {dim}")
    if frame["id"].duplicated().any():
        dup = frame.loc[frame["id"].duplicated(), "id"].head(_SHOW).tolist()
        raise ValueError(f"{name}: duplicate ids {dup}")
    index = pd.Index(frame["id"]).get_indexer(np.asarray(ids))
    if (index < 0).any():
        missing = np.asarray(ids)[index < 0]
        raise ValueError(
            f"{name}: {len(missing)} ids have no embedding, e.g. "
            f"{missing[:_SHOW].tolist()}"
        )
    matrix = frame[cols].to_numpy(dtype=np.float32)[index]
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        rows = np.asarray(ids)[bad][:_SHOW].tolist()
        raise ValueError(f"{name}: NaN or infinite values for ids {rows}")
    return matrix
