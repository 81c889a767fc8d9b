"""Where HGT training is: the typed history, the loop state and its checkpoints.

A checkpoint (``hgt-stepNNNNNNNN.safetensors``, written atomically through
:mod:`~hgt_cluster_kedro.training.checkpoint`, no pickle) holds the model, the
optimiser, the best model so far, the :class:`TrainState` and the history, plus
the fingerprint of the run's settings that a resuming run is compared with.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..checkpoint import (
    changed_keys,
    checkpoint_path,
    flatten_state,
    latest_checkpoint,
    list_checkpoints,
    load_checked,
    prune_checkpoints,
    save_checkpoint,
    strip_prefix,
    unflatten_state,
)
from .config import RESUMABLE_KEYS

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_PREFIX",
    "History",
    "TrainState",
    "latest_hgt_checkpoint",
    "list_hgt_checkpoints",
    "restore",
    "save",
]

CHECKPOINT_PREFIX = "hgt"
_UNIT = "step"
_FORMAT = "hgt_checkpoint"
_VERSION = 2


@dataclass
class History:
    """Per-epoch records of a run (one entry per validated epoch, a partial
    last epoch of a ``max_steps`` stop included) and run-level facts.

    Per-epoch lists: ``epoch``, ``train_loss``, ``val_loss``, ``val_recall``,
    ``val_som_loss`` (joint SOM only), ``seconds`` (training wall time, max over
    ranks), ``val_seconds``, ``seeds_per_s`` / ``edges_per_s`` (all ranks;
    seeds = embedded endpoints), ``sample_s`` (batch preparation), ``compute_s``
    (forward + backward + step), ``allreduce_s`` (DDP bucket all-reduce,
    overlapping backward; these timers are summed over ranks), ``peak_rss_mb``
    (max over ranks), ``peak_cuda_mb``, ``steps`` (global step at the record),
    ``epoch_fraction`` (< 1 for a partial epoch).
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_recall: list[float | None] = field(default_factory=list)
    val_som_loss: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    val_seconds: list[float] = field(default_factory=list)
    seeds_per_s: list[float] = field(default_factory=list)
    edges_per_s: list[float] = field(default_factory=list)
    sample_s: list[float] = field(default_factory=list)
    compute_s: list[float] = field(default_factory=list)
    allreduce_s: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)
    peak_cuda_mb: list[float | None] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    epoch_fraction: list[float] = field(default_factory=list)
    #: rank 0's batch preparation + step time, all sessions of the run
    train_seconds: float = 0.0
    world_size: int = 1
    #: ``"full"`` or ``"sampled"``
    mode: str = "sampled"
    resumed_from_step: list[int] = field(default_factory=list)
    restarts: list[int] = field(default_factory=list)
    best_epoch: int = 0
    best_val_recall: float | None = None
    stop_reason: str | None = None
    total_steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the ``hgt_training`` record)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """From :meth:`to_dict` (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"history has unknown keys {sorted(unknown)}")
        return cls(**data)

    def __getitem__(self, key: str) -> Any:  # read access like the old dict
        return getattr(self, key)


@dataclass
class TrainState:
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
    history: History = field(default_factory=History)


def list_hgt_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every HGT checkpoint in ``directory``, sorted."""
    return list_checkpoints(directory, CHECKPOINT_PREFIX, _UNIT)


def latest_hgt_checkpoint(directory: str | Path) -> tuple[int, Path] | None:
    """``(step, path)`` of the latest HGT checkpoint in ``directory``, or None."""
    return latest_checkpoint(directory, CHECKPOINT_PREFIX, unit=_UNIT)


def save(
    directory: Path,
    state: TrainState,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    fingerprint: dict[str, Any],
    global_loss: tuple[float, float],
    keep: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint of ``state`` (rank 0) and prune older ones."""
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
        "history": state.history.to_dict(),
        "optimizer": opt_skeleton,
        "rng": "per-step: sampler and torch RNG re-seeded from (seed, rank, step)",
        "config": fingerprint,
        **(extra or {}),
    }
    path = save_checkpoint(
        checkpoint_path(directory, CHECKPOINT_PREFIX, state.step, _UNIT),
        tensors,
        meta,
    )
    prune_checkpoints(directory, CHECKPOINT_PREFIX, keep, state.step, _UNIT)
    logger.info("Saved checkpoint %s", path)
    return path


def restore(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    fingerprint: dict[str, Any],
    rank: int,
) -> TrainState:
    """Load a checkpoint into ``model`` / ``optimizer`` and return its state.

    Raises:
        ValueError: the checkpoint was written with settings other than
            ``fingerprint`` beyond those that may change on resume.
    """
    tensors, meta = load_checked(path, _FORMAT, _VERSION, "checkpoint")
    stored = meta["config"]
    changed = changed_keys(stored, fingerprint)
    fatal = [k for k in changed if k not in RESUMABLE_KEYS]
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
    return TrainState(
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
        history=History.from_dict(meta["history"]),
    )
