"""Nodes of ``som``: thin wrappers over :mod:`hgt_cluster_kedro.clustering.som`."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hgt_cluster_kedro.clustering import fit_som, plot_hit_map, plot_u_matrix, u_matrix
from hgt_cluster_kedro.config import SomParams
from hgt_cluster_kedro.embeddings import from_frame


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def train_som(
    user_embeddings: pd.DataFrame, params: SomParams
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Self-organising map on the user embeddings; users take their BMU's
    cluster (the unit itself, or one of ``k`` merged clusters).

    Returns:
        ``user_clusters`` (``id``, ``cluster`` int32), ``som_codebook``
        (``unit``, ``row``, ``col``, ``e0 …``, ``hits``, ``cluster``) and
        ``som_report`` (JSON-ready summary).
    """
    params = SomParams.model_validate(params)
    kwargs = params.fit_kwargs()
    ids = user_embeddings["id"].to_numpy()
    x = from_frame(user_embeddings, ids, name="user_embeddings")
    normalize = params.normalize
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    result = fit_som(x, **kwargs)
    rows, cols = result.rows, result.cols
    clusters = pd.DataFrame({"id": ids, "cluster": result.labels.astype(np.int32)})
    units = rows * cols
    codebook = pd.DataFrame(
        result.codebook, columns=[f"e{j}" for j in range(result.codebook.shape[1])]
    )
    codebook.insert(0, "unit", np.arange(units, dtype=np.int32))
    codebook.insert(1, "row", (np.arange(units) // cols).astype(np.int32))
    codebook.insert(2, "col", (np.arange(units) % cols).astype(np.int32))
    codebook["hits"] = result.hits.reshape(-1)
    codebook["cluster"] = result.unit_cluster.astype(np.int32)
    report = {
        "backend": result.backend,
        "grid": [rows, cols],
        "quantization_error": float(result.quantization_error),
        "topographic_error": _finite(result.topographic_error),
        "seconds": float(result.seconds),
        "n_users": len(ids),
        "k": result.k,
        "n_clusters": int(np.unique(result.labels).size),
        "dim": int(x.shape[1]),
        "epochs": result.epochs,
        "empty_units": int((result.hits == 0).sum()),
        "normalize": normalize,
        "params": {key: kwargs[key] for key in sorted(kwargs)},
    }
    return clusters, codebook, report


def plot_som(
    som_codebook: pd.DataFrame, som_report: dict[str, Any]
) -> tuple[Figure, Figure]:
    """U-matrix and hit map of a trained map, from its codebook table."""
    rows, cols = (int(v) for v in som_report["grid"])
    table = som_codebook.sort_values("unit")
    emb = table[[c for c in table.columns if re.fullmatch(r"e\d+", c)]].to_numpy()
    clusters = table["cluster"].to_numpy().reshape(rows, cols)
    merged = som_report.get("k") is not None
    te = som_report.get("topographic_error")
    subtitle = (
        f"{som_report['backend']} {rows}x{cols}, QE "
        f"{som_report['quantization_error']:.4g}, TE "
        f"{'n/a' if te is None else f'{te:.3f}'}"
    )
    um = plot_u_matrix(
        u_matrix(emb, rows, cols),
        clusters=clusters if merged else None,
        title=f"U-matrix ({subtitle})",
    )
    hit = plot_hit_map(
        table["hits"].to_numpy().reshape(rows, cols),
        clusters=clusters if merged else None,
        title="Hit map",
    )
    return um, hit
