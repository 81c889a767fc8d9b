"""Training data of HGT: the positive target edges, each rank's shard and the
seeded plan of every epoch's batches."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...graph.artifact import GraphArtifact
from ...graph.csr import EdgeType

logger = logging.getLogger(__name__)

__all__ = ["check_pairs", "count_batches", "epoch_plan", "shard", "target_edges"]

Edges = list[tuple[EdgeType, Tensor, Tensor]]


def check_pairs(
    pairs: Any, num_users: int, num_items: int
) -> tuple[Tensor, Tensor] | None:
    """``(users, items)`` int64 tensors from arrays / a DataFrame; None if empty."""
    if pairs is None:
        return None
    if hasattr(pairs, "columns"):
        missing = {"user", "item"} - set(pairs.columns)
        if missing:
            raise ValueError(f"val_pairs has no columns {sorted(missing)}")
        pairs = (pairs["user"].to_numpy(), pairs["item"].to_numpy())
    if len(pairs) != 2:
        raise ValueError("val_pairs must be (users, items) or a user/item DataFrame")
    users = torch.as_tensor(np.array(pairs[0])).long().view(-1)
    items = torch.as_tensor(np.array(pairs[1])).long().view(-1)
    if users.numel() != items.numel():
        raise ValueError(
            f"val_pairs users and items lengths differ ({users.numel()} vs "
            f"{items.numel()})"
        )
    if users.numel() == 0:
        return None
    for name, ids, n in (("users", users, num_users), ("items", items, num_items)):
        bad = (ids < 0) | (ids >= n)
        if bool(bad.any()):
            raise ValueError(
                f"val_pairs {name} out of range [0, {n}), e.g. {ids[bad][:5].tolist()}"
            )
    return users, items


def target_edges(graph: GraphArtifact) -> Edges:
    schema = graph.schema
    out = []
    for name in schema.target_relations:
        et = schema.edge_type(name)
        if et not in graph.csr.indptr:
            raise ValueError(f"target relation {name!r} ({et}) is not in graph.csr")
        src, dst = graph.csr.to_coo(et)
        out.append((et, src, dst))
    if sum(src.numel() for _, src, _ in out) == 0:
        raise ValueError(
            f"the target relations {schema.target_relations} have no train edges"
        )
    return out


def shard(
    edges: Edges,
    *,
    rank: int,
    world_size: int,
    seed: int,
    seed_users: Tensor | None,
) -> Edges:
    out = []
    for r, (et, src, dst) in enumerate(edges):
        if seed_users is not None:
            idx = torch.isin(src, seed_users).nonzero().view(-1)
        elif world_size == 1:
            idx = torch.arange(src.numel())
        else:
            perm = np.random.default_rng([seed, 7, r]).permutation(src.numel())
            idx = torch.from_numpy(np.sort(perm[rank::world_size]))
        out.append((et, src[idx], dst[idx]))
    if sum(s.numel() for _, s, _ in out) == 0:
        logger.warning(
            "rank %d: its shard holds no positive edge (seed_users own none); it "
            "trains on all edges instead",
            rank,
        )
        return edges
    return out


def epoch_plan(
    local: Edges,
    *,
    batch_size: int,
    steps: int,
    seed: int,
    epoch: int,
    rank: int,
    min_batch: int,
) -> list[tuple[int, Tensor]]:
    """``steps`` batches ``(relation index, edge positions)`` of one epoch."""
    rng = np.random.default_rng([seed, 11, epoch, rank])
    batches: list[tuple[int, Tensor]] = []
    for r, (et, src, _) in enumerate(local):
        n = src.numel()
        if n == 0:
            continue
        if n < min_batch:
            raise ValueError(
                f"relation {et} has {n} positive edges on rank {rank}, fewer than "
                f"num_neg + 1 = {min_batch} needed by neg_mode='in_batch'"
            )
        perm = rng.permutation(n)
        num = max(1, -(-n // batch_size))
        num = min(num, n // min_batch)
        for chunk in np.array_split(perm, num):
            batches.append((r, torch.from_numpy(chunk)))
    order = rng.permutation(len(batches))
    batches = [batches[i] for i in order]
    if len(batches) < steps:  # a smaller shard wraps around
        batches = (batches * (-(-steps // len(batches))))[:steps]
    return batches[:steps]


def count_batches(local: Edges, batch_size: int, min_batch: int) -> int:
    total = 0
    for _, src, _ in local:
        n = src.numel()
        if n:
            total += max(1, min(-(-n // batch_size), max(1, n // min_batch)))
    return total
