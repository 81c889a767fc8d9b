"""Validation of HGT training (rank 0, after every epoch).

* ``val_loss``: the training objective (weighted sum of the configured
  objectives) on the held-out pairs, with uniform negatives and a fixed seed.
* ``val_recall``: Recall@K of exact dot-product retrieval for (a seeded sample
  of) the validation users, every train item of the user excluded, computed by
  :func:`~hgt_cluster_kedro.evaluation.metrics.ranking_metrics` (the project's
  one definition of Recall).

Embeddings come from one exact full-graph pass (full-graph training, or
``val_mode`` full / auto on a graph that fits), else from sampled
neighbourhoods (``eval_fanouts``, fixed seed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...evaluation.metrics import ranking_metrics, relevant_csr
from ...graph.artifact import GraphArtifact
from ...graph.csr import EdgeType
from ...graph.negatives import UniformNegatives, positive_test
from ...graph.sampler import NeighborSampler
from ...models.hgt import HGTEncoder
from ...models.hgt_attention import FullGraph
from ...runtime import derive_seed
from .config import HGTTrainConfig
from .inference import attach_x, embed_full, embed_nodes
from .objectives import LinkBatch, Objective

__all__ = ["top_k_items", "validate"]

Fan = list[int] | dict[EdgeType, list[int]]


def top_k_items(
    user_emb: Tensor,
    item_emb: Tensor,
    users: Tensor,
    k: int,
    *,
    exclude: Sequence[tuple[Tensor, Tensor]] = (),
    chunk: int = 1024,
) -> np.ndarray:
    """``int64 [len(users), k]``: the ``k`` items of highest dot product for each
    user (row ``i`` of ``user_emb`` is ``users[i]``), never an item of the
    ``exclude`` CSRs ``(indptr, indices)`` (rows = user ids)."""
    k = min(int(k), item_emb.shape[0])
    out = np.empty((users.numel(), k), dtype=np.int64)
    for start in range(0, users.numel(), chunk):
        rows = torch.arange(start, min(start + chunk, users.numel()))
        scores = user_emb[rows] @ item_emb.T
        u = users[rows]
        for indptr, indices in exclude:
            begin = indptr[u]
            deg = indptr[u + 1] - begin
            total = int(deg.sum())
            if total == 0:
                continue
            r = torch.repeat_interleave(torch.arange(rows.numel()), deg)
            shift = torch.cumsum(deg, 0) - deg - begin
            pos = torch.arange(total) - torch.repeat_interleave(shift, deg)
            scores[r, indices[pos].long()] = -math.inf
        out[start : start + rows.numel()] = scores.topk(k, dim=1).indices.numpy()
    return out


def _objective_loss(
    objectives: Mapping[str, Objective], batch: LinkBatch, emb: dict[str, Tensor]
) -> Tensor:
    terms = [o.params.weight * o.loss(batch, emb) for o in objectives.values()]
    return torch.stack(terms).sum()


def _val_loss_full(
    emb: dict[str, Tensor],
    graph: GraphArtifact,
    val: tuple[Tensor, Tensor],
    cfg: HGTTrainConfig,
    objectives: Mapping[str, Objective],
) -> float:
    schema = graph.schema
    et = schema.edge_type(schema.target_relations[0])
    negatives = UniformNegatives(cfg.num_neg)
    rng = np.random.default_rng(derive_seed(cfg.seed, 101))
    users, items = val
    n_s, n_d = graph.csr.num_nodes[et[0]], graph.csr.num_nodes[et[2]]
    total, count = 0.0, 0
    for start in range(0, users.numel(), cfg.val_batch_size):
        u = users[start : start + cfg.val_batch_size]
        i = items[start : start + cfg.val_batch_size]
        draw = negatives.draw(
            u,
            i,
            num_src=n_s,
            num_dst=n_d,
            rng=rng,
            is_positive=positive_test(graph.csr, et, u, i),
        )
        batch = LinkBatch(
            et, u, i, draw.src_neg, draw.dst_neg, ~draw.src_bad, ~draw.dst_bad
        )
        total += float(_objective_loss(objectives, batch, emb)) * u.numel()
        count += u.numel()
    return total / max(count, 1)


def _val_loss_sampled(
    model: HGTEncoder,
    graph: GraphArtifact,
    features: Mapping[str, Tensor],
    val: tuple[Tensor, Tensor],
    *,
    cfg: HGTTrainConfig,
    objectives: Mapping[str, Objective],
    fanouts: Fan,
    device: torch.device,
) -> float:
    schema = graph.schema
    et = schema.edge_type(schema.target_relations[0])
    sampler = NeighborSampler(graph.csr, fanouts, seed=derive_seed(cfg.seed, 101))
    users, items = val
    total, count = 0.0, 0
    for start in range(0, users.numel(), cfg.val_batch_size):
        u = users[start : start + cfg.val_batch_size]
        i = items[start : start + cfg.val_batch_size]
        data = sampler.sample_links(et, u, i, negatives=UniformNegatives(cfg.num_neg))
        attach_x(data, features)
        data = data.to(device)
        emb = model(data)
        loss = _objective_loss(objectives, LinkBatch.from_data(data), emb)
        total += float(loss) * u.numel()
        count += u.numel()
    return total / max(count, 1)


@torch.no_grad()
def validate(
    model: HGTEncoder,
    graph: GraphArtifact,
    features: Mapping[str, Tensor],
    val: tuple[Tensor, Tensor],
    *,
    cfg: HGTTrainConfig,
    objectives: Mapping[str, Objective],
    fanouts: Fan,
    eval_fanouts: Fan,
    device: torch.device,
    full: FullGraph | None,
) -> dict[str, Any]:
    """``{"val_loss", "val_recall", ...objective metrics}`` on the validation
    pairs (see the module docstring)."""
    csr, schema = graph.csr, graph.schema
    user_t, item_t = schema.user_type, schema.item_type
    users, items = val
    was_training = model.training
    model.eval()
    try:
        if full is not None:
            emb = embed_full(model, full, features if cfg.use_features else None)
            val_loss = _val_loss_full(emb, graph, val, cfg, objectives)
        else:
            val_loss = _val_loss_sampled(
                model,
                graph,
                features,
                val,
                cfg=cfg,
                objectives=objectives,
                fanouts=fanouts,
                device=device,
            )
        eval_users = torch.unique(users)
        if cfg.val_max_users is not None and eval_users.numel() > cfg.val_max_users:
            rng = np.random.default_rng([cfg.seed, 103])
            pick = rng.choice(eval_users.numel(), cfg.val_max_users, replace=False)
            eval_users = eval_users[torch.from_numpy(np.sort(pick))]
            keep = torch.isin(users, eval_users)
            users, items = users[keep], items[keep]
        if full is not None:
            user_emb = emb[user_t].index_select(0, eval_users)
            item_emb = emb[item_t]
        else:
            kwargs = {
                "fanouts": eval_fanouts,
                "batch_size": cfg.val_batch_size,
                "device": device,
                "seed": derive_seed(cfg.seed, 102),
                "progress": False,
            }
            user_emb = embed_nodes(model, csr, features, user_t, eval_users, **kwargs)
            item_ids = torch.arange(csr.num_nodes[item_t])
            item_emb = embed_nodes(model, csr, features, item_t, item_ids, **kwargs)
        exclude = [
            (csr.indptr[schema.edge_type(r)], csr.indices[schema.edge_type(r)])
            for r in schema.target_relations
        ]
        top = top_k_items(user_emb, item_emb, eval_users, cfg.val_k, exclude=exclude)
        relevant = relevant_csr(
            users.numpy(), items.numpy(), csr.num_nodes[user_t], csr.num_nodes[item_t]
        )[eval_users.numpy()]
        k = top.shape[1]
        recall = ranking_metrics(top, relevant, ks=(k,))[f"recall@{k}"]
        out: dict[str, Any] = {"val_loss": val_loss, "val_recall": recall}
        for objective in objectives.values():
            out.update(objective.validate(user_emb))
    finally:
        model.train(was_training)
    return out
