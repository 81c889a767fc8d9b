"""Self-supervised training of the HGT user encoder, one loop for 1 or N processes.

Model: :class:`~hgt_cluster_kedro.models.hgt.HGTEncoder` (Hu et al.,
*Heterogeneous Graph Transformer*, WWW 2020, arXiv 2003.01332); objective:
:func:`~hgt_cluster_kedro.models.losses.symmetric_cosine_loss` (the symmetric
cosine / softplus loss of the original graph-learn + TensorFlow system).

**Data.** The positives are the edges of the schema's target relations (user ->
item) in the train graph ``graph.csr`` (held-out pairs are not in it). Each epoch
every relation's edges of this rank are shuffled and cut into near-equal batches
of at most ``batch_size`` (one relation per batch), and the batches of all
relations are visited in a seeded random order. For every batch the
:class:`~hgt_cluster_kedro.graph.sampler.NeighborSampler` link mode draws
``num_neg`` negatives per side (a negative item for each user and a negative user
for each item; ``neg_mode="uniform"`` or ``"in_batch"``) and the ``len(fanouts)``
-hop neighbourhood of every endpoint; the encoder embeds the endpoints from these
subgraphs. Supervision edges stay in the message-passing graph (as in the
original system and in PyG's ``LinkNeighborLoader`` by default).

**Ranks.** With ``world_size > 1`` (``torch.distributed`` initialised by the
caller, e.g. :mod:`~hgt_cluster_kedro.training.hgt_worker` under torchrun) the
model is wrapped in ``DistributedDataParallel`` (gloo on CPU, nccl on GPU) and
every rank trains on its own shard of the positives: by default every
``world_size``-th edge of a seeded permutation of each relation; with
``seed_users`` (e.g. the users owned by the rank's graph partitions) the edges of
those users. All ranks run the same number of steps per epoch (the largest shard;
smaller shards wrap around), so the gradient all-reduce never waits for a rank
that has finished.

**Randomness.** Every random step is seeded from ``config.seed``: the model
initialisation, the shards, the per-epoch shuffles (``(seed, epoch, rank)``), and
at every step the sampler's stream and the torch RNG (dropout) are re-seeded from
``(seed, rank, step)``. The global step is therefore the whole random state: a
run resumed from a checkpoint replays exactly the batches, negatives and dropout
masks of the uninterrupted run.

**Checkpoints.** With ``checkpoint_dir``, rank 0 writes
``hgt-stepNNNNNNNN.safetensors`` every ``checkpoint_every`` steps, at the end of
every epoch and when training stops (model, optimiser, best model so far, step,
epoch, partial epoch sums, history, early-stopping state, plus rank 0's sampler
and torch RNG states for inspection), atomically (temporary file +
``os.replace``, no pickle) through :mod:`~hgt_cluster_kedro.training.checkpoint`;
the other ranks wait at a barrier. With ``resume=True`` a run starts from the
latest checkpoint of the directory (all ranks must see the same one: use a shared
file system for several machines; its settings must match the run's except
``epochs``, ``max_steps``, ``patience``, the validation settings,
``checkpoint_every`` and the number of processes, else ``ValueError``); with
``resume=False`` old checkpoints of the directory are deleted and training starts
over. A finished run resumed with the same settings returns at once.

**Validation.** After every epoch rank 0 computes the validation loss (the same
loss on the held-out pairs, uniform negatives, fixed seed) and Recall@K: users
of the validation pairs and all items are embedded (``eval_fanouts``, fixed
seed), every item the user has in the train graph's target relations is excluded,
and ``Recall@K = |top-K ∩ held-out items| / |held-out items|`` is averaged over
users (exact top-K). Early stopping watches Recall@K (``patience`` epochs
without improvement); with ``restore_best`` the returned model holds the weights
of the best epoch.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor
from tqdm.auto import tqdm

from ..graph.artifact import GraphArtifact
from ..graph.csr import EdgeType, HeteroCSR
from ..graph.sampler import NeighborSampler
from ..models.hgt import HGTEncoder
from ..models.losses import symmetric_cosine_loss
from .checkpoint import (
    atomic_write,
    changed_keys,
    flatten_state,
    load_checked,
    save_checkpoint,
    strip_prefix,
    unflatten_state,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_PREFIX",
    "HGTTrainConfig",
    "JointSOMConfig",
    "embed_all",
    "latest_hgt_checkpoint",
    "load_hgt",
    "recall_at_k",
    "resolve_fanouts",
    "save_hgt",
    "train_hgt",
]

CHECKPOINT_PREFIX = "hgt-step"
FAIL_ENV = "HGT_FAIL_AT_STEP"
_FORMAT = "hgt_checkpoint"
_MODEL_FORMAT = "hgt_model"
_VERSION = 1
# Settings that may differ between a checkpoint and the run resuming from it
# (they extend or monitor training); any other difference is an error.
_RESUMABLE_KEYS = (
    "epochs",
    "max_steps",
    "patience",
    "val_k",
    "val_max_users",
    "val_batch_size",
    "eval_fanouts",
    "restore_best",
    "checkpoint_every",
    "world_size",
)

Fanouts = list[int] | dict[str, list[int]]


class JointSOMConfig(BaseModel):
    """The joint SOM of the original HGT + SOM method (see
    :class:`~hgt_cluster_kedro.models.embedding_som.EmbeddingSOM`).

    Args:
        num_centres: SOM centres (= user clusters).
        lr: initial learning rate of the centre updates.
        radius: initial neighbourhood radius in embedding space.
        decay_steps: ``T`` of the inverse-time decay of ``lr`` and ``radius``.
        weight: weight of the SOM loss (squared distance of each user
            embedding to its winner) in the encoder's loss (0.3: measured on a
            planted graph, the SOM loss falls while Recall@K stays within 0.03 of
            the SOM-free model; 1.0 shrank the SOM loss 6x but cost a third of
            the Recall@K).
        link_weight: weight of the link loss, which keeps the embeddings from
            collapsing onto the centres.
        init_users: users embedded (seeded sample) to pick the initial centres
            from.
    """

    model_config = ConfigDict(extra="forbid")

    num_centres: int = Field(default=10, ge=2)
    lr: float = Field(default=0.1, gt=0.0, le=1.0)
    radius: float = Field(default=0.5, gt=0.0)
    decay_steps: float = Field(default=1000.0, gt=0.0)
    weight: float = Field(default=0.3, ge=0.0)
    link_weight: float = Field(default=1.0, ge=0.0)
    init_users: int = Field(default=4096, gt=0)


class HGTTrainConfig(BaseModel):
    """Hyper-parameters of :func:`train_hgt`.

    Args:
        hidden: embedding size (multiple of ``heads``).
        heads: attention heads.
        layers: HGT layers (use as many as sampled hops).
        dropout: dropout probability.
        id_embedding_types: node types with an id embedding besides features
            (``None``: only types without features; ``"all"``; or a list).
        use_features: feed the graph's node features to the input layer
            (``False``: id embeddings only; every type then gets one).
        fanouts: neighbours per hop, one list for every edge type or a dict
            ``{relation: list}`` keyed by relation name (``rev_*`` names for the
            reverse twins) or ``"src__rel__dst"``; missing relations are not
            sampled.
        eval_fanouts: fanouts for validation embeddings (``None``: ``fanouts``;
            ``[-1, -1]``: every neighbour, exact).
        num_neg: negatives per side per positive.
        neg_mode: ``"uniform"`` (uniform over all nodes, known positives
            re-drawn) or ``"in_batch"`` (endpoints of other positives).
        scale: scale ``s`` of the cosine loss.
        lr: AdamW learning rate.
        weight_decay: AdamW (decoupled) weight decay.
        batch_size: positives per batch (per rank).
        epochs: epochs (a resumed run continues up to it).
        max_steps: stop after this many optimiser steps in total (``None``: no cap).
        seed: seed of every random step.
        device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
        num_threads: ``torch.set_num_threads`` during training (restored after).
        checkpoint_every: write a checkpoint every this many steps (0: only at
            epoch ends and at the end); needs ``checkpoint_dir``.
        checkpoint_dir: checkpoint directory (``None``: no checkpoints).
        keep_checkpoints: checkpoints kept (0: all).
        resume: continue from the latest checkpoint (else delete them, start over).
        patience: epochs without validation Recall@K improvement before stopping
            (``None``: never stop early).
        val_k: K of the validation Recall@K.
        val_max_users: evaluate Recall@K on at most this many validation users
            (seeded sample; ``None``: all).
        val_batch_size: batch size of validation sampling / embedding.
        restore_best: return the weights of the best validation epoch.
        compile: ``torch.compile`` the model (dynamic shapes).
        progress: tqdm progress bar (rank 0).
        log_every: log throughput and loss every this many steps (0: never).
        fail_at_step: test hook: the worker of rank ``fail_rank`` calls
            ``os._exit(1)`` when it is about to run this global step, once (a
            marker file in ``checkpoint_dir`` records it); the environment
            variable ``HGT_FAIL_AT_STEP`` does the same.
        fail_rank: rank that fails (``None``: the last rank).
        som: train the joint SOM with the encoder (:class:`JointSOMConfig`;
            ``None``: link loss only).
        init_model: an HGT model file (:func:`save_hgt`) to start from instead
            of a random initialisation (e.g. the self-supervised model that the
            joint SOM fine-tunes); its architecture must match.
    """

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(default=64, gt=0)
    heads: int = Field(default=2, gt=0)
    layers: int = Field(default=2, ge=1)
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    id_embedding_types: Literal["all"] | list[str] | None = None
    use_features: bool = True
    fanouts: Fanouts = Field(default_factory=lambda: [4, 2])
    eval_fanouts: Fanouts | None = None
    num_neg: int = Field(default=2, ge=1)
    neg_mode: Literal["uniform", "in_batch"] = "uniform"
    scale: float = Field(default=2.0, gt=0.0)
    lr: float = Field(default=1e-3, gt=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    batch_size: int = Field(default=512, gt=0)
    epochs: int = Field(default=10, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    seed: int = Field(default=0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(default=None, gt=0)
    checkpoint_every: int = Field(default=0, ge=0)
    checkpoint_dir: str | None = None
    keep_checkpoints: int = Field(default=2, ge=0)
    resume: bool = True
    patience: int | None = Field(default=3, ge=1)
    val_k: int = Field(default=20, gt=0)
    val_max_users: int | None = Field(default=None, gt=0)
    val_batch_size: int = Field(default=1024, gt=0)
    restore_best: bool = True
    compile: bool = False
    progress: bool = True
    log_every: int = Field(default=50, ge=0)
    fail_at_step: int | None = Field(default=None, ge=0)
    fail_rank: int | None = Field(default=None, ge=0)
    som: JointSOMConfig | None = None
    init_model: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HGTTrainConfig:
        if self.hidden % self.heads:
            raise ValueError(
                f"hidden={self.hidden} must be divisible by heads={self.heads}"
            )
        if self.checkpoint_every and self.checkpoint_dir is None:
            raise ValueError(
                f"checkpoint_every={self.checkpoint_every} needs a checkpoint_dir"
            )
        if self.fail_at_step is not None and self.checkpoint_dir is None:
            raise ValueError("fail_at_step needs a checkpoint_dir (for its marker)")
        for name in ("fanouts", "eval_fanouts"):
            value = getattr(self, name)
            lists = value.values() if isinstance(value, dict) else [value]
            for fan in lists:
                if fan is None:
                    continue
                if not fan or any(k < -1 for k in fan):
                    raise ValueError(
                        f"{name} must be non-empty lists of ints >= -1 (got {value})"
                    )
        return self


# --------------------------------------------------------------------- helpers


def _derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (NumPy ``SeedSequence``)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(
        1, dtype=np.uint64
    )
    return int(state[0] >> np.uint64(1))


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def resolve_fanouts(
    csr: HeteroCSR, fanouts: Fanouts
) -> list[int] | dict[EdgeType, list[int]]:
    """Sampler fanouts from a config value: a list, or a dict keyed by relation
    name (``"follow_note"``, ``"rev_follow_note"``) or ``"src__rel__dst"``.

    Args:
        csr: the graph (its edge types resolve the names).
        fanouts: list of ints per hop, or dict of such lists.
    """
    if isinstance(fanouts, Mapping):
        out: dict[EdgeType, list[int]] = {}
        for key, value in fanouts.items():
            if isinstance(key, tuple):
                et = tuple(key)
            elif "__" in key:
                et = tuple(key.split("__"))
            else:
                matches = [et for et in csr.edge_types if et[1] == key]
                if len(matches) != 1:
                    raise ValueError(
                        f"fanouts: relation {key!r} is "
                        f"{'ambiguous' if matches else 'unknown'} (edge types: "
                        f"{csr.edge_types})"
                    )
                et = matches[0]
            if et not in csr.indptr:
                raise ValueError(
                    f"fanouts: edge type {key!r} is unknown (edge types: "
                    f"{csr.edge_types})"
                )
            out[et] = [int(k) for k in value]  # type: ignore[index]
        return out
    return [int(k) for k in fanouts]


def _num_hops(fanouts: list[int] | dict[EdgeType, list[int]]) -> int:
    if isinstance(fanouts, dict):
        return len(next(iter(fanouts.values())))
    return len(fanouts)


def _attach_x(data: Any, features: Mapping[str, Tensor]) -> None:
    for t, x in features.items():
        if t in data.node_types:
            data[t].x = x.index_select(0, data[t].n_id)


def _unwrap(model: torch.nn.Module) -> HGTEncoder:
    inner = getattr(model, "_orig_mod", model)  # torch.compile
    inner = getattr(inner, "module", inner)  # DistributedDataParallel
    if not isinstance(inner, HGTEncoder):
        raise ValueError(f"model must be an HGTEncoder (got {type(inner).__name__})")
    return inner


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (``ru_maxrss``)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def _check_pairs(
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
    users = torch.as_tensor(np.asarray(pairs[0])).long().view(-1)
    items = torch.as_tensor(np.asarray(pairs[1])).long().view(-1)
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


# ------------------------------------------------------------- model files


def save_hgt(
    model: torch.nn.Module, path: str | Path, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write the encoder's ``state_dict`` (safetensors, atomic) with its
    constructor config in the header, so :func:`load_hgt` rebuilds it.

    Args:
        model: an :class:`HGTEncoder` (DDP / compiled wrappers are unwrapped).
        path: destination ``.safetensors`` file.
        extra: JSON-serialisable metadata stored alongside (e.g. history summary).
    """
    from safetensors.torch import save_file

    inner = _unwrap(model)
    tensors = {
        k: v.detach().to("cpu").contiguous() for k, v in inner.state_dict().items()
    }
    header = {
        "format": _MODEL_FORMAT,
        "version": str(_VERSION),
        "config": json.dumps(inner.config),
        "extra": json.dumps(dict(extra or {})),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), header))


def _model_header(path: str | Path, name: str) -> dict[str, str]:
    """The header of an HGT model file written by :func:`save_hgt`; ``name`` is
    the argument named in the errors."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise ValueError(f"{name} {str(path)!r} is not a file")
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    if header.get("format") != _MODEL_FORMAT:
        raise ValueError(f"{name} {str(path)!r} is not an HGT model file")
    return header


def load_hgt(path: str | Path, device: str | torch.device = "cpu") -> HGTEncoder:
    """Rebuild the encoder written by :func:`save_hgt` (in eval mode).

    Args:
        path: the ``.safetensors`` file.
        device: where to put the model.
    """
    from safetensors.torch import load_file

    header = _model_header(path, "path")
    model = HGTEncoder.from_config(json.loads(header["config"]))
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()


# ---------------------------------------------------------------- inference


@torch.no_grad()
def _embed(
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
    bar = tqdm(
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
            _attach_x(data, features)
            emb = model(data.to(device))[node_type][: ids.numel()]
            out[start : start + ids.numel()] = emb.float().cpu()
            bar.update(ids.numel())
    finally:
        bar.close()
        model.train(was_training)
    return out


def embed_all(
    model: torch.nn.Module,
    graph: GraphArtifact,
    node_type: str,
    *,
    batch_size: int = 1024,
    fanouts: Fanouts | None = None,
    device: str | torch.device = "cpu",
    nodes: Any = None,
    seed: int = 0,
    progress: bool = True,
) -> np.ndarray:
    """Embed every node (or ``nodes``) of ``node_type`` in batches.

    Each batch samples the neighbourhood of its nodes on ``graph.csr`` (with as
    many hops as ``fanouts`` lists) and keeps the seeds' rows.

    Args:
        model: a trained :class:`HGTEncoder` (wrappers are unwrapped).
        graph: the graph artifact the model was trained on (features, CSR).
        node_type: node type to embed.
        batch_size: seed nodes per batch.
        fanouts: neighbours per hop (see :func:`resolve_fanouts`); ``None`` takes
            every neighbour over ``model.num_layers`` hops (exact, deterministic;
            pass fanouts on graphs with hubs).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        nodes: ids to embed (default: all ``0 .. n-1``).
        seed: seed of the sampler (sampled fanouts).
        progress: tqdm progress bar (nodes/s).

    Returns:
        ``float32 [len(nodes), hidden]`` L2-normalised embeddings.
    """
    inner = _unwrap(model)
    if node_type not in graph.csr.num_nodes:
        raise ValueError(
            f"unknown node_type {node_type!r} (known: {graph.csr.node_types})"
        )
    if int(batch_size) <= 0:
        raise ValueError(f"batch_size must be > 0 (got {batch_size})")
    n = graph.csr.num_nodes[node_type]
    ids = torch.arange(n) if nodes is None else torch.as_tensor(nodes).long().view(-1)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
        raise ValueError(f"nodes must lie in [0, {n}) for node type {node_type!r}")
    fan = (
        [-1] * inner.num_layers
        if fanouts is None
        else resolve_fanouts(graph.csr, fanouts)
    )
    dev = _resolve_device(device)
    inner.to(dev)
    start = time.perf_counter()
    out = _embed(
        inner,
        graph.csr,
        {t: x.float() for t, x in graph.features.items()},
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


def recall_at_k(
    user_emb: Tensor,
    item_emb: Tensor,
    users: Tensor,
    items: Tensor,
    k: int,
    *,
    exclude: Sequence[tuple[Tensor, Tensor]] = (),
    chunk: int = 1024,
) -> float:
    """Mean Recall@K of exact top-K retrieval by dot product.

    Args:
        user_emb: ``[U, d]`` embeddings of the distinct users of ``users``, row
            ``i`` for the ``i``-th smallest user id.
        item_emb: ``[num_items, d]`` embeddings of every item.
        users: held-out pairs' user ids.
        items: held-out pairs' item ids.
        k: cut-off.
        exclude: ``(indptr, indices)`` CSRs (rows = user ids) of items never to
            recommend (the user's train items).
        chunk: users scored at once.

    Returns:
        ``mean_u |top-K(u) ∩ held-out(u)| / |held-out(u)|``.
    """
    uniq, inv = torch.unique(users, return_inverse=True)
    if user_emb.shape[0] != uniq.numel():
        raise ValueError(
            f"user_emb has {user_emb.shape[0]} rows for {uniq.numel()} distinct users"
        )
    num_items = item_emb.shape[0]
    k = min(int(k), num_items)
    held = torch.unique(inv * num_items + items)  # distinct (user row, item) keys
    n_held = torch.bincount(torch.div(held, num_items, rounding_mode="floor"))
    n_held = torch.nn.functional.pad(n_held, (0, uniq.numel() - n_held.numel()))
    hits = torch.zeros(uniq.numel())
    for start in range(0, uniq.numel(), chunk):
        rows = torch.arange(start, min(start + chunk, uniq.numel()))
        scores = user_emb[rows] @ item_emb.T
        for indptr, indices in exclude:
            u = uniq[rows]
            begin = indptr[u]
            deg = indptr[u + 1] - begin
            total = int(deg.sum())
            if total == 0:
                continue
            r = torch.repeat_interleave(torch.arange(rows.numel()), deg)
            shift = torch.cumsum(deg, 0) - deg - begin
            pos = torch.arange(total) - torch.repeat_interleave(shift, deg)
            scores[r, indices[pos].long()] = -math.inf
        top = scores.topk(k, dim=1).indices
        keys = rows.unsqueeze(1) * num_items + top
        hits[rows] = torch.isin(keys, held).sum(1).float()
    return float((hits / n_held.clamp(min=1).float()).mean())


# ------------------------------------------------------------- collectives


def _collective_device(device: torch.device) -> torch.device:
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return device
    return torch.device("cpu")


def _all_reduce(values: list[float], op: Any, device: torch.device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device(device))
    dist.all_reduce(t, op=op)
    return t.cpu().tolist()


def _broadcast(values: list[float], device: torch.device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device(device))
    dist.broadcast(t, src=0)
    return t.cpu().tolist()


@dataclass
class _CommTimer:
    """State of the DDP comm hook: seconds from all-reduce launch to completion
    (per bucket, summed; it overlaps the backward pass)."""

    world_size: int
    seconds: float = 0.0


def _timed_allreduce_hook(state: _CommTimer, bucket):  # noqa: ANN001, ANN202
    # No annotations: DDP checks them against dist.GradBucket / Future[Tensor],
    # which the postponed (string) annotations of this module would fail.
    start = time.perf_counter()
    buf = bucket.buffer().div_(state.world_size)
    fut = dist.all_reduce(buf, async_op=True).get_future()

    def done(f: torch.futures.Future) -> Tensor:
        state.seconds += time.perf_counter() - start
        return f.value()[0]

    return fut.then(done)


# ------------------------------------------------------------- checkpoints


def _list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.glob(f"{CHECKPOINT_PREFIX}*.safetensors"):
        digits = p.name[len(CHECKPOINT_PREFIX) : -len(".safetensors")]
        if digits.isdigit() and p.is_file():
            found.append((int(digits), p))
    return sorted(found)


def latest_hgt_checkpoint(directory: str | Path) -> tuple[int, Path] | None:
    """``(step, path)`` of the latest HGT checkpoint in ``directory``, or None."""
    found = _list_checkpoints(directory)
    return found[-1] if found else None


@dataclass
class _State:
    """Everything that defines where training is (saved in checkpoints)."""

    step: int = 0
    epoch: int = 0  # completed epochs
    epoch_step: int = 0  # steps done in the current epoch
    loss_sum: float = 0.0  # current epoch, this rank (global after a restore)
    loss_n: float = 0.0
    best_metric: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stop_reason: str | None = None
    best_state: dict[str, Tensor] | None = None
    history: dict[str, Any] = field(default_factory=dict)


def _new_history(world_size: int) -> dict[str, Any]:
    return {
        "epoch": [],
        "train_loss": [],
        "val_loss": [],
        "val_recall": [],
        "val_som_loss": [],
        "seconds": [],
        "val_seconds": [],
        "seeds_per_s": [],
        "edges_per_s": [],
        "sample_s": [],
        "compute_s": [],
        "allreduce_s": [],
        "peak_rss_mb": [],
        "peak_cuda_mb": [],
        "steps": [],
        "epoch_fraction": [],
        "train_seconds": 0.0,  # rank 0's sampling + step time, all sessions
        "world_size": world_size,
        "resumed_from_step": [],
        "restarts": [],
        "best_epoch": 0,
        "best_val_recall": None,
        "stop_reason": None,
        "total_steps": 0,
    }


def _save(
    directory: Path,
    state: _State,
    *,
    model: HGTEncoder,
    optimizer: torch.optim.Optimizer,
    sampler: NeighborSampler,
    fingerprint: dict[str, Any],
    global_loss: tuple[float, float],
    keep: int,
) -> Path:
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    opt_tensors, opt_skeleton = flatten_state(optimizer.state_dict(), prefix="optim/")
    tensors.update(opt_tensors)
    if state.best_state is not None:
        tensors.update({f"best/{k}": v for k, v in state.best_state.items()})
    tensors["rng/torch"] = torch.get_rng_state()
    meta = {
        "format": _FORMAT,
        "version": _VERSION,
        "step": state.step,
        "epoch": state.epoch,
        "epoch_step": state.epoch_step,
        "loss_sum": global_loss[0],
        "loss_n": global_loss[1],
        "best_metric": None if math.isinf(state.best_metric) else state.best_metric,
        "best_epoch": state.best_epoch,
        "bad_epochs": state.bad_epochs,
        "stop_reason": state.stop_reason,
        "history": state.history,
        "optimizer": opt_skeleton,
        "sampler_rank0": sampler.state_dict(),
        "rng": "per-step: sampler and torch RNG re-seeded from (seed, rank, step)",
        "config": fingerprint,
    }
    path = save_checkpoint(
        directory / f"{CHECKPOINT_PREFIX}{state.step:08d}.safetensors", tensors, meta
    )
    if keep > 0:
        for _, old in _list_checkpoints(directory)[:-keep]:
            old.unlink(missing_ok=True)
    logger.info("Saved checkpoint %s", path)
    return path


def _restore(
    path: Path,
    *,
    model: HGTEncoder,
    optimizer: torch.optim.Optimizer,
    fingerprint: dict[str, Any],
    rank: int,
) -> _State:
    tensors, meta = load_checked(path, _FORMAT, _VERSION, "checkpoint")
    stored = meta["config"]
    changed = changed_keys(stored, fingerprint)
    fatal = [k for k in changed if k not in _RESUMABLE_KEYS]
    if fatal:
        detail = ", ".join(
            f"{k}: {stored.get(k)!r} -> {fingerprint.get(k)!r}" for k in fatal
        )
        raise ValueError(
            f"checkpoint {str(path)!r} was written with other settings ({detail}); "
            "use another checkpoint_dir or resume=False"
        )
    if changed and rank == 0:
        logger.warning(
            "Resuming from %s with changed settings %s",
            path,
            {k: (stored.get(k), fingerprint.get(k)) for k in changed},
        )
    model.load_state_dict(strip_prefix(tensors, "model/"))
    optimizer.load_state_dict(unflatten_state(tensors, meta["optimizer"]))
    best = strip_prefix(tensors, "best/")
    state = _State(
        step=int(meta["step"]),
        epoch=int(meta["epoch"]),
        epoch_step=int(meta["epoch_step"]),
        loss_sum=float(meta["loss_sum"]) if rank == 0 else 0.0,
        loss_n=float(meta["loss_n"]) if rank == 0 else 0.0,
        best_metric=(
            -math.inf if meta["best_metric"] is None else float(meta["best_metric"])
        ),
        best_epoch=int(meta["best_epoch"]),
        bad_epochs=int(meta["bad_epochs"]),
        stop_reason=meta["stop_reason"],
        best_state=best or None,
        history=meta["history"],
    )
    return state


def _maybe_fail(
    cfg: HGTTrainConfig, step: int, rank: int, world_size: int, at: int | None
) -> None:
    """Test hook: exit this process (``os._exit(1)``) once at step ``at``."""
    if at is None or step != at:
        return
    fail_rank = world_size - 1 if cfg.fail_rank is None else cfg.fail_rank
    if rank != fail_rank:
        return
    marker = Path(cfg.checkpoint_dir or ".") / f".fail_at_step_{at}.marker"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # failed once already
    os.write(fd, f"rank {rank} pid {os.getpid()} step {step}\n".encode())
    os.close(fd)
    logger.error("fail_at_step: rank %d exits at step %d (test hook)", rank, step)
    for h in logging.getLogger().handlers:
        h.flush()
    sys.stderr.flush()
    os._exit(1)


# ------------------------------------------------------------------ training


def _target_edges(graph: GraphArtifact) -> list[tuple[EdgeType, Tensor, Tensor]]:
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


def _shard(
    edges: list[tuple[EdgeType, Tensor, Tensor]],
    *,
    rank: int,
    world_size: int,
    seed: int,
    seed_users: Tensor | None,
) -> list[tuple[EdgeType, Tensor, Tensor]]:
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


def _epoch_plan(
    local: list[tuple[EdgeType, Tensor, Tensor]],
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


def _count_batches(
    local: list[tuple[EdgeType, Tensor, Tensor]], batch_size: int, min_batch: int
) -> int:
    total = 0
    for _, src, _ in local:
        n = src.numel()
        if n:
            total += max(1, min(-(-n // batch_size), max(1, n // min_batch)))
    return total


#: Settings that never enter a checkpoint's configuration (how, not what).
_NON_IDENTITY_KEYS = (
    "progress",
    "log_every",
    "fail_at_step",
    "fail_rank",
    "checkpoint_dir",
    "resume",
    "num_threads",
    "keep_checkpoints",
    "device",
    "compile",
)


def run_identity(cfg: HGTTrainConfig) -> dict[str, Any]:
    """The settings that decide whether a run can resume another one's
    checkpoints: everything but how it runs and what may change on resume."""
    data = cfg.model_dump(mode="json")
    for key in (*_NON_IDENTITY_KEYS, *_RESUMABLE_KEYS):
        data.pop(key, None)
    return data


def _fingerprint(
    cfg: HGTTrainConfig, model: HGTEncoder, world_size: int, num_edges: int
) -> dict[str, Any]:
    data = cfg.model_dump(mode="json")
    for key in _NON_IDENTITY_KEYS:
        data.pop(key, None)
    data["model"] = model.config
    data["world_size"] = world_size
    data["num_train_edges"] = num_edges
    return json.loads(json.dumps(data))


@torch.no_grad()
def _validate(
    model: HGTEncoder,
    graph: GraphArtifact,
    features: Mapping[str, Tensor],
    val: tuple[Tensor, Tensor],
    cfg: HGTTrainConfig,
    *,
    fanouts: list[int] | dict[EdgeType, list[int]],
    eval_fanouts: list[int] | dict[EdgeType, list[int]],
    device: torch.device,
) -> tuple[float, float, float]:
    """``(validation loss, Recall@K, SOM loss)`` on rank 0 (SOM loss: mean
    squared distance of the validation users to their winning centre, NaN
    without a joint SOM)."""
    csr, schema = graph.csr, graph.schema
    user_t, item_t = schema.user_type, schema.item_type
    et = schema.edge_type(schema.target_relations[0])
    users, items = val
    was_training = model.training
    model.eval()
    try:
        sampler = NeighborSampler(csr, fanouts, seed=_derive_seed(cfg.seed, 101))
        loss_sum, count = 0.0, 0
        for start in range(0, users.numel(), cfg.val_batch_size):
            u = users[start : start + cfg.val_batch_size]
            i = items[start : start + cfg.val_batch_size]
            data = sampler.sample_links(et, u, i, num_neg=cfg.num_neg)
            _attach_x(data, features)
            loss, _ = _batch_loss(model, data.to(device), et, cfg.scale)
            loss_sum += float(loss) * u.numel()
            count += u.numel()
        val_loss = loss_sum / max(count, 1)

        eval_users = torch.unique(users)
        if cfg.val_max_users is not None and eval_users.numel() > cfg.val_max_users:
            rng = np.random.default_rng([cfg.seed, 103])
            pick = rng.choice(eval_users.numel(), cfg.val_max_users, replace=False)
            eval_users = eval_users[torch.from_numpy(np.sort(pick))]
            keep = torch.isin(users, eval_users)
            users, items = users[keep], items[keep]
        seed = _derive_seed(cfg.seed, 102)
        kwargs = {
            "fanouts": eval_fanouts,
            "batch_size": cfg.val_batch_size,
            "device": device,
            "seed": seed,
            "progress": False,
        }
        user_emb = _embed(model, csr, features, user_t, eval_users, **kwargs)
        item_ids = torch.arange(csr.num_nodes[item_t])
        item_emb = _embed(model, csr, features, item_t, item_ids, **kwargs)
        exclude = [
            (csr.indptr[schema.edge_type(r)], csr.indices[schema.edge_type(r)])
            for r in schema.target_relations
        ]
        recall = recall_at_k(
            user_emb, item_emb, users, items, cfg.val_k, exclude=exclude
        )
        som_loss = math.nan
        if model.som is not None and bool(model.som.initialised):
            som_loss = float(model.som.loss(user_emb.to(device)))
    finally:
        model.train(was_training)
    return val_loss, recall, som_loss


def _batch_loss(
    model: torch.nn.Module, data: Any, et: EdgeType, scale: float
) -> tuple[Tensor, Tensor]:
    """``(link loss, embeddings of the positives' users)`` of a link batch."""
    emb = model(data)
    eu, ei = emb[et[0]], emb[et[2]]
    users = eu.index_select(0, data.src_index)
    loss = symmetric_cosine_loss(
        users,
        ei.index_select(0, data.dst_index),
        eu[data.src_neg_index],
        ei[data.dst_neg_index],
        scale=scale,
        u_neg_mask=data.src_neg_mask,
        v_neg_mask=data.dst_neg_mask,
    )
    return loss, users


def _load_init(model: HGTEncoder, path: str) -> None:
    """Load the encoder weights of the model file ``path`` (``init_model``)."""
    from safetensors.torch import load_file

    stored = json.loads(_model_header(path, "init_model")["config"])
    ours = model.config
    keys = ("node_types", "edge_types", "num_nodes", "feature_dims", "hidden")
    keys += ("heads", "num_layers", "id_embedding_types")
    differ = {k: (stored.get(k), ours[k]) for k in keys if stored.get(k) != ours[k]}
    if differ:
        raise ValueError(
            f"init_model {path!r} has another architecture: "
            + ", ".join(
                f"{k}: {a!r} (file) vs {b!r} (run)" for k, (a, b) in differ.items()
            )
        )
    tensors = {k: v for k, v in load_file(path).items() if not k.startswith("som.")}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.startswith("som.")]
    if missing or unexpected:
        raise ValueError(
            f"init_model {path!r} does not fit the encoder (missing {missing}, "
            f"unexpected {unexpected})"
        )
    logger.info("Initialised the encoder from %s", path)


def _init_som(
    model: HGTEncoder,
    graph: GraphArtifact,
    features: Mapping[str, Tensor],
    cfg: HGTTrainConfig,
    *,
    fanouts: list[int] | dict[EdgeType, list[int]],
    device: torch.device,
    distributed: bool,
) -> None:
    """Pick the joint SOM's initial centres among embedded users (seeded; rank
    0's choice is broadcast so every rank starts from the same map)."""
    som = model.som
    if som is None or bool(som.initialised) or cfg.som is None:
        return
    user_t = graph.schema.user_type
    n = graph.csr.num_nodes[user_t]
    gen = torch.Generator().manual_seed(_derive_seed(cfg.seed, 104))
    sample = torch.randperm(n, generator=gen)[: min(n, cfg.som.init_users)]
    z = _embed(
        model,
        graph.csr,
        features,
        user_t,
        torch.sort(sample).values,
        fanouts=fanouts,
        batch_size=cfg.val_batch_size,
        device=device,
        seed=_derive_seed(cfg.seed, 105),
        progress=False,
    )
    som.initialise(z.to(device), seed=_derive_seed(cfg.seed, 106))
    if distributed:
        dist.broadcast(som.centres, src=0)
    logger.info(
        "Joint SOM: %d centres initialised from %d embedded users",
        som.num_centres,
        z.shape[0],
    )


def _sum_over_ranks(t: Tensor) -> Tensor:
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def train_hgt(
    graph: GraphArtifact,
    val_pairs: Any,
    config: HGTTrainConfig | Mapping[str, Any],
    *,
    rank: int = 0,
    world_size: int = 1,
    seed_users: Any = None,
) -> tuple[HGTEncoder, dict[str, Any]]:
    """Train the HGT encoder (Hu et al., WWW 2020, arXiv 2003.01332) on ``graph``.

    See the module docstring for data, sharding, randomness, checkpoints and
    validation. With ``world_size > 1`` every rank calls this function with the
    same arguments (except ``rank`` / ``seed_users``) after
    ``torch.distributed.init_process_group``.

    Args:
        graph: the graph artifact (train-only message-passing graph, features).
        val_pairs: held-out ``(users, items)`` id arrays (contiguous ids), a
            DataFrame with ``user`` / ``item`` columns, or ``None`` (no validation,
            no early stopping).
        config: :class:`HGTTrainConfig` or a dict of its fields.
        rank: this process's rank.
        world_size: number of processes.
        seed_users: user ids whose positive edges this rank trains on (e.g. the
            users of its graph partitions); default: a deterministic split.

    Returns:
        ``(model, history)``: the (unwrapped) encoder on the training device and a
        JSON-serialisable history with per-epoch lists ``epoch``, ``train_loss``,
        ``val_loss``, ``val_recall``, ``seconds`` (training), ``val_seconds``,
        ``seeds_per_s`` / ``edges_per_s`` (all ranks), ``sample_s``,
        ``compute_s`` (forward + backward + step), ``allreduce_s`` (DDP bucket
        all-reduce time, overlapping backward; summed over ranks like the other
        timers), ``peak_rss_mb`` (max over ranks), ``peak_cuda_mb``, ``steps``;
        and ``resumed_from_step`` / ``restarts`` (one entry per resume),
        ``best_epoch``, ``best_val_recall``, ``stop_reason``, ``total_steps``,
        ``world_size``.
    """
    cfg = (
        config
        if isinstance(config, HGTTrainConfig)
        else HGTTrainConfig.model_validate(dict(config))
    )
    if not isinstance(graph, GraphArtifact):
        raise ValueError(f"graph must be a GraphArtifact (got {type(graph).__name__})")
    if int(world_size) < 1 or not 0 <= int(rank) < int(world_size):
        raise ValueError(
            f"rank must be in [0, world_size) and world_size >= 1 (got rank={rank}, "
            f"world_size={world_size})"
        )
    rank, world_size = int(rank), int(world_size)
    distributed = world_size > 1
    if distributed and not (
        dist.is_initialized() and dist.get_world_size() == world_size
    ):
        raise ValueError(
            f"world_size={world_size} needs an initialised torch.distributed process "
            "group of that size"
        )
    env_fail = os.environ.get(FAIL_ENV)
    fail_at = int(env_fail) if env_fail else cfg.fail_at_step
    if fail_at is not None and cfg.checkpoint_dir is None:
        raise ValueError(f"{FAIL_ENV}={env_fail} needs config.checkpoint_dir")

    csr, schema = graph.csr, graph.schema
    device = _resolve_device(cfg.device)
    fanouts = resolve_fanouts(csr, cfg.fanouts)
    eval_fanouts = (
        fanouts if cfg.eval_fanouts is None else resolve_fanouts(csr, cfg.eval_fanouts)
    )
    if _num_hops(fanouts) != cfg.layers:
        logger.warning(
            "fanouts sample %d hops for %d HGT layers", _num_hops(fanouts), cfg.layers
        )
    val = _check_pairs(
        val_pairs, csr.num_nodes[schema.user_type], csr.num_nodes[schema.item_type]
    )
    features = {t: x.float().contiguous() for t, x in graph.features.items()}
    user_seeds = None
    if seed_users is not None:
        user_seeds = torch.as_tensor(np.asarray(seed_users)).long().view(-1)

    old_threads = torch.get_num_threads()
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_derive_seed(cfg.seed, 1))
            model = HGTEncoder(
                (csr.node_types, csr.edge_types),
                csr.num_nodes,
                {t: int(x.shape[1]) for t, x in features.items()}
                if cfg.use_features
                else {},
                hidden=cfg.hidden,
                heads=cfg.heads,
                num_layers=cfg.layers,
                dropout=cfg.dropout,
                id_embedding_types=cfg.id_embedding_types,
                som=None
                if cfg.som is None
                else {
                    "num_centres": cfg.som.num_centres,
                    "lr": cfg.som.lr,
                    "radius": cfg.som.radius,
                    "decay_steps": cfg.som.decay_steps,
                },
            )
        if cfg.init_model is not None:
            _load_init(model, cfg.init_model)
        model.to(device)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )

        edges = _target_edges(graph)
        local = _shard(
            edges,
            rank=rank,
            world_size=world_size,
            seed=cfg.seed,
            seed_users=user_seeds,
        )
        min_batch = cfg.num_neg + 1 if cfg.neg_mode == "in_batch" else 1
        local_batches = _count_batches(local, cfg.batch_size, min_batch)
        steps_per_epoch = local_batches
        if distributed:
            steps_per_epoch = int(
                _all_reduce([local_batches], dist.ReduceOp.MAX, device)[0]
            )
        num_edges = sum(int(s.numel()) for _, s, _ in edges)
        fingerprint = _fingerprint(cfg, model, world_size, num_edges)

        state = _State(history=_new_history(world_size))
        ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
        if ckpt_dir is not None:
            state = _resume_or_reset(
                ckpt_dir,
                cfg,
                state,
                model=model,
                optimizer=optimizer,
                fingerprint=fingerprint,
                rank=rank,
                device=device,
                distributed=distributed,
            )
        state.epoch_step = min(state.epoch_step, steps_per_epoch)
        _init_som(
            model,
            graph,
            features,
            cfg,
            fanouts=eval_fanouts,
            device=device,
            distributed=distributed,
        )
        som = model.som if cfg.som is not None else None

        forward: torch.nn.Module = model
        comm = _CommTimer(world_size)
        if distributed:
            from torch.nn.parallel import DistributedDataParallel

            ddp = DistributedDataParallel(
                model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True,
            )
            ddp.register_comm_hook(comm, _timed_allreduce_hook)
            forward = ddp
        if cfg.compile:
            forward = torch.compile(forward, dynamic=True)  # type: ignore[assignment]
        sampler = NeighborSampler(csr, fanouts, seed=_derive_seed(cfg.seed, rank))

        logger.info(
            "HGT rank %d/%d on %s: %d local positives (%d in all) over %s, "
            "%d steps/epoch, epochs %d..%d, step %d",
            rank,
            world_size,
            device,
            sum(int(s.numel()) for _, s, _ in local),
            num_edges,
            [et[1] for et, _, _ in edges],
            steps_per_epoch,
            state.epoch + 1,
            cfg.epochs,
            state.step,
        )
        save_kwargs = {
            "model": model,
            "optimizer": optimizer,
            "sampler": sampler,
            "fingerprint": fingerprint,
            "keep": cfg.keep_checkpoints,
        }

        def checkpoint() -> None:
            if ckpt_dir is None:
                return
            glob = [state.loss_sum, state.loss_n]
            if distributed:
                glob = _all_reduce(glob, dist.ReduceOp.SUM, device)
            if rank == 0:
                _save(ckpt_dir, state, global_loss=(glob[0], glob[1]), **save_kwargs)
            if distributed:
                dist.barrier()

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        last_saved = -1
        partial_epoch: Callable[..., None] | None = None
        while state.epoch < cfg.epochs and state.stop_reason is None:
            plan = _epoch_plan(
                local,
                batch_size=cfg.batch_size,
                steps=steps_per_epoch,
                seed=cfg.seed,
                epoch=state.epoch,
                rank=rank,
                min_batch=min_batch,
            )
            model.train()
            timers = {"sample": 0.0, "compute": 0.0}
            comm.seconds = 0.0
            seeds = edges_seen = 0
            epoch_start = time.perf_counter()
            bar = tqdm(
                total=steps_per_epoch,
                initial=state.epoch_step,
                desc=f"HGT epoch {state.epoch + 1}/{cfg.epochs}",
                unit="step",
                disable=not (cfg.progress and rank == 0),
            )
            try:
                while state.epoch_step < steps_per_epoch:
                    if cfg.max_steps is not None and state.step >= cfg.max_steps:
                        state.stop_reason = "max_steps"
                        break
                    _maybe_fail(cfg, state.step, rank, world_size, fail_at)
                    step_seed = _derive_seed(cfg.seed, rank, state.step)
                    sampler.load_state_dict(
                        {"rng": np.random.PCG64(step_seed).state, "seed": step_seed}
                    )
                    torch.manual_seed(step_seed)
                    r, idx = plan[state.epoch_step]
                    et, src, dst = local[r]
                    t0 = time.perf_counter()
                    data = sampler.sample_links(
                        et,
                        src[idx],
                        dst[idx],
                        num_neg=cfg.num_neg,
                        neg_mode=cfg.neg_mode,
                    )
                    _attach_x(data, features)
                    data = data.to(device)
                    t1 = time.perf_counter()
                    loss, users_emb = _batch_loss(forward, data, et, cfg.scale)
                    if som is not None and cfg.som is not None:
                        loss = cfg.som.link_weight * loss + cfg.som.weight * som.loss(
                            users_emb
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    if som is not None:
                        som.update(
                            users_emb.detach(),
                            reduce=_sum_over_ranks if distributed else None,
                        )
                    loss_value = float(loss.detach())
                    t2 = time.perf_counter()
                    timers["sample"] += t1 - t0
                    timers["compute"] += t2 - t1
                    h = state.history
                    h["train_seconds"] = h.get("train_seconds", 0.0) + (t2 - t0)
                    seeds += int(data[et[0]].batch_size) + int(data[et[2]].batch_size)
                    edges_seen += int(idx.numel())
                    state.step += 1
                    state.epoch_step += 1
                    state.loss_sum += loss_value
                    state.loss_n += 1
                    elapsed = time.perf_counter() - epoch_start
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{loss_value:.4f}",
                        seeds_s=f"{seeds / max(elapsed, 1e-9):.0f}",
                        refresh=False,
                    )
                    if cfg.log_every and state.step % cfg.log_every == 0:
                        logger.info(
                            "HGT rank %d step %d: loss %.4f, %.0f seeds/s",
                            rank,
                            state.step,
                            loss_value,
                            seeds / max(elapsed, 1e-9),
                        )
                    if (
                        cfg.checkpoint_every
                        and state.step % cfg.checkpoint_every == 0
                        and state.epoch_step < steps_per_epoch  # else: epoch end
                    ):
                        checkpoint()
                        last_saved = state.step
            finally:
                bar.close()
            end_epoch = functools.partial(
                _end_epoch,
                state,
                cfg,
                model=model,
                graph=graph,
                features=features,
                val=val,
                fanouts=fanouts,
                eval_fanouts=eval_fanouts,
                device=device,
                rank=rank,
                distributed=distributed,
                stats={
                    "seconds": time.perf_counter() - epoch_start,
                    "seeds": seeds,
                    "edges": edges_seen,
                    "sample": timers["sample"],
                    "compute": timers["compute"],
                    "comm": comm.seconds,
                },
            )
            if state.epoch_step < steps_per_epoch:
                # stopped inside the epoch (max_steps): validated after the last
                # checkpoint, so a resumed run matches an uninterrupted one
                partial_epoch = end_epoch if seeds else None
                break
            end_epoch()
            checkpoint()
            last_saved = state.step
        if state.stop_reason is None:
            state.stop_reason = "epochs"
        state.history["stop_reason"] = state.stop_reason
        state.history["total_steps"] = state.step
        if last_saved != state.step:
            checkpoint()
        if partial_epoch is not None:
            partial_epoch(fraction=state.epoch_step / steps_per_epoch)
        if cfg.restore_best and state.best_state is not None:
            model.load_state_dict(state.best_state)
            logger.info("Restored the best epoch (%d)", state.best_epoch)
        model.eval()
        return model, state.history
    finally:
        if cfg.num_threads is not None:
            torch.set_num_threads(old_threads)


def _resume_or_reset(
    ckpt_dir: Path,
    cfg: HGTTrainConfig,
    state: _State,
    *,
    model: HGTEncoder,
    optimizer: torch.optim.Optimizer,
    fingerprint: dict[str, Any],
    rank: int,
    device: torch.device,
    distributed: bool,
) -> _State:
    if not cfg.resume:
        if rank == 0:
            for _, old in _list_checkpoints(ckpt_dir):
                old.unlink(missing_ok=True)
        if distributed:
            dist.barrier()
        return state
    found = latest_hgt_checkpoint(ckpt_dir)
    step = -1 if found is None else found[0]
    if distributed:
        lo = _all_reduce([step], dist.ReduceOp.MIN, device)[0]
        hi = _all_reduce([step], dist.ReduceOp.MAX, device)[0]
        if lo != hi:
            raise ValueError(
                f"ranks see different latest checkpoints in {str(ckpt_dir)!r} (steps "
                f"{int(lo)} .. {int(hi)}): checkpoint_dir must be on a file system "
                "shared by every machine"
            )
    if found is None:
        return state
    restored = _restore(
        found[1],
        model=model,
        optimizer=optimizer,
        fingerprint=fingerprint,
        rank=rank,
    )
    if restored.stop_reason in ("max_steps", "epochs"):
        restored.stop_reason = None  # a later max_steps / epochs may continue
    restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    restored.history["resumed_from_step"].append(restored.step)
    restored.history["restarts"].append(restarts)
    if rank == 0:
        logger.info(
            "Resumed HGT from %s (step %d, epoch %d, restart %d)",
            found[1],
            restored.step,
            restored.epoch,
            restarts,
        )
    return restored


def _end_epoch(
    state: _State,
    cfg: HGTTrainConfig,
    *,
    model: HGTEncoder,
    graph: GraphArtifact,
    features: Mapping[str, Tensor],
    val: tuple[Tensor, Tensor] | None,
    fanouts: list[int] | dict[EdgeType, list[int]],
    eval_fanouts: list[int] | dict[EdgeType, list[int]],
    device: torch.device,
    rank: int,
    distributed: bool,
    stats: dict[str, float],
    fraction: float = 1.0,
) -> None:
    """Reduce the epoch's statistics, validate (rank 0), early stopping.

    ``fraction < 1``: training stopped inside the epoch (``max_steps``) and this
    is its final report: validated and recorded (``epoch_fraction``), a candidate
    for ``restore_best``, but no early-stopping count and no epoch advance.
    """
    partial = fraction < 1.0
    sums = [
        state.loss_sum,
        state.loss_n,
        stats["seeds"],
        stats["edges"],
        stats["sample"],
        stats["compute"],
        stats["comm"],
    ]
    peaks = [stats["seconds"], peak_rss_mb()]
    if distributed:
        sums = _all_reduce(sums, dist.ReduceOp.SUM, device)
        peaks = _all_reduce(peaks, dist.ReduceOp.MAX, device)
    train_loss = sums[0] / max(sums[1], 1.0)
    seconds = peaks[0]
    val_loss = val_recall = val_som = math.nan
    val_seconds = 0.0
    if rank == 0 and val is not None:
        start = time.perf_counter()
        val_loss, val_recall, val_som = _validate(
            model,
            graph,
            features,
            val,
            cfg,
            fanouts=fanouts,
            eval_fanouts=eval_fanouts,
            device=device,
        )
        val_seconds = time.perf_counter() - start
    if distributed:
        val_loss, val_recall, val_seconds, val_som = _broadcast(
            [val_loss, val_recall, val_seconds, val_som], device
        )
    epoch = state.epoch + 1
    h = state.history
    h["epoch"].append(epoch)
    h["train_loss"].append(train_loss)
    h["val_loss"].append(None if math.isnan(val_loss) else val_loss)
    h["val_recall"].append(None if math.isnan(val_recall) else val_recall)
    h.setdefault("val_som_loss", []).append(None if math.isnan(val_som) else val_som)
    h["seconds"].append(seconds)
    h["val_seconds"].append(val_seconds)
    h["seeds_per_s"].append(sums[2] / max(seconds, 1e-9))
    h["edges_per_s"].append(sums[3] / max(seconds, 1e-9))
    h["sample_s"].append(sums[4])
    h["compute_s"].append(sums[5])
    h["allreduce_s"].append(sums[6])
    h["peak_rss_mb"].append(peaks[1])
    h["peak_cuda_mb"].append(
        torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else None
    )
    h["steps"].append(state.step)
    h.setdefault("epoch_fraction", []).append(fraction)
    if not math.isnan(val_recall):
        if val_recall > state.best_metric + 1e-12:
            state.best_metric = val_recall
            state.best_epoch = epoch
            state.bad_epochs = 0
            state.best_state = {
                k: v.detach().to("cpu", copy=True)
                for k, v in model.state_dict().items()
            }
            h["best_epoch"] = epoch
            h["best_val_recall"] = val_recall
        elif not partial:
            state.bad_epochs += 1
            if cfg.patience is not None and state.bad_epochs >= cfg.patience:
                state.stop_reason = "early_stopping"
    if rank == 0:
        logger.info(
            "HGT epoch %d/%d%s: train loss %.4f, val loss %s, val Recall@%d %s, "
            "%.1f s, %.0f seeds/s (sample %.1f s, fwd+bwd %.1f s, allreduce %.1f s)",
            epoch,
            cfg.epochs,
            f" ({fraction:.0%} of it, max_steps)" if partial else "",
            train_loss,
            "n/a" if math.isnan(val_loss) else f"{val_loss:.4f}",
            cfg.val_k,
            "n/a" if math.isnan(val_recall) else f"{val_recall:.4f}",
            seconds,
            h["seeds_per_s"][-1],
            sums[4],
            sums[5],
            sums[6],
        )
        if state.stop_reason == "early_stopping":
            logger.info(
                "Early stopping after epoch %d (best epoch %d, Recall@%d %.4f)",
                epoch,
                state.best_epoch,
                cfg.val_k,
                state.best_metric,
            )
    if not partial:
        state.epoch = epoch
        state.epoch_step = 0
        state.loss_sum = state.loss_n = 0.0
