"""Training loop of the TwHIN baseline with sparse row-wise Adagrad updates.

Model: :class:`~hgt_cluster_kedro.models.twhin.TwHIN` (El-Kishky et al., *TwHIN:
Embedding the Twitter Heterogeneous Information Network for Personalized
Recommendation*, KDD 2022, arXiv 2202.05387).

One step, for a batch of ``B`` triplets of one relation:

1. gather the touched rows of the tables (heads, tails and the chunk's uniform
   negatives) with ``index_select``;
2. score positives, in-batch negatives (``[C x C]`` per chunk of ``C``) and
   uniform negatives (``[C x N]``) with batched matmuls, binary cross-entropy;
3. gradients with respect to the gathered rows only, derived by hand
   (``TwHIN.loss_and_grads``, equal to autograd's, tested): no
   ``[num_nodes x d]`` gradient, no sparse-tensor coalescing, no autograd graph;
4. row-wise Adagrad, as in PyTorch-BigGraph: duplicate ids are merged
   (``unique`` + ``index_add_``), one accumulator per row
   (``state[i] += mean(g_i^2)``), and ``table.index_add_(rows, -lr * g /
   sqrt(state))``. The translation vectors are a small dense parameter with
   element-wise Adagrad (:class:`DenseAdagrad`, the update of
   ``torch.optim.Adagrad`` without importing ``torch._dynamo``, which costs
   seconds at the first ``torch.optim`` step).

A step therefore costs ``O(B * d)`` whatever the size of the tables. Every
random draw (initialisation, per-epoch shuffles, the order of relation batches,
uniform negatives) comes from one ``torch.Generator`` seeded with ``seed``; its
state is part of the checkpoint written after every epoch, so resuming from a
checkpoint reproduces the uninterrupted run exactly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.profiler import record_function

from hgt_cluster_kedro.progress import progress_bar

from ..graph.csr import HeteroCSR
from ..models.twhin import TwHIN, batch_layout
from .checkpoint import (
    changed_keys,
    checkpoint_path,
    latest_checkpoint,
    load_checked,
    prune_checkpoints,
    save_checkpoint,
    strip_prefix,
)
from .run_lock import RunLock

logger = logging.getLogger(__name__)

EdgeType = tuple[str, str, str]

__all__ = [
    "DenseAdagrad",
    "RowAdagrad",
    "load_twhin",
    "resolve_relations",
    "train_twhin",
]

CHECKPOINT_PREFIX = "twhin"
_FORMAT = "twhin_checkpoint"
_VERSION = 1


class RowAdagrad:
    """Row-wise sparse Adagrad on embedding tables (as in PyTorch-BigGraph).

    One accumulator per row: ``state[i] += mean_k(g_ik^2)`` and
    ``row_i -= lr * g_i / sqrt(state[i] + eps^2)``. Gradients of duplicate ids
    are summed first (``unique`` + ``index_add_``), so a row takes one step per
    batch. Only the rows given to :meth:`step` are read and written
    (``index_select`` / ``index_copy_`` / ``index_add_``).

    Args:
        tables: node type -> ``[num_nodes, d]`` tensor updated in place.
        lr: learning rate (> 0).
        eps: floor of the root of the accumulator.
    """

    def __init__(
        self, tables: Mapping[str, Tensor], lr: float, eps: float = 1e-10
    ) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be > 0 (got {lr})")
        self.tables = dict(tables)
        self.lr = float(lr)
        self.eps = float(eps)
        self.state = {
            t: torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for t, x in self.tables.items()
        }

    @torch.no_grad()
    def step(self, node_type: str, index: Tensor, grad: Tensor) -> None:
        """Apply the gradient rows ``grad[k]`` of rows ``index[k]`` of a table.

        Args:
            node_type: which table.
            index: 1-D row ids (duplicates allowed: their gradients are summed).
            grad: ``[len(index), d]`` gradient rows.
        """
        table = self.tables[node_type]
        state = self.state[node_type]
        rows, inverse = torch.unique(index, return_inverse=True)
        g = grad.new_zeros(rows.numel(), grad.shape[1]).index_add_(0, inverse, grad)
        acc = state.index_select(0, rows)
        acc.add_(torch.linalg.vecdot(g, g), alpha=1.0 / g.shape[1])
        state.index_copy_(0, rows, acc)
        scale = acc.add_(self.eps * self.eps).rsqrt_().mul_(-self.lr)
        table.index_add_(0, rows, g.mul_(scale.unsqueeze(1)))

    def state_dict(self) -> dict[str, Tensor]:
        """Accumulators per node type."""
        return dict(self.state)

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore accumulators written by :meth:`state_dict`."""
        for t, acc in self.state.items():
            if t not in state or state[t].shape != acc.shape:
                raise ValueError(
                    f"state for node type {t!r} is missing or has the wrong shape"
                )
            acc.copy_(state[t])


class DenseAdagrad:
    """Element-wise Adagrad on a small dense table, one row at a time.

    ``sum += g^2`` and ``row -= lr * g / (sqrt(sum) + eps)``: the update of
    ``torch.optim.Adagrad`` (no weight decay, no lr decay) for a table whose
    gradient is non-zero in one row only.

    Args:
        table: ``[rows, d]`` tensor updated in place.
        lr: learning rate (> 0).
        eps: added to the root of the accumulator.
    """

    def __init__(self, table: Tensor, lr: float, eps: float = 1e-10) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be > 0 (got {lr})")
        self.table = table
        self.lr = float(lr)
        self.eps = float(eps)
        self.sum = torch.zeros_like(table)

    @torch.no_grad()
    def step(self, row: int, grad: Tensor) -> None:
        """Apply ``grad`` (shape ``[d]``) to row ``row``."""
        acc = self.sum[row]
        acc.addcmul_(grad, grad)
        self.table[row].addcdiv_(grad, acc.sqrt().add_(self.eps), value=-self.lr)

    def state_dict(self) -> dict[str, Tensor]:
        """The accumulator."""
        return {"sum": self.sum}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore an accumulator written by :meth:`state_dict`."""
        if "sum" not in state or state["sum"].shape != self.sum.shape:
            raise ValueError("state['sum'] is missing or has the wrong shape")
        self.sum.copy_(state["sum"])


def resolve_relations(
    csr: HeteroCSR, relations: Sequence[str | EdgeType] | None = None
) -> list[EdgeType]:
    """Edge types to train on: the given names / edge types, or by default every
    forward relation of ``csr`` (not the ``rev_*`` twins added for message
    passing).

    Args:
        csr: the (train) graph.
        relations: relation names or ``(src, rel, dst)`` edge types, or ``None``.
    """
    edge_types = [tuple(et) for et in csr.edge_types]
    if relations is None:
        chosen = [et for et in edge_types if not et[1].startswith("rev_")]
        if not chosen:
            raise ValueError(f"csr has no forward relations (edge types: {edge_types})")
    else:
        if isinstance(relations, str) or (
            isinstance(relations, tuple)
            and len(relations) == 3
            and tuple(relations) in edge_types
        ):
            relations = [relations]  # type: ignore[list-item]
        if len(relations) == 0:
            raise ValueError("relations is empty: give at least one relation (or None)")
        chosen = []
        for rel in relations:
            if isinstance(rel, str):
                matches = [et for et in edge_types if et[1] == rel]
                if len(matches) != 1:
                    raise ValueError(
                        f"relations: {rel!r} is {'ambiguous' if matches else 'unknown'}"
                        f" (edge types of csr: {edge_types})"
                    )
                et = matches[0]
            else:
                et = tuple(rel)
                if et not in edge_types:
                    raise ValueError(
                        f"relations: {rel!r} is unknown (edge types of csr: {edge_types})"
                    )
            if et in chosen:
                raise ValueError(f"relations: {rel!r} is given twice")
            chosen.append(et)  # type: ignore[arg-type]
    for et in chosen:
        if csr.num_edges(et) == 0:
            raise ValueError(f"relations: relation {et} has no edges")
    return chosen  # type: ignore[return-value]


def _checksum(src: Tensor, dst: Tensor) -> int:
    """Cheap order-independent fingerprint of an edge list (int64 wrap-around)."""
    return int((src * 1_000_003 + dst).sum())


def _state_tensors(
    model: TwHIN,
    row_opt: RowAdagrad,
    dense_opt: DenseAdagrad,
    gen: torch.Generator,
) -> dict[str, Tensor]:
    """Everything a resumed run needs, as flat tensors."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"row_adagrad/{t}": s for t, s in row_opt.state_dict().items()})
    tensors.update({f"dense_adagrad/{k}": v for k, v in dense_opt.state_dict().items()})
    tensors["rng"] = gen.get_state()
    return tensors


def _model_from_meta(meta: Mapping[str, Any]) -> TwHIN:
    cfg = meta["config"]
    return TwHIN(
        cfg["num_nodes"],
        [tuple(r) for r in cfg["relations"]],
        cfg["dim"],
        init_std=cfg["init_std"],
        seed=0,
    )


def load_twhin(path: str | Path, device: str | torch.device = "cpu") -> TwHIN:
    """Rebuild the :class:`TwHIN` model stored in a checkpoint of :func:`train_twhin`.

    Args:
        path: a ``twhin-epochNNNNN.safetensors`` file.
        device: where to put the model.
    """
    tensors, meta = load_checked(path, _FORMAT, _VERSION, "path")
    model = _model_from_meta(meta)
    model.load_state_dict(strip_prefix(tensors, "model/"))
    return model.to(device)


def train_twhin(
    csr: HeteroCSR,
    relations: Sequence[str | EdgeType] | None = None,
    *,
    dim: int = 64,
    epochs: int = 10,
    batch_size: int = 8192,
    lr: float = 0.1,
    num_uniform_neg: int = 0,
    in_batch_neg: bool = True,
    chunk_size: int = 64,
    balanced_loss: bool = True,
    init_std: float = 0.1,
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    keep_checkpoints: int = 2,
    lock_wait_s: float | None = 0.0,
    device: str | torch.device = "cpu",
    num_threads: int | None = None,
    log_every: int = 100,
    progress: bool = True,
) -> tuple[TwHIN, dict[str, list[float]]]:
    """Train TwHIN (El-Kishky et al., KDD 2022, arXiv 2202.05387) on ``csr``.

    The triplets are the edges of ``relations`` in ``csr`` (a ``GraphArtifact``
    holds train edges only, so nothing held out leaks in). Every epoch each
    relation's triplets are shuffled and cut into batches of ``batch_size``; the
    batches of all relations are visited in a seeded random order, so relations
    are sampled in proportion to their size and every triplet is seen once per
    epoch. A batch holds one relation (in-batch negatives must share the
    translation). See :mod:`hgt_cluster_kedro.models.twhin` for the negatives and
    the loss and this module's docstring for the sparse update.

    Args:
        csr: the graph; ``(src_type, rel, dst_type)`` edge types.
        relations: relation names or edge types to train on; default every forward
            relation (``rev_*`` twins excluded).
        dim: embedding dimension.
        epochs: total number of epochs (a resumed run continues up to it).
        batch_size: triplets per batch.
        lr: learning rate of the row-wise (tables) and dense (translations)
            Adagrad.
        num_uniform_neg: uniformly drawn tails and as many heads per chunk (each
            positive gets ``2 * num_uniform_neg`` uniform negatives).
        in_batch_neg: use in-batch negatives (``chunk_size - 1`` per positive).
        chunk_size: positives per chunk sharing negatives.
        balanced_loss: mean BCE of positives plus mean BCE of negatives
            (PyTorch-BigGraph's weighting) instead of one mean over all logits;
            see :func:`~hgt_cluster_kedro.models.twhin.twhin_loss`.
        init_std: standard deviation of the initial embeddings.
        seed: seed of every random draw.
        checkpoint_dir: if given, a checkpoint is written there after every epoch
            (atomic safetensors: model, optimiser states, epoch, RNG state, history).
        resume: continue from the latest checkpoint in ``checkpoint_dir`` (its
            configuration must match; ``epochs`` may grow).
        keep_checkpoints: checkpoints kept (older ones are deleted; ``0`` keeps all).
        lock_wait_s: training holds an exclusive lock on ``checkpoint_dir``
            (:class:`~hgt_cluster_kedro.training.run_lock.RunLock`); a second
            training of the same directory waits this many seconds for it, then
            fails naming the holder's pid (``0``: at once; ``None``: no limit).
        device: torch device of the tables and the computation.
        num_threads: ``torch.set_num_threads`` during training (restored after).
            On a shared, oversubscribed machine use 1, or start the process with
            ``OMP_WAIT_POLICY=PASSIVE``: spinning OpenMP workers otherwise stall
            every kernel (measured 3-6x slower steps at 2 threads).
        log_every: log throughput and loss every this many batches (0: never).
        progress: show a tqdm progress bar (triplets/s and loss).

    Returns:
        ``(model, history)``; ``history`` has per-epoch lists ``epoch``, ``loss``
        (triplet-weighted mean batch loss), ``seconds`` and ``triplets_per_s``.
    """
    if int(dim) <= 0:
        raise ValueError(f"dim must be > 0 (got {dim})")
    if int(epochs) <= 0:
        raise ValueError(f"epochs must be > 0 (got {epochs})")
    if int(batch_size) <= 0:
        raise ValueError(f"batch_size must be > 0 (got {batch_size})")
    if not lr > 0:
        raise ValueError(f"lr must be > 0 (got {lr})")
    if int(num_uniform_neg) < 0:
        raise ValueError(f"num_uniform_neg must be >= 0 (got {num_uniform_neg})")
    if int(chunk_size) <= 0:
        raise ValueError(f"chunk_size must be > 0 (got {chunk_size})")
    if not (in_batch_neg and chunk_size > 1) and num_uniform_neg == 0:
        raise ValueError(
            f"no negatives: in_batch_neg={in_batch_neg}, chunk_size={chunk_size}, "
            f"num_uniform_neg={num_uniform_neg}; enable in-batch negatives with "
            "chunk_size > 1 or set num_uniform_neg > 0"
        )
    if num_threads is not None and int(num_threads) <= 0:
        raise ValueError(f"num_threads must be > 0 (got {num_threads})")
    if int(log_every) < 0:
        raise ValueError(f"log_every must be >= 0 (got {log_every})")
    if int(keep_checkpoints) < 0:
        raise ValueError(f"keep_checkpoints must be >= 0 (got {keep_checkpoints})")
    dim, epochs, batch_size = int(dim), int(epochs), int(batch_size)
    num_uniform_neg, chunk_size, seed = int(num_uniform_neg), int(chunk_size), int(seed)
    ets = resolve_relations(csr, relations)
    device = torch.device(device)

    lock: Any = contextlib.nullcontext()
    if checkpoint_dir is not None:
        lock = RunLock(checkpoint_dir, wait_s=lock_wait_s, what="twhin.checkpoint_dir")
    with lock:
        old_threads = torch.get_num_threads()
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        try:
            triplets = [tuple(t.to(device) for t in csr.to_coo(et)) for et in ets]
            sizes = [int(src.numel()) for src, _ in triplets]
            num_nodes = {t: int(csr.num_nodes[t]) for et in ets for t in (et[0], et[2])}
            config = json.loads(
                json.dumps(
                    {
                        "dim": dim,
                        "batch_size": batch_size,
                        "lr": float(lr),
                        "num_uniform_neg": num_uniform_neg,
                        "in_batch_neg": bool(in_batch_neg),
                        "chunk_size": chunk_size,
                        "balanced_loss": bool(balanced_loss),
                        "init_std": float(init_std),
                        "seed": seed,
                        "relations": ets,
                        "num_nodes": num_nodes,
                        "num_edges": sizes,
                        "edge_checksums": [
                            _checksum(s.cpu(), d.cpu()) for s, d in triplets
                        ],
                    }
                )
            )
            gen = torch.Generator().manual_seed(seed)
            model = TwHIN(num_nodes, ets, dim, init_std=init_std)
            model.reset_parameters(generator=gen)
            model.to(device)
            tables = {t: model.embeddings[t].data for t in model.node_types}
            row_opt = RowAdagrad(tables, lr)
            dense_opt = DenseAdagrad(model.translations.data, lr)
            history: dict[str, list[float]] = {
                "epoch": [],
                "loss": [],
                "seconds": [],
                "triplets_per_s": [],
            }
            start_epoch = 0
            if checkpoint_dir is not None and resume:
                found = latest_checkpoint(
                    checkpoint_dir, CHECKPOINT_PREFIX, max_epoch=epochs
                )
                if found is not None:
                    start_epoch, history = _restore(
                        found[1],
                        config,
                        model=model,
                        row_opt=row_opt,
                        dense_opt=dense_opt,
                        gen=gen,
                    )
                    logger.info(
                        "Resumed TwHIN from %s (epoch %d/%d)",
                        found[1],
                        start_epoch,
                        epochs,
                    )

            total = sum(sizes)
            logger.info(
                "TwHIN: %d triplets over %s, dim=%d, batch_size=%d, chunk_size=%d, "
                "uniform negatives=%d per side, epochs %d..%d",
                total,
                [et[1] for et in ets],
                dim,
                batch_size,
                chunk_size,
                num_uniform_neg,
                start_epoch + 1,
                epochs,
            )
            for epoch in range(start_epoch, epochs):
                loss, seconds = _train_epoch(
                    model,
                    triplets,
                    row_opt,
                    dense_opt,
                    gen,
                    batch_size=batch_size,
                    chunk_size=chunk_size,
                    in_batch_neg=in_batch_neg,
                    num_uniform_neg=num_uniform_neg,
                    balanced=balanced_loss,
                    desc=f"TwHIN epoch {epoch + 1}/{epochs}",
                    log_every=int(log_every),
                    progress=progress,
                )
                history["epoch"].append(epoch + 1)
                history["loss"].append(loss)
                history["seconds"].append(seconds)
                history["triplets_per_s"].append(
                    total / seconds if seconds > 0 else float("inf")
                )
                logger.info(
                    "TwHIN epoch %d/%d: loss %.4f, %.1f s, %.0f triplets/s",
                    epoch + 1,
                    epochs,
                    loss,
                    seconds,
                    history["triplets_per_s"][-1],
                )
                if checkpoint_dir is not None:
                    tensors = _state_tensors(model, row_opt, dense_opt, gen)
                    meta = {
                        "format": _FORMAT,
                        "version": _VERSION,
                        "epoch": epoch + 1,
                        "config": config,
                        "history": history,
                    }
                    path = save_checkpoint(
                        checkpoint_path(checkpoint_dir, CHECKPOINT_PREFIX, epoch + 1),
                        tensors,
                        meta,
                    )
                    prune_checkpoints(
                        checkpoint_dir, CHECKPOINT_PREFIX, keep_checkpoints, epoch + 1
                    )
                    logger.info("Saved checkpoint %s", path)
        finally:
            if num_threads is not None:
                torch.set_num_threads(old_threads)
        return model, history


def _restore(
    path: Path,
    config: Mapping[str, Any],
    *,
    model: TwHIN,
    row_opt: RowAdagrad,
    dense_opt: DenseAdagrad,
    gen: torch.Generator,
) -> tuple[int, dict[str, list[float]]]:
    tensors, meta = load_checked(path, _FORMAT, _VERSION, "checkpoint_dir:")
    stored = meta["config"]
    diff = changed_keys(stored, config)
    if diff:
        detail = ", ".join(f"{k}: {stored.get(k)!r} -> {config.get(k)!r}" for k in diff)
        raise ValueError(
            f"checkpoint_dir: {str(path)!r} was written with another configuration "
            f"({detail}); use another checkpoint_dir or resume=False"
        )
    model.load_state_dict(strip_prefix(tensors, "model/"))
    row_opt.load_state_dict(strip_prefix(tensors, "row_adagrad/"))
    dense_opt.load_state_dict(strip_prefix(tensors, "dense_adagrad/"))
    gen.set_state(tensors["rng"])
    history = {k: list(v) for k, v in meta["history"].items()}
    return int(meta["epoch"]), history


def _train_epoch(
    model: TwHIN,
    triplets: list[tuple[Tensor, Tensor]],
    row_opt: RowAdagrad,
    dense_opt: DenseAdagrad,
    gen: torch.Generator,
    *,
    batch_size: int,
    chunk_size: int,
    in_batch_neg: bool,
    num_uniform_neg: int,
    balanced: bool,
    desc: str,
    log_every: int,
    progress: bool,
) -> tuple[float, float]:
    """One pass over every triplet; returns (mean loss, seconds)."""
    device = model.translations.device
    sizes = [int(src.numel()) for src, _ in triplets]
    perms = [torch.randperm(n, generator=gen) for n in sizes]
    num_batches = [-(-n // batch_size) for n in sizes]
    order = torch.cat(
        [torch.full((nb,), r, dtype=torch.long) for r, nb in enumerate(num_batches)]
    )
    order = order[torch.randperm(order.numel(), generator=gen)].tolist()
    cursor = [0] * len(triplets)
    total = sum(sizes)
    loss_sum = 0.0
    seen = 0
    bar = progress_bar(
        total=total, desc=desc, unit="triplet", unit_scale=True, disable=not progress
    )
    start = time.perf_counter()
    try:
        for step, r in enumerate(order, 1):
            k = cursor[r]
            cursor[r] += 1
            with record_function("twhin/sample"):
                idx = perms[r][k * batch_size : (k + 1) * batch_size].to(device)
                src, dst = triplets[r]
                head, tail = src.index_select(0, idx), dst.index_select(0, idx)
            loss = _train_step(
                model,
                r,
                head,
                tail,
                row_opt=row_opt,
                dense_opt=dense_opt,
                gen=gen,
                chunk_size=chunk_size,
                in_batch_neg=in_batch_neg,
                num_uniform_neg=num_uniform_neg,
                balanced=balanced,
            )
            n = int(idx.numel())
            loss_sum += loss * n
            seen += n
            bar.update(n)
            if step % 10 == 0 or step == len(order):
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", refresh=False)
            if log_every and step % log_every == 0:
                elapsed = time.perf_counter() - start
                logger.info(
                    "%s: batch %d/%d, %.0f triplets/s, loss %.4f",
                    desc,
                    step,
                    len(order),
                    seen / max(elapsed, 1e-9),
                    loss_sum / seen,
                )
    finally:
        bar.close()
    return loss_sum / max(seen, 1), time.perf_counter() - start


def _train_step(
    model: TwHIN,
    relation: int,
    head: Tensor,
    tail: Tensor,
    *,
    row_opt: RowAdagrad,
    dense_opt: DenseAdagrad,
    gen: torch.Generator,
    chunk_size: int,
    in_batch_neg: bool,
    num_uniform_neg: int,
    balanced: bool,
) -> float:
    """Gather rows, hand-derived loss and gradients, sparse + dense Adagrad.

    The phases are labelled for ``torch.profiler`` (``twhin/layout``,
    ``twhin/gather``, ``twhin/loss_and_grads``, ``twhin/dense_adagrad``,
    ``twhin/row_adagrad``); the labels cost microseconds when no profiler runs.
    """
    src_t, _, dst_t = model.relations[relation]
    e_src = model.embeddings[src_t].data
    e_dst = model.embeddings[dst_t].data
    with record_function("twhin/layout"):
        layout = batch_layout(head, tail, chunk_size, in_batch_neg=in_batch_neg)
    with record_function("twhin/gather"):
        u = e_src.index_select(0, layout.head)
        v = e_dst.index_select(0, layout.tail)
        un = vn = uh = ut = None
        if num_uniform_neg:
            shape = (layout.num_chunks, num_uniform_neg)
            uh = torch.randint(model.num_nodes[src_t], shape, generator=gen).view(-1)
            ut = torch.randint(model.num_nodes[dst_t], shape, generator=gen).view(-1)
            uh, ut = uh.to(u.device), ut.to(u.device)
            un = e_src.index_select(0, uh).view(*shape, -1)
            vn = e_dst.index_select(0, ut).view(*shape, -1)
    with record_function("twhin/loss_and_grads"):
        loss, grads = model.loss_and_grads(
            relation,
            layout,
            u,
            v,
            uniform_head_rows=un,
            uniform_tail_rows=vn,
            balanced=balanced,
        )
    with record_function("twhin/dense_adagrad"):
        dense_opt.step(relation, grads.translation)
    with record_function("twhin/row_adagrad"):
        n = layout.size
        parts: dict[str, list[tuple[Tensor, Tensor]]] = {src_t: [], dst_t: []}
        parts[src_t].append((layout.head[:n], grads.head[:n]))
        parts[dst_t].append((layout.tail[:n], grads.tail[:n]))
        if grads.uniform_head is not None:
            parts[src_t].append((uh, grads.uniform_head.view(-1, model.dim)))
        if grads.uniform_tail is not None:
            parts[dst_t].append((ut, grads.uniform_tail.view(-1, model.dim)))
        for t, items in parts.items():
            if len(items) == 1:
                row_opt.step(t, *items[0])
            else:
                index = torch.cat([i for i, _ in items])
                row_opt.step(t, index, torch.cat([g for _, g in items]))
    return float(loss)
