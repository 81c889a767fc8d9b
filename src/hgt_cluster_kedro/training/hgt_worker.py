"""torchrun entry point of distributed HGT training (no Kedro).

Run by :func:`hgt_cluster_kedro.training.distributed.launch` (torchrun's Python
API) or directly by torchrun on every machine::

    python -m torch.distributed.run --nnodes 1 --nproc_per_node 2 \\
        -m hgt_cluster_kedro.training.hgt_worker --config run/worker_config.json

Each process reads the JSON config (:class:`WorkerConfig`), sets
``torch.set_num_threads(threads_per_worker)``, initialises the process group from
torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...; gloo on
CPU, nccl on CUDA with ``cuda:LOCAL_RANK``), loads the graph artifact and the
validation pairs, and calls :func:`~hgt_cluster_kedro.training.hgt.train_hgt`.
Rank 0 alone then writes, atomically, into ``out_dir``:

* ``hgt_model.safetensors`` -- the encoder ``state_dict`` with its config in the
  header (:func:`~hgt_cluster_kedro.training.hgt.load_hgt` rebuilds it);
* ``history.json`` -- the training history (plus ``world_size``, ``restarts``).

Exit status 0 on success; any exception propagates (non-zero exit), which
torchrun answers by restarting the group (``max_restarts``) from the latest
checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field

from ..graph.artifact import GraphArtifact
from ..runtime import resolve_device
from .checkpoint import atomic_write
from .hgt import HGTTrainConfig, save_hgt, train_hgt

logger = logging.getLogger("hgt_cluster_kedro.training.hgt_worker")

MODEL_FILE = "hgt_model.safetensors"
HISTORY_FILE = "history.json"

__all__ = ["HISTORY_FILE", "MODEL_FILE", "WorkerConfig", "main", "run_worker"]


class WorkerConfig(BaseModel):
    """The JSON file every worker reads.

    Args:
        graph_dir: directory of a saved :class:`GraphArtifact`.
        val_pairs: safetensors file with int64 tensors ``user`` and ``item``
            (contiguous ids of the held-out validation pairs), or ``None``.
        owners: optional safetensors file with an int64 tensor ``owner`` (graph
            part of every user): rank ``r`` trains on the users of the parts
            ``p`` with ``p % world_size == r``; ``None``: deterministic split.
        train: the :class:`HGTTrainConfig` fields.
        out_dir: where rank 0 writes the model and the history.
        threads_per_worker: ``torch.set_num_threads`` of every worker.
        timeout_s: timeout of the collectives (process group).
    """

    model_config = ConfigDict(extra="forbid")

    graph_dir: str
    val_pairs: str | None = None
    owners: str | None = None
    train: HGTTrainConfig = Field(default_factory=HGTTrainConfig)
    out_dir: str
    threads_per_worker: int = Field(default=1, gt=0)
    timeout_s: int = Field(default=1800, gt=0)


def _load_tensors(path: str, names: tuple[str, ...]) -> list[torch.Tensor]:
    from safetensors.torch import load_file

    tensors = load_file(path)
    missing = [n for n in names if n not in tensors]
    if missing:
        raise ValueError(f"{path!r} has no tensors {missing}")
    return [tensors[n] for n in names]


def run_worker(config: WorkerConfig, threads: int | None = None) -> dict[str, Any]:
    """Train in this process as one torchrun worker; returns the history.

    Args:
        config: the worker configuration.
        threads: overrides ``config.threads_per_worker``.
    """
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(int(threads or config.threads_per_worker))
    device = resolve_device(config.train.device)
    initialised = False
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"timeout": timedelta(seconds=config.timeout_s)}
        if device.type == "cuda":
            torch.cuda.set_device(device)
            kwargs["device_id"] = device
        dist.init_process_group(backend, **kwargs)
        initialised = True
        logger.info(
            "rank %d/%d: process group %s up (restart %s)",
            rank,
            world_size,
            backend,
            os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"),
        )
    try:
        graph = GraphArtifact.load(config.graph_dir)
        val = None
        if config.val_pairs:
            users, items = _load_tensors(config.val_pairs, ("user", "item"))
            val = (users, items)
        seed_users = None
        if config.owners:
            (owner,) = _load_tensors(config.owners, ("owner",))
            seed_users = torch.nonzero(owner.long() % world_size == rank).view(-1)
        model, history = train_hgt(
            graph,
            val,
            config.train,
            rank=rank,
            world_size=world_size,
            seed_users=seed_users,
        )
        history = dict(history)
        if rank == 0:
            out = Path(config.out_dir)
            save_hgt(
                model,
                out / MODEL_FILE,
                extra={
                    "world_size": world_size,
                    "best_epoch": history.get("best_epoch"),
                    "best_val_recall": history.get("best_val_recall"),
                },
            )
            text = json.dumps(history, indent=2)
            atomic_write(out / HISTORY_FILE, lambda p: p.write_text(text))
            logger.info("Wrote %s and %s", out / MODEL_FILE, out / HISTORY_FILE)
        if initialised:
            dist.barrier()
        return history
    finally:
        if initialised:
            dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """``python -m hgt_cluster_kedro.training.hgt_worker --config CONFIG.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="worker config JSON")
    parser.add_argument(
        "--threads", type=int, default=None, help="override threads_per_worker"
    )
    args = parser.parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(
        level=logging.INFO,
        format=f"[rank {rank}] %(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    config = WorkerConfig.model_validate_json(Path(args.config).read_text())
    run_worker(config, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
