"""Training of :class:`~hgt_cluster_kedro.models.srgnn.SRGNN` with validation-based
epoch selection, checkpoints and exact resume.

The protocol of the authors' code: Adam (``lr``, weight decay ``l2``), the
learning rate multiplied by ``lr_dc`` every ``lr_dc_step`` epochs, mini-batches of
shuffled prefixes, cross-entropy over all items. After each epoch the model is
scored on the validation prefixes (HitRate@K, MRR@K); the best epoch's weights
(by ``select_metric``) are returned, and training stops after ``patience`` epochs
without improvement. Model, optimizer, schedule, shuffling generator, history
and the best weights are in the checkpoint written after every epoch, so a
resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from hgt_cluster_kedro.models.srgnn import SRGNN
from hgt_cluster_kedro.session.evaluate import next_item_metrics
from hgt_cluster_kedro.session.sessions import Prefixes

from .checkpoint import (
    changed_keys,
    checkpoint_path,
    flatten_state,
    latest_checkpoint,
    load_checked,
    prune_checkpoints,
    save_checkpoint,
    strip_prefix,
    unflatten_state,
)

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "srgnn"
_FORMAT = "srgnn_checkpoint"
_VERSION = 1


def scorer(model: SRGNN, device: torch.device | str = "cpu"):
    """``padded prefixes (numpy) -> scores (numpy)`` of ``model`` in eval mode."""

    def score(seqs: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return model(torch.as_tensor(seqs, device=device)).float().cpu().numpy()

    return score


def _epoch(
    model: SRGNN,
    *,
    train: Prefixes,
    optimizer: torch.optim.Optimizer,
    gen: torch.Generator,
    batch_size: int,
    device: torch.device,
) -> tuple[float, float]:
    model.train()
    order = torch.randperm(len(train), generator=gen).numpy()
    total, start = 0.0, time.perf_counter()
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        seqs = torch.as_tensor(train.padded(idx), device=device)
        target = torch.as_tensor(train.target[idx] - 1, device=device)
        loss = F.cross_entropy(model(seqs), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(idx)
    return total / len(order), time.perf_counter() - start


def train_srgnn(
    train: Prefixes,
    valid: Prefixes | None,
    num_items: int,
    *,
    hidden: int = 100,
    step: int = 1,
    hybrid: bool = True,
    epochs: int = 30,
    batch_size: int = 100,
    lr: float = 0.001,
    l2: float = 1e-5,
    lr_dc: float = 0.1,
    lr_dc_step: int = 3,
    patience: int | None = 10,
    top_k: int = 20,
    select_metric: str = "mrr",
    eval_batch_size: int = 512,
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    keep_checkpoints: int = 2,
    device: str = "cpu",
    num_threads: int | None = None,
    fingerprint: Mapping[str, Any] | None = None,
) -> tuple[SRGNN, dict[str, Any]]:
    """Train SR-GNN on ``train`` prefixes; select the epoch on ``valid``.

    Args:
        train: training examples (model item ids ``1..num_items``).
        valid: validation examples; ``None`` keeps the last epoch.
        num_items: items scored.
        hidden, step, hybrid: see :class:`SRGNN`.
        epochs: most epochs.
        batch_size: prefixes per step.
        lr, l2: Adam learning rate and weight decay.
        lr_dc, lr_dc_step: learning-rate decay factor and period (epochs).
        patience: stop after this many epochs without a better validation
            score (``None``: never).
        top_k: cut-off of the validation HitRate / MRR.
        select_metric: ``"mrr"`` or ``"hitrate"`` at ``top_k``.
        eval_batch_size: prefixes per scoring batch.
        seed: initialisation and shuffling.
        checkpoint_dir: a checkpoint per epoch there (``None``: off).
        resume: continue from the latest checkpoint (same configuration).
        keep_checkpoints: checkpoints kept (``0`` keeps all).
        device: ``cpu`` or ``cuda``.
        num_threads: torch threads during training (``None``: unchanged).
        fingerprint: extra configuration a checkpoint must match (data summary).

    Returns:
        ``(model, history)``: the selected epoch's model (eval mode) and
        ``epoch``, ``loss``, ``seconds``, ``valid_hitrate``, ``valid_mrr``,
        ``best_epoch``, ``lr``.
    """
    _check(
        hidden=hidden,
        step=step,
        epochs=epochs,
        batch_size=batch_size,
        lr_dc_step=lr_dc_step,
        top_k=top_k,
        select_metric=select_metric,
        n_train=len(train),
    )
    dev = torch.device(device)
    old_threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(int(num_threads))
    config = {
        "hidden": int(hidden),
        "step": int(step),
        "hybrid": bool(hybrid),
        "num_items": int(num_items),
        "batch_size": int(batch_size),
        "lr": float(lr),
        "l2": float(l2),
        "lr_dc": float(lr_dc),
        "lr_dc_step": int(lr_dc_step),
        "top_k": int(top_k),
        "select_metric": select_metric,
        "seed": int(seed),
        "n_train": len(train),
        "n_valid": 0 if valid is None else len(valid),
        **{f"data.{k}": v for k, v in (fingerprint or {}).items()},
    }
    try:
        gen = torch.Generator().manual_seed(int(seed))
        model = SRGNN(num_items, hidden, step, hybrid)
        model.reset_parameters(generator=gen)
        model.to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=l2)
        history: dict[str, Any] = {
            "epoch": [],
            "loss": [],
            "seconds": [],
            "lr": [],
            "valid_hitrate": [],
            "valid_mrr": [],
            "best_epoch": 0,
        }
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        start_epoch = 0
        if checkpoint_dir is not None and resume:
            found = latest_checkpoint(
                checkpoint_dir, CHECKPOINT_PREFIX, max_epoch=epochs
            )
            if found is not None:
                start_epoch, history, best_state = _restore(
                    found[1], config, model, optimizer, gen
                )
                logger.info("Resumed SR-GNN from %s (epoch %d)", found[1], start_epoch)
        key = f"valid_{select_metric}"
        for epoch in range(start_epoch, epochs):
            if _stopped(history, key, patience):
                break
            rate = lr * lr_dc ** (epoch // lr_dc_step)
            for group in optimizer.param_groups:
                group["lr"] = rate
            loss, seconds = _epoch(
                model,
                train=train,
                optimizer=optimizer,
                gen=gen,
                batch_size=batch_size,
                device=dev,
            )
            history["epoch"].append(epoch + 1)
            history["loss"].append(loss)
            history["seconds"].append(seconds)
            history["lr"].append(rate)
            if valid is not None and len(valid):
                m = next_item_metrics(
                    scorer(model, dev), valid, k=top_k, batch_size=eval_batch_size
                )
                history["valid_hitrate"].append(m[f"hitrate@{top_k}"])
                history["valid_mrr"].append(m[f"mrr@{top_k}"])
            scores = history[key]
            if not scores or scores[-1] > max(scores[:-1], default=-1.0):
                history["best_epoch"] = epoch + 1
                best_state = {
                    k: v.detach().clone() for k, v in model.state_dict().items()
                }
            logger.info(
                "SR-GNN epoch %d/%d: loss %.4f, %.1f s (%.0f prefixes/s), valid "
                "HR@%d %s, MRR@%d %s",
                epoch + 1,
                epochs,
                loss,
                seconds,
                len(train) / max(seconds, 1e-9),
                top_k,
                f"{history['valid_hitrate'][-1]:.4f}"
                if history["valid_hitrate"]
                else "–",
                top_k,
                f"{history['valid_mrr'][-1]:.4f}" if history["valid_mrr"] else "–",
            )
            if checkpoint_dir is not None:
                _save(
                    checkpoint_dir,
                    epoch=epoch + 1,
                    config=config,
                    model=model,
                    optimizer=optimizer,
                    gen=gen,
                    history=history,
                    best_state=best_state,
                    keep=keep_checkpoints,
                )
        model.load_state_dict(best_state)
        model.eval()
    finally:
        if num_threads:
            torch.set_num_threads(old_threads)
    return model, history


def _check(*, select_metric: str, n_train: int, **positive: int) -> None:
    """Early errors naming the ``session.model`` parameter."""
    for name, value in positive.items():
        if int(value) < 1:
            raise ValueError(f"session.model.{name} must be >= 1 (got {value})")
    if select_metric not in ("mrr", "hitrate"):
        raise ValueError(
            f"session.model.select_metric must be 'mrr' or 'hitrate' (got "
            f"{select_metric!r})"
        )
    if n_train == 0:
        raise ValueError("session: no training prefix (no train session left)")


def _stopped(history: Mapping[str, Any], key: str, patience: int | None) -> bool:
    scores = history[key]
    if patience is None or not scores:
        return False
    return len(scores) - int(history["best_epoch"]) >= int(patience)


def _save(
    directory: str | Path,
    *,
    epoch: int,
    config: Mapping[str, Any],
    model: SRGNN,
    optimizer: torch.optim.Optimizer,
    gen: torch.Generator,
    history: Mapping[str, Any],
    best_state: Mapping[str, torch.Tensor],
    keep: int,
) -> None:
    opt_tensors, opt_skeleton = flatten_state(optimizer.state_dict(), prefix="optim/")
    tensors = {
        **{f"model/{k}": v for k, v in model.state_dict().items()},
        **{f"best/{k}": v for k, v in best_state.items()},
        **opt_tensors,
        "rng": gen.get_state(),
    }
    meta = {
        "format": _FORMAT,
        "version": _VERSION,
        "epoch": epoch,
        "config": dict(config),
        "history": dict(history),
        "optimizer": opt_skeleton,
    }
    save_checkpoint(checkpoint_path(directory, CHECKPOINT_PREFIX, epoch), tensors, meta)
    prune_checkpoints(directory, CHECKPOINT_PREFIX, keep, epoch)


def _restore(
    path: Path,
    config: Mapping[str, Any],
    model: SRGNN,
    optimizer: torch.optim.Optimizer,
    gen: torch.Generator,
) -> tuple[int, dict[str, Any], dict[str, torch.Tensor]]:
    tensors, meta = load_checked(path, _FORMAT, _VERSION, "checkpoint_dir:")
    diff = changed_keys(meta["config"], config)
    if diff:
        detail = ", ".join(
            f"{k}: {meta['config'].get(k)!r} -> {config.get(k)!r}" for k in diff
        )
        raise ValueError(
            f"checkpoint_dir: {str(path)!r} was written with another configuration "
            f"({detail}); use another checkpoint_dir or resume=False"
        )
    model.load_state_dict(strip_prefix(tensors, "model/"))
    optimizer.load_state_dict(unflatten_state(tensors, meta["optimizer"]))
    gen.set_state(tensors["rng"])
    best = strip_prefix(tensors, "best/")
    history = {
        k: (list(v) if isinstance(v, list) else v) for k, v in meta["history"].items()
    }
    return int(meta["epoch"]), history, best
