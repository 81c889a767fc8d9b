"""Embedding nodes with a trained HGT encoder: sampled neighbourhoods in
batches, or one exact pass over the whole graph (full-graph mode)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...graph.artifact import GraphArtifact
from ...graph.csr import EdgeType, HeteroCSR
from ...graph.sampler import NeighborSampler
from ...models.hgt import HGTEncoder
from ...models.hgt_attention import FullGraph
from ...progress import progress_bar
from ...runtime import resolve_device
from .config import Fanouts, resolve_fanouts
from .model_io import unwrap

logger = logging.getLogger(__name__)

__all__ = ["attach_x", "embed_all", "embed_full", "embed_nodes"]


def attach_x(data: Any, features: Mapping[str, Tensor]) -> None:
    for t, x in features.items():
        if t in data.node_types:
            data[t].x = x.index_select(0, data[t].n_id)


@torch.no_grad()
def embed_nodes(
    model: HGTEncoder,
    csr: HeteroCSR,
    features: Mapping[str, Tensor],
    node_type: str,
    nodes: Tensor,
    *,
    fanouts: list[int] | dict[EdgeType, list[int]],
    batch_size: int,
    device: torch.device,
    seed: int,
    progress: bool,
) -> Tensor:
    """``[len(nodes), hidden]`` embeddings (CPU float32) of ``nodes``."""
    sampler = NeighborSampler(csr, fanouts, seed=seed)
    was_training = model.training
    model.eval()
    out = torch.empty(nodes.numel(), model.hidden)
    bar = progress_bar(
        total=nodes.numel(),
        desc=f"embed {node_type}",
        unit="node",
        unit_scale=True,
        disable=not progress,
        leave=False,
    )
    try:
        for start in range(0, nodes.numel(), batch_size):
            ids = nodes[start : start + batch_size]
            data = sampler.sample_nodes({node_type: ids})
            attach_x(data, features)
            emb = model(data.to(device))[node_type][: ids.numel()]
            out[start : start + ids.numel()] = emb.float().cpu()
            bar.update(ids.numel())
    finally:
        bar.close()
        model.train(was_training)
    return out


@torch.no_grad()
def embed_full(
    model: HGTEncoder,
    graph: FullGraph,
    features: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Exact embeddings ``{type: [n, hidden]}`` of every node by one
    full-graph pass in eval mode (CPU float32).

    Args:
        model: the encoder (its device is used).
        graph: :class:`~hgt_cluster_kedro.models.hgt_attention.FullGraph` of
            the message-passing graph.
        features: feature matrices per type (all nodes) when the model uses
            features.
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        x = None
        if features is not None:
            x = {
                t: f.to(device) for t, f in features.items() if t in model.feature_dims
            }
        out = model.forward_full(graph.to(device), x_dict=x)
    finally:
        model.train(was_training)
    return {t: e.float().cpu() for t, e in out.items()}


def embed_all(
    model: torch.nn.Module,
    graph: GraphArtifact,
    node_type: str,
    *,
    batch_size: int = 1024,
    fanouts: Fanouts | str | None = None,
    device: str | torch.device = "cpu",
    nodes: Any = None,
    seed: int = 0,
    progress: bool = True,
) -> np.ndarray:
    """Embed every node (or ``nodes``) of ``node_type``.

    With ``fanouts="full"`` one exact pass over the whole graph
    (:func:`embed_full`); otherwise batches of ``batch_size`` seeds, each with
    its neighbourhood sampled on ``graph.csr`` (as many hops as ``fanouts``
    lists).

    Args:
        model: a trained :class:`HGTEncoder` (wrappers are unwrapped).
        graph: the graph artifact the model was trained on (features, CSR).
        node_type: node type to embed.
        batch_size: seed nodes per batch (sampled).
        fanouts: ``"full"``; neighbours per hop (see :func:`resolve_fanouts`);
            or ``None``: every neighbour over ``model.num_layers`` hops by
            sampling (exact, deterministic).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        nodes: ids to embed (default: all ``0 .. n-1``).
        seed: seed of the sampler (sampled fanouts).
        progress: progress bar (nodes/s).

    Returns:
        ``float32 [len(nodes), hidden]`` L2-normalised embeddings.
    """
    inner = unwrap(model)
    if node_type not in graph.csr.num_nodes:
        raise ValueError(
            f"unknown node_type {node_type!r} (known: {graph.csr.node_types})"
        )
    if int(batch_size) <= 0:
        raise ValueError(f"batch_size must be > 0 (got {batch_size})")
    if isinstance(fanouts, str) and fanouts != "full":
        raise ValueError(f"fanouts must be 'full', a list or a dict (got {fanouts!r})")
    n = graph.csr.num_nodes[node_type]
    ids = torch.arange(n) if nodes is None else torch.as_tensor(nodes).long().view(-1)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
        raise ValueError(f"nodes must lie in [0, {n}) for node type {node_type!r}")
    dev = resolve_device(device)
    inner.to(dev)
    features = {t: x.float() for t, x in graph.features.items()}
    start = time.perf_counter()
    if fanouts == "full":
        full = FullGraph.from_csr(graph.csr, inner.edge_types)
        out = embed_full(inner, full, features)[node_type].index_select(0, ids)
    else:
        fan = (
            [-1] * inner.num_layers
            if fanouts is None
            else resolve_fanouts(graph.csr, fanouts)
        )
        out = embed_nodes(
            inner,
            graph.csr,
            features,
            node_type,
            ids,
            fanouts=fan,
            batch_size=int(batch_size),
            device=dev,
            seed=int(seed),
            progress=progress,
        )
    seconds = time.perf_counter() - start
    logger.info(
        "Embedded %d %s nodes in %.1f s (%.0f nodes/s)",
        ids.numel(),
        node_type,
        seconds,
        ids.numel() / max(seconds, 1e-9),
    )
    return out.numpy()
