"""The HGT training loop, one for 1 or N processes and both graph modes.

Model: :class:`~hgt_cluster_kedro.models.hgt.HGTEncoder` (Hu et al.,
*Heterogeneous Graph Transformer*, WWW 2020, arXiv 2003.01332); loss: the
configured objectives (:mod:`.objectives`), summed with their weights.

**Data.** The positives are the edges of the schema's target relations in the
train graph (held-out pairs are not in it). Each epoch every relation's edges of
this rank are shuffled and cut into batches (one relation per batch), visited in
a seeded random order (:mod:`.data`). For every batch a negative sampler
(:mod:`~hgt_cluster_kedro.graph.negatives`) draws ``num_neg`` negatives per side.
With ``remove_targets`` every edge joining the two endpoints of a positive is
absent from that step's message passing, so the encoder cannot read the answer
off the graph.

**Modes.** *Full graph*: one pass of the fused attention kernels embeds every
node (exact neighbourhoods) and ``full_batch_size`` positives are scored.
*Sampled*: the ``fanouts`` neighbourhood of the batch's endpoints is sampled and
embedded. ``mode: auto`` picks full graph up to ``full_max_edges`` edges.

**Ranks.** With ``world_size > 1`` (``torch.distributed`` initialised by the
caller, e.g. :mod:`~hgt_cluster_kedro.training.hgt_worker` under torchrun) the
model is wrapped in ``DistributedDataParallel`` and every rank trains on its own
shard of the positives (every ``world_size``-th edge of a seeded permutation, or
the edges of ``seed_users``). All ranks run the same number of steps per epoch.

**Randomness.** Every random step is seeded from ``config.seed``: the model
initialisation, the shards, the per-epoch shuffles and, at every step, the
negatives, the sampler and dropout from ``(seed, rank, step)``. The global step
is therefore the whole random state: a resumed run replays exactly the
uninterrupted one.

**Checkpoints** (:mod:`.state`): rank 0 writes one every ``checkpoint_every``
steps, at every epoch end and when training stops; ``resume`` continues from the
latest (its settings must match but for those that extend or monitor training).

**Validation** (:mod:`.validate`) after every epoch on rank 0; early stopping on
validation Recall@K; ``restore_best`` returns the best epoch's weights.

The environment variables ``HGT_FAIL_AT_STEP`` / ``HGT_FAIL_RANK`` make one rank
exit once at that step (a test hook for restarts; needs ``checkpoint_dir``).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from ...graph.artifact import GraphArtifact
from ...graph.csr import EdgeType
from ...graph.negatives import NegativeSampler, make_negative_sampler, positive_test
from ...graph.sampler import NeighborSampler, PinSageNeighborSampler
from ...models.hgt import HGTEncoder
from ...models.hgt_attention import FullGraph
from ...progress import progress_bar
from ...runtime import derive_seed, peak_rss_mb, resolve_device
from . import state as ckpt
from .comm import CommTimer, all_reduce, broadcast, sum_over_ranks, timed_allreduce_hook
from .config import HGTTrainConfig, fingerprint, num_hops, resolve_fanouts
from .data import check_pairs, count_batches, epoch_plan, shard, target_edges
from .inference import attach_x, embed_full, embed_nodes
from .model_io import load_init, load_init_embeddings
from .objectives import OBJECTIVES, LinkBatch, Objective
from .state import History, TrainState
from .validate import validate

logger = logging.getLogger(__name__)

__all__ = ["FAIL_ENV", "FAIL_RANK_ENV", "train_hgt"]

FAIL_ENV = "HGT_FAIL_AT_STEP"
FAIL_RANK_ENV = "HGT_FAIL_RANK"


class _FullGraphForward(nn.Module):
    """``forward(keep)`` = the encoder's full-graph pass (what DDP wraps);
    ``forward(keep, views)`` also runs one pass per keep mask of ``views`` (the
    objectives' extra views) and returns ``(outputs, [view outputs])``: one
    forward call, so DDP sees one forward per backward."""

    def __init__(self, encoder: HGTEncoder, graph: FullGraph, x: Any) -> None:
        super().__init__()
        self.encoder = encoder
        self.graph = graph
        self.x = x

    def forward(
        self,
        keep: Mapping[str, Tensor] | None,
        views: Sequence[Mapping[str, Tensor] | None] = (),
    ) -> Any:
        out = self.encoder.forward_full(self.graph, keep, self.x)
        if not views:
            return out
        return out, [self.encoder.forward_full(self.graph, k, self.x) for k in views]


@dataclass
class _Run:
    """What every step of one run reads (built once by :func:`_build`)."""

    cfg: HGTTrainConfig
    graph: GraphArtifact
    rank: int
    world_size: int
    device: torch.device
    model: HGTEncoder
    forward: nn.Module
    optimizer: torch.optim.Optimizer
    objectives: dict[str, Objective]
    negatives: NegativeSampler
    local: list[tuple[EdgeType, Tensor, Tensor]]
    batch_size: int
    steps_per_epoch: int
    features: dict[str, Tensor]
    fanouts: Any
    eval_fanouts: Any
    sampler: NeighborSampler | None
    full: FullGraph | None
    #: the exact graph validation embeds with (built on first use, rank 0)
    val_full: FullGraph | None = None
    pair_keys: dict[tuple[str, str], dict[str, Tensor]] = field(default_factory=dict)
    comm: CommTimer = field(default_factory=lambda: CommTimer(1))
    fingerprint: dict[str, Any] = field(default_factory=dict)
    fail_at: int | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _fail_at(cfg: HGTTrainConfig) -> int | None:
    value = os.environ.get(FAIL_ENV)
    if not value:
        return None
    if cfg.checkpoint_dir is None:
        raise ValueError(f"{FAIL_ENV}={value} needs config.checkpoint_dir")
    return int(value)


def _maybe_fail(run: _Run, step: int) -> None:
    """Test hook: this rank exits (``os._exit(1)``) once at step ``fail_at``."""
    if run.fail_at is None or step != run.fail_at:
        return
    fail_rank = int(os.environ.get(FAIL_RANK_ENV, run.world_size - 1))
    if run.rank != fail_rank:
        return
    marker = Path(run.cfg.checkpoint_dir or ".") / f".fail_at_step_{step}.marker"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # failed once already
    os.write(fd, f"rank {run.rank} pid {os.getpid()} step {step}\n".encode())
    os.close(fd)
    logger.error("%s: rank %d exits at step %d (test hook)", FAIL_ENV, run.rank, step)
    for h in logging.getLogger().handlers:
        h.flush()
    sys.stderr.flush()
    os._exit(1)


def _new_model(cfg: HGTTrainConfig, graph: GraphArtifact) -> HGTEncoder:
    csr = graph.csr
    extra: dict[str, Any] = {}
    for name, params in cfg.objective_params().items():
        extra.update(OBJECTIVES[name].encoder_kwargs(params))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, 1))
        model = HGTEncoder(
            (csr.node_types, csr.edge_types),
            csr.num_nodes,
            {t: int(x.shape[1]) for t, x in graph.features.items()}
            if cfg.use_features
            else {},
            hidden=cfg.hidden,
            heads=cfg.heads,
            num_layers=cfg.layers,
            dropout=cfg.dropout,
            id_embedding_types=cfg.id_embedding_types,
            **extra,
        )
    if cfg.init_embeddings is not None:
        load_init_embeddings(model, cfg.init_embeddings)
    if cfg.init_model is not None:
        load_init(model, cfg.init_model)
    return model


def _build(
    cfg: HGTTrainConfig,
    graph: GraphArtifact,
    *,
    rank: int,
    world_size: int,
    seed_users: Tensor | None,
) -> _Run:
    """Model, optimiser, objectives, negatives, shards and the step's graph."""
    csr = graph.csr
    device = resolve_device(cfg.device)
    fanouts = resolve_fanouts(csr, cfg.fanouts)
    eval_fanouts = (
        fanouts if cfg.eval_fanouts is None else resolve_fanouts(csr, cfg.eval_fanouts)
    )
    features = {t: x.float().contiguous() for t, x in graph.features.items()}
    model = _new_model(cfg, graph).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    objectives = {
        name: OBJECTIVES[name](params, model, graph)
        for name, params in cfg.objective_params().items()
    }
    edges = target_edges(graph)
    negatives = make_negative_sampler(
        cfg.neg_mode,
        cfg.num_neg,
        graph=csr,
        edge_types=[et for et, _, _ in edges],
        params=cfg.hard_negatives,
    )
    full_mode = cfg.use_full_graph(csr.num_edges())
    if full_mode and cfg.neighbourhood != "uniform":
        raise ValueError(
            f"neighbourhood={cfg.neighbourhood!r} needs the sampled mode (this "
            f"graph's {csr.num_edges()} edges <= full_max_edges="
            f"{cfg.full_max_edges} make mode {cfg.mode!r} train on the full graph)"
        )
    for name, objective in objectives.items():
        if objective.needs_full_graph and not full_mode:
            raise ValueError(
                f"objective {name!r} needs the full-graph mode (hgt.train.mode: "
                f"full, or auto on a graph of at most full_max_edges="
                f"{cfg.full_max_edges} edges; this one has {csr.num_edges()})"
            )
    if not full_mode and num_hops(fanouts) != cfg.layers:
        logger.warning(
            "fanouts sample %d hops for %d HGT layers", num_hops(fanouts), cfg.layers
        )
    local = shard(
        edges, rank=rank, world_size=world_size, seed=cfg.seed, seed_users=seed_users
    )
    batch_size = cfg.full_batch_size if full_mode else cfg.batch_size
    steps = count_batches(local, batch_size, negatives.min_batch())
    if world_size > 1:
        steps = int(all_reduce([steps], dist.ReduceOp.MAX, device)[0])
    num_edges = sum(int(s.numel()) for _, s, _ in edges)
    run = _Run(
        cfg=cfg,
        graph=graph,
        rank=rank,
        world_size=world_size,
        device=device,
        model=model,
        forward=model,
        optimizer=optimizer,
        objectives=objectives,
        negatives=negatives,
        local=local,
        batch_size=batch_size,
        steps_per_epoch=steps,
        features=features,
        fanouts=fanouts,
        eval_fanouts=eval_fanouts,
        sampler=None,
        full=None,
        comm=CommTimer(world_size),
        fingerprint=fingerprint(cfg, model.config, world_size, num_edges),
        fail_at=_fail_at(cfg),
    )
    if full_mode:
        full = FullGraph.from_csr(csr, model.edge_types)
        for et, _, _ in edges:  # on the CPU, where the batches are drawn
            if (et[0], et[2]) not in run.pair_keys:
                run.pair_keys[(et[0], et[2])] = full.pair_keys(et[0], et[2])
        run.full = full.to(device)
        x = {t: f.to(device) for t, f in features.items()} if cfg.use_features else None
        run.forward = _FullGraphForward(model, run.full, x)
    elif cfg.neighbourhood == "pinsage":
        run.sampler = PinSageNeighborSampler(
            csr,
            fanouts,
            walks=cfg.importance_walks,
            walk_length=cfg.importance_walk_length,
            seed=derive_seed(cfg.seed, rank),
        )
    else:
        run.sampler = NeighborSampler(csr, fanouts, seed=derive_seed(cfg.seed, rank))
    return run


def _wrap(run: _Run) -> None:
    """DDP (and ``torch.compile``) around the step's forward module."""
    if run.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(
            run.forward,
            device_ids=[run.device.index] if run.device.type == "cuda" else None,
            # a sampled batch may miss relations; in a full pass the last layer's
            # weights of node types no objective reads get no gradient (DBLP's
            # link objective reads authors and papers, not terms and venues)
            find_unused_parameters=True,
        )
        ddp.register_comm_hook(run.comm, timed_allreduce_hook)
        run.forward = ddp
    if run.cfg.compile and run.full is None:
        run.forward = torch.compile(run.forward, dynamic=True)  # type: ignore[assignment]


def _embed_users(run: _Run, ids: Tensor) -> Tensor:
    """Embeddings of users ``ids`` by the current model (SOM set-up)."""
    user_t = run.graph.schema.user_type
    if run.full is not None:
        x = run.features if run.cfg.use_features else None
        return embed_full(run.model, run.full, x)[user_t].index_select(0, ids)
    return embed_nodes(
        run.model,
        run.graph.csr,
        run.features,
        user_t,
        ids,
        fanouts=run.eval_fanouts,
        batch_size=run.cfg.val_batch_size,
        device=run.device,
        seed=derive_seed(run.cfg.seed, 105),
        progress=False,
    )


def _batch(run: _Run, r: int, idx: Tensor, step_seed: int) -> tuple[Any, LinkBatch]:
    """The step's model input (sampled subgraph, or the keep masks of the full
    graph) and its positives / negatives."""
    cfg, csr = run.cfg, run.graph.csr
    et, src, dst = run.local[r]
    u, i = src[idx], dst[idx]
    if run.full is None:
        assert run.sampler is not None
        run.sampler.load_state_dict(
            {"rng": np.random.PCG64(step_seed).state, "seed": step_seed}
        )
        data = run.sampler.sample_links(
            et, u, i, negatives=run.negatives, remove_targets=cfg.remove_targets
        )
        attach_x(data, run.features)
        data = data.to(run.device)
        batch = LinkBatch.from_data(data)
        batch.seed = step_seed
        return data, batch
    n_s, n_d = csr.num_nodes[et[0]], csr.num_nodes[et[2]]
    draw = run.negatives.draw(
        u,
        i,
        num_src=n_s,
        num_dst=n_d,
        rng=np.random.default_rng(step_seed),
        is_positive=positive_test(csr, et, u, i),
    )
    keep = None
    if cfg.remove_targets:
        masks = FullGraph.keep_masks(run.pair_keys[(et[0], et[2])], u * n_d + i)
        keep = {t: m.to(run.device) for t, m in masks.items()}
    batch = LinkBatch(
        et, u, i, draw.src_neg, draw.dst_neg, ~draw.src_bad, ~draw.dst_bad, step_seed
    ).to(run.device)
    return keep, batch


def _message_passing(
    run: _Run, batch: LinkBatch, keep: Any
) -> tuple[Any, list[tuple[str, Any]]]:
    """Full-graph mode: the step's keep flags after every objective's
    ``message_keep``, and the extra passes their ``extra_views`` ask for (from
    the step's flags before those), as ``(objective name, keep)``."""
    assert run.full is not None
    views = [
        (name, view)
        for name, objective in run.objectives.items()
        for view in objective.extra_views(batch, keep, run.full)
    ]
    for objective in run.objectives.values():
        keep = objective.message_keep(batch, keep, run.full)
    return keep, views


def _step(run: _Run, state: TrainState, r: int, idx: Tensor) -> dict[str, float]:
    """One optimiser step on the positives ``idx`` of local relation ``r``."""
    step_seed = derive_seed(run.cfg.seed, run.rank, state.step)
    torch.manual_seed(step_seed)
    t0 = time.perf_counter()
    inputs, batch = _batch(run, r, idx, step_seed)
    views: list[tuple[str, Any]] = []
    if run.full is not None:
        inputs, views = _message_passing(run, batch, inputs)
    t1 = time.perf_counter()
    if views:
        outputs, extra = run.forward(inputs, [keep for _, keep in views])
        for (name, _), out in zip(views, extra, strict=True):
            batch.views.setdefault(name, []).append(out)
    else:
        outputs = run.forward(inputs)
    loss = torch.stack(
        [o.params.weight * o.loss(batch, outputs) for o in run.objectives.values()]
    ).sum()
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    reduce = sum_over_ranks if run.distributed else None
    for objective in run.objectives.values():
        objective.after_step(batch, outputs, reduce)
    value = float(loss.detach())
    t2 = time.perf_counter()
    seeds = (
        torch.unique(
            torch.cat([batch.src_index, batch.src_neg_index.flatten()])
        ).numel()
        + torch.unique(
            torch.cat([batch.dst_index, batch.dst_neg_index.flatten()])
        ).numel()
    )
    return {"loss": value, "seeds": seeds, "sample": t1 - t0, "compute": t2 - t1}


def _checkpoint(run: _Run, state: TrainState) -> None:
    """Rank 0 writes a checkpoint (global loss sums); the others wait."""
    if run.cfg.checkpoint_dir is None:
        return
    glob = [state.loss_sum, state.loss_n]
    if run.distributed:
        glob = all_reduce(glob, dist.ReduceOp.SUM, run.device)
    if run.rank == 0:
        ckpt.save(
            Path(run.cfg.checkpoint_dir),
            state,
            model=run.model,
            optimizer=run.optimizer,
            fingerprint=run.fingerprint,
            global_loss=(glob[0], glob[1]),
            keep=run.cfg.keep_checkpoints,
        )
    if run.distributed:
        dist.barrier()


def _resume_or_reset(run: _Run, state: TrainState) -> TrainState:
    """The latest checkpoint's state (``resume``), else a fresh start with the
    directory's old checkpoints deleted."""
    cfg, rank = run.cfg, run.rank
    directory = Path(cfg.checkpoint_dir)  # type: ignore[arg-type]
    if not cfg.resume:
        if rank == 0:
            for _, old in ckpt.list_hgt_checkpoints(directory):
                old.unlink(missing_ok=True)
        if run.distributed:
            dist.barrier()
        return state
    found = ckpt.latest_hgt_checkpoint(directory)
    step = -1 if found is None else found[0]
    if run.distributed:
        lo = all_reduce([step], dist.ReduceOp.MIN, run.device)[0]
        hi = all_reduce([step], dist.ReduceOp.MAX, run.device)[0]
        if lo != hi:
            raise ValueError(
                f"ranks see different latest checkpoints in {str(directory)!r} "
                f"(steps {int(lo)} .. {int(hi)}): checkpoint_dir must be on a file "
                "system shared by every machine"
            )
    if found is None:
        return state
    restored = ckpt.restore(
        found[1],
        model=run.model,
        optimizer=run.optimizer,
        fingerprint=run.fingerprint,
        rank=rank,
    )
    if restored.stop_reason in ("max_steps", "epochs"):
        restored.stop_reason = None  # a later max_steps / epochs may continue
    restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    restored.history.resumed_from_step.append(restored.step)
    restored.history.restarts.append(restarts)
    if rank == 0:
        logger.info(
            "Resumed HGT from %s (step %d, epoch %d, restart %d)",
            found[1],
            restored.step,
            restored.epoch,
            restarts,
        )
    return restored


def _run_epoch(run: _Run, state: TrainState) -> dict[str, float]:
    """Steps of the current epoch from ``state.epoch_step`` until its end or
    ``max_steps``; returns the epoch's timers and counts on this rank."""
    cfg = run.cfg
    plan = epoch_plan(
        run.local,
        batch_size=run.batch_size,
        steps=run.steps_per_epoch,
        seed=cfg.seed,
        epoch=state.epoch,
        rank=run.rank,
        min_batch=run.negatives.min_batch(),
    )
    set_epoch = getattr(run.negatives, "set_epoch", None)
    if set_epoch is not None:  # e.g. a curriculum of hard negatives
        set_epoch(state.epoch)
    run.model.train()
    stats = {"sample": 0.0, "compute": 0.0, "seeds": 0.0, "edges": 0.0}
    run.comm.seconds = 0.0
    start = time.perf_counter()
    bar = progress_bar(
        total=run.steps_per_epoch,
        initial=state.epoch_step,
        desc=f"HGT epoch {state.epoch + 1}/{cfg.epochs}",
        unit="step",
        disable=not (cfg.progress and run.rank == 0),
    )
    try:
        while state.epoch_step < run.steps_per_epoch:
            if cfg.max_steps is not None and state.step >= cfg.max_steps:
                state.stop_reason = "max_steps"
                break
            _maybe_fail(run, state.step)
            r, idx = plan[state.epoch_step]
            out = _step(run, state, r, idx)
            for key in ("sample", "compute", "seeds"):
                stats[key] += out[key]
            stats["edges"] += idx.numel()
            state.history.train_seconds += out["sample"] + out["compute"]
            state.step += 1
            state.epoch_step += 1
            state.loss_sum += out["loss"]
            state.loss_n += 1
            rate = stats["seeds"] / max(time.perf_counter() - start, 1e-9)
            bar.update(1)
            bar.set_postfix(
                loss=f"{out['loss']:.4f}", seeds_s=f"{rate:.0f}", refresh=False
            )
            if cfg.log_every and state.step % cfg.log_every == 0:
                logger.info(
                    "HGT rank %d step %d: loss %.4f, %.0f seeds/s",
                    run.rank,
                    state.step,
                    out["loss"],
                    rate,
                )
            if (
                cfg.checkpoint_every
                and state.step % cfg.checkpoint_every == 0
                and state.epoch_step < run.steps_per_epoch  # else: epoch end
            ):
                _checkpoint(run, state)
    finally:
        bar.close()
    stats["seconds"] = time.perf_counter() - start
    stats["comm"] = run.comm.seconds
    return stats


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

    See the module docstring. With ``world_size > 1`` every rank calls this
    function with the same arguments (except ``rank`` / ``seed_users``) after
    ``torch.distributed.init_process_group``.

    Args:
        graph: the graph artifact (train-only message-passing graph, features).
        val_pairs: held-out ``(users, items)`` id arrays, a DataFrame with
            ``user`` / ``item`` columns, or ``None`` (no validation, no early
            stopping).
        config: :class:`HGTTrainConfig` or a dict of its fields.
        rank: this process's rank.
        world_size: number of processes.
        seed_users: user ids whose positive edges this rank trains on (e.g. the
            users of its graph partitions); default: a deterministic split.

    Returns:
        ``(model, history)``: the encoder on the training device (eval mode) and
        :meth:`History.to_dict`.
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
    if world_size > 1 and not (
        dist.is_initialized() and dist.get_world_size() == world_size
    ):
        raise ValueError(
            f"world_size={world_size} needs an initialised torch.distributed process "
            "group of that size"
        )
    schema = graph.schema
    val = check_pairs(
        val_pairs,
        graph.csr.num_nodes[schema.user_type],
        graph.csr.num_nodes[schema.item_type],
    )
    users = None
    if seed_users is not None:
        users = torch.as_tensor(np.asarray(seed_users)).long().view(-1)
    old_threads = torch.get_num_threads()
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    try:
        run = _build(cfg, graph, rank=rank, world_size=world_size, seed_users=users)
        mode = "full" if run.full is not None else "sampled"
        state = TrainState(history=History(world_size=world_size, mode=mode))
        if cfg.checkpoint_dir is not None:
            state = _resume_or_reset(run, state)
        state.epoch_step = min(state.epoch_step, run.steps_per_epoch)
        for objective in run.objectives.values():
            objective.prepare(
                lambda ids: _embed_users(run, ids),
                num_users=graph.csr.num_nodes[schema.user_type],
                seed=cfg.seed,
                distributed=run.distributed,
            )
        _wrap(run)
        _log_start(run, state)
        _train(run, state, val)
        if cfg.restore_best and state.best_state is not None:
            run.model.load_state_dict(state.best_state)
            logger.info("Restored the best epoch (%d)", state.best_epoch)
        run.model.eval()
        return run.model, state.history.to_dict()
    finally:
        if cfg.num_threads is not None:
            torch.set_num_threads(old_threads)


def _log_start(run: _Run, state: TrainState) -> None:
    logger.info(
        "HGT rank %d/%d on %s, %s mode: %d local positives over %s, %d steps/epoch "
        "of %d, epochs %d..%d, step %d",
        run.rank,
        run.world_size,
        run.device,
        state.history.mode,
        sum(int(s.numel()) for _, s, _ in run.local),
        [et[1] for et, _, _ in run.local],
        run.steps_per_epoch,
        run.batch_size,
        state.epoch + 1,
        run.cfg.epochs,
        state.step,
    )


def _train(run: _Run, state: TrainState, val: tuple[Tensor, Tensor] | None) -> None:
    """Epochs until ``epochs``, ``max_steps`` or early stopping."""
    cfg = run.cfg
    if run.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(run.device)
    last_saved = -1
    partial: dict[str, float] | None = None
    while state.epoch < cfg.epochs and state.stop_reason is None:
        stats = _run_epoch(run, state)
        if state.epoch_step < run.steps_per_epoch:
            # stopped inside the epoch (max_steps): validated after the last
            # checkpoint, so a resumed run matches an uninterrupted one
            partial = stats if stats["edges"] else None
            break
        _end_epoch(run, state, val, stats)
        _checkpoint(run, state)
        last_saved = state.step
    if state.stop_reason is None:
        state.stop_reason = "epochs"
    state.history.stop_reason = state.stop_reason
    state.history.total_steps = state.step
    if last_saved != state.step:
        _checkpoint(run, state)
    if partial is not None:
        fraction = state.epoch_step / run.steps_per_epoch
        _end_epoch(run, state, val, partial, fraction=fraction)


def _validation_graph(run: _Run) -> FullGraph | None:
    """The full graph validation embeds with (``val_mode``), else ``None``
    (sampled neighbourhoods)."""
    if run.full is not None:
        return run.full
    cfg, csr = run.cfg, run.graph.csr
    if cfg.val_mode == "sampled" or (
        cfg.val_mode == "auto" and csr.num_edges() > cfg.full_max_edges
    ):
        return None
    if run.val_full is None:
        run.val_full = FullGraph.from_csr(csr, run.model.edge_types).to(run.device)
    return run.val_full


def _end_epoch(
    run: _Run,
    state: TrainState,
    val: tuple[Tensor, Tensor] | None,
    stats: dict[str, float],
    fraction: float = 1.0,
) -> None:
    """Reduce the epoch's statistics, validate (rank 0), early stopping.

    ``fraction < 1``: training stopped inside the epoch (``max_steps``) and this
    is its final report: validated and recorded (``epoch_fraction``), a candidate
    for ``restore_best``, but no early-stopping count and no epoch advance.
    """
    cfg, h = run.cfg, state.history
    partial = fraction < 1.0
    sums = [state.loss_sum, state.loss_n, stats["seeds"], stats["edges"]]
    sums += [stats["sample"], stats["compute"], stats["comm"]]
    peaks = [stats["seconds"], peak_rss_mb()]
    if run.distributed:
        sums = all_reduce(sums, dist.ReduceOp.SUM, run.device)
        peaks = all_reduce(peaks, dist.ReduceOp.MAX, run.device)
    seconds = peaks[0]
    metrics = {"val_loss": math.nan, "val_recall": math.nan, "val_som_loss": math.nan}
    val_seconds = 0.0
    if run.rank == 0 and val is not None:
        begin = time.perf_counter()
        metrics.update(
            validate(
                run.model,
                run.graph,
                run.features,
                val,
                cfg=cfg,
                objectives=run.objectives,
                fanouts=run.fanouts,
                eval_fanouts=run.eval_fanouts,
                device=run.device,
                full=_validation_graph(run),
            )
        )
        val_seconds = time.perf_counter() - begin
    if run.distributed:
        values = [metrics["val_loss"], metrics["val_recall"], metrics["val_som_loss"]]
        values = broadcast([*values, val_seconds], run.device)
        metrics = dict(
            zip(("val_loss", "val_recall", "val_som_loss"), values[:3], strict=True)
        )
        val_seconds = values[3]

    def opt(x: float) -> float | None:
        return None if math.isnan(x) else float(x)

    epoch = state.epoch + 1
    h.epoch.append(epoch)
    h.train_loss.append(sums[0] / max(sums[1], 1.0))
    h.val_loss.append(opt(metrics["val_loss"]))
    h.val_recall.append(opt(metrics["val_recall"]))
    h.val_som_loss.append(opt(metrics["val_som_loss"]))
    h.seconds.append(seconds)
    h.val_seconds.append(val_seconds)
    h.seeds_per_s.append(sums[2] / max(seconds, 1e-9))
    h.edges_per_s.append(sums[3] / max(seconds, 1e-9))
    h.sample_s.append(sums[4])
    h.compute_s.append(sums[5])
    h.allreduce_s.append(sums[6])
    h.peak_rss_mb.append(peaks[1])
    h.peak_cuda_mb.append(
        torch.cuda.max_memory_allocated(run.device) / 2**20
        if run.device.type == "cuda"
        else None
    )
    h.steps.append(state.step)
    h.epoch_fraction.append(fraction)
    _early_stopping(run, state, metrics["val_recall"], epoch, partial)
    if run.rank == 0:
        logger.info(
            "HGT epoch %d/%d%s: train loss %.4f, val loss %s, val Recall@%d %s, "
            "%.1f s, %.0f positives/s (batches %.1f s, fwd+bwd %.1f s, allreduce "
            "%.1f s)",
            epoch,
            cfg.epochs,
            f" ({fraction:.0%} of it, max_steps)" if partial else "",
            h.train_loss[-1],
            "n/a" if h.val_loss[-1] is None else f"{h.val_loss[-1]:.4f}",
            cfg.val_k,
            "n/a" if h.val_recall[-1] is None else f"{h.val_recall[-1]:.4f}",
            seconds,
            h.edges_per_s[-1],
            sums[4],
            sums[5],
            sums[6],
        )
    if not partial:
        state.epoch = epoch
        state.epoch_step = 0
        state.loss_sum = state.loss_n = 0.0


def _early_stopping(
    run: _Run, state: TrainState, recall: float, epoch: int, partial: bool
) -> None:
    """Track the best epoch (its weights for ``restore_best``) and patience."""
    if math.isnan(recall):
        return
    if recall > state.best_metric + 1e-12:
        state.best_metric = recall
        state.best_epoch = epoch
        state.bad_epochs = 0
        state.best_state = {
            k: v.detach().to("cpu", copy=True)
            for k, v in run.model.state_dict().items()
        }
        state.history.best_epoch = epoch
        state.history.best_val_recall = recall
    elif not partial:
        state.bad_epochs += 1
        patience = run.cfg.patience
        if patience is not None and state.bad_epochs >= patience:
            state.stop_reason = "early_stopping"
            if run.rank == 0:
                logger.info(
                    "Early stopping after epoch %d (best epoch %d, Recall@%d %.4f)",
                    epoch,
                    state.best_epoch,
                    run.cfg.val_k,
                    state.best_metric,
                )
