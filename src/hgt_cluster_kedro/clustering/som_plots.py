"""Plots of a trained self-organising map: U-matrix and hit map.

Both return a :class:`matplotlib.figure.Figure` built without pyplot state (no
global figure registry), ready for Kedro's ``matplotlib.MatplotlibDataset``.
Cell ``(r, c)`` is unit ``r * cols + c``, drawn with row 0 at the top.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def _grid(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(
            f"{name} must be a non-empty [rows, cols] grid, got {arr.shape}"
        )
    return arr


def _annotate(ax, texts: np.ndarray, colors: np.ndarray) -> None:
    rows, cols = texts.shape
    if rows * cols > 400:  # unreadable beyond 20 x 20
        return
    size = max(5.0, min(10.0, 120.0 / max(rows, cols)))
    for r in range(rows):
        for c in range(cols):
            ax.text(
                c,
                r,
                texts[r, c],
                ha="center",
                va="center",
                fontsize=size,
                color=colors[r, c],
            )


def _cluster_borders(ax, clusters: np.ndarray) -> None:
    """Thick lines between adjacent cells of different clusters."""
    rows, cols = clusters.shape
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols and clusters[r, c] != clusters[r, c + 1]:
                ax.plot([c + 0.5, c + 0.5], [r - 0.5, r + 0.5], color="k", lw=2.5)
            if r + 1 < rows and clusters[r, c] != clusters[r + 1, c]:
                ax.plot([c - 0.5, c + 0.5], [r + 0.5, r + 0.5], color="k", lw=2.5)


def plot_u_matrix(
    u_matrix: np.ndarray,
    *,
    clusters: np.ndarray | None = None,
    title: str = "SOM U-matrix",
) -> Figure:
    """U-matrix: mean distance of every unit's codebook vector to its
    neighbours' (:func:`~hgt_cluster_kedro.clustering.som.u_matrix`); light
    ridges separate groups of similar units.

    Args:
        u_matrix: ``[rows, cols]`` distances.
        clusters: optional ``[rows, cols]`` cluster of every unit; borders
            between clusters are drawn.
        title: figure title.

    Returns:
        A :class:`~matplotlib.figure.Figure`.
    """
    um = _grid(u_matrix, "u_matrix").astype(np.float64)
    rows, cols = um.shape
    fig = Figure(
        figsize=(1.0 + 0.45 * cols + 1.2, 1.0 + 0.45 * rows), layout="constrained"
    )
    ax = fig.subplots()
    im = ax.imshow(um, cmap="bone_r", origin="upper", interpolation="nearest")
    fig.colorbar(im, ax=ax, label="mean distance to neighbours")
    if clusters is not None:
        _cluster_borders(ax, _grid(clusters, "clusters").reshape(rows, cols))
    ax.set_xlabel("col")
    ax.set_ylabel("row")
    ax.set_title(title)
    return fig


def plot_hit_map(
    hits: np.ndarray,
    *,
    clusters: np.ndarray | None = None,
    title: str = "SOM hit map",
) -> Figure:
    """Hit map: samples per unit (log colour scale), counts written in the cells
    (with the cluster id when ``clusters`` is given) for grids up to 20 x 20.

    Args:
        hits: ``[rows, cols]`` samples per unit.
        clusters: optional ``[rows, cols]`` cluster of every unit; borders
            between clusters are drawn.
        title: figure title.

    Returns:
        A :class:`~matplotlib.figure.Figure`.
    """
    h = _grid(hits, "hits").astype(np.float64)
    rows, cols = h.shape
    fig = Figure(
        figsize=(1.0 + 0.45 * cols + 1.2, 1.0 + 0.45 * rows), layout="constrained"
    )
    ax = fig.subplots()
    im = ax.imshow(np.log1p(h), cmap="viridis", origin="upper", interpolation="nearest")
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label("log(1 + samples)")
    level = np.log1p(h)
    span = float(level.max() - level.min())
    high = (level - level.min()) > 0.55 * span if span > 0 else np.ones_like(h, bool)
    colors = np.where(high, "black", "white")
    texts = h.astype(np.int64).astype(str)
    if clusters is not None:
        grid = _grid(clusters, "clusters").reshape(rows, cols)
        texts = np.char.add(np.char.add(texts, "\nc"), grid.astype(str))
        _cluster_borders(ax, grid)
    _annotate(ax, texts, colors)
    ax.set_xlabel("col")
    ax.set_ylabel("row")
    ax.set_title(f"{title} ({int(h.sum())} samples, {int((h == 0).sum())} empty units)")
    return fig
