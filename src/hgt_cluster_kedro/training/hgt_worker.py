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

Exit status 0 on success. A ``ValueError`` (bad input, including pydantic's
``ValidationError``) exits with :data:`~hgt_cluster_kedro.training.elastic.EX_CONFIG`
(78), which the project's launcher does not retry; any other exception
propagates (exit status 1), which torchrun answers by restarting the group
(``max_restarts``) from the latest checkpoint. Either way the exception is
recorded in torchrun's error file (``@record``), so the launcher reports the
worker's own message.

**Closed stores.** Rank 0 hosts the job's store on ``MASTER_ADDR`` only
(:func:`~hgt_cluster_kedro.training.elastic.hosted_store`; torch's ``env://``
store would listen on every interface), the other ranks connect to it.

**No orphans.** A worker dies with its launcher: on Linux the kernel sends it
``SIGKILL`` when the launcher exits (``prctl(PR_SET_PDEATHSIG)``), and a
watchdog thread exits the worker if its parent changes (other systems, or a
launcher that died before the signal was armed). Killing ``kedro run`` with
``kill -9`` therefore leaves no worker training on in the run directory.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field
from torch.distributed.elastic.multiprocessing.errors import ErrorHandler, record

from ..graph.artifact import GraphArtifact
from ..runtime import resolve_device
from .checkpoint import atomic_write
from .elastic import EX_CONFIG, LAUNCHER_PID_ENV, hosted_store, is_loopback
from .hgt import HGTTrainConfig, save_hgt, train_hgt

logger = logging.getLogger("hgt_cluster_kedro.training.hgt_worker")

MODEL_FILE = "hgt_model.safetensors"
HISTORY_FILE = "history.json"

__all__ = [
    "HISTORY_FILE",
    "MODEL_FILE",
    "WorkerConfig",
    "exit_with_parent",
    "main",
    "run_worker",
]

_PR_SET_PDEATHSIG = 1


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


def exit_with_parent(expected_parent: int | None = None, poll_s: float = 1.0) -> None:
    """End this process when its parent (the torchrun agent) dies.

    Arms ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux (the kernel kills this
    process when the parent thread exits) and starts a daemon thread that exits
    the process when ``os.getppid()`` stops being ``expected_parent``, which
    also covers a parent that died before the signal was armed and systems
    without ``prctl``.

    Args:
        expected_parent: pid of the agent (default: ``HGT_LAUNCHER_PID`` from the
            environment, else the current parent).
        poll_s: seconds between the watchdog's checks.
    """
    if expected_parent is None:
        env = os.environ.get(LAUNCHER_PID_ENV)
        expected_parent = int(env) if env else os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
                logger.warning("prctl(PR_SET_PDEATHSIG) failed: %s", ctypes.get_errno())
        except (OSError, AttributeError) as exc:  # no libc / no prctl
            logger.warning("prctl(PR_SET_PDEATHSIG) unavailable: %s", exc)

    def orphaned() -> bool:
        return os.getppid() != expected_parent

    if orphaned():
        logger.error("launcher %d is gone before the worker started", expected_parent)
        os._exit(1)

    def watch() -> None:
        while not orphaned():
            time.sleep(poll_s)
        logger.error("launcher %d died: stopping this worker", expected_parent)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _job_store(rank: int, world_size: int, timeout: timedelta) -> Any:
    """The job's c10d store: hosted by rank 0 on ``MASTER_ADDR`` only.

    With ``TORCHELASTIC_USE_AGENT_STORE=True`` (static rendezvous) the agent
    hosts it and every rank connects, as in torch's ``env://``.
    """
    host = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = int(os.environ.get("MASTER_PORT", "29500"))
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" or rank != 0:
        return dist.TCPStore(host, port, world_size, False, timeout)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    if local < world_size and is_loopback(host):
        # fine for several "machines" on one host (tests); on a real cluster
        # the other machines cannot connect
        logger.warning(
            "MASTER_ADDR %r is a loopback address: other machines cannot reach "
            "rank 0's store unless they run on this host; set local_addr "
            "(hgt.launch.local_addr) to this machine's cluster address",
            host,
        )
    return hosted_store(
        host,
        port,
        timeout=timeout,
        world_size=world_size,
        wait_for_workers=True,
        what="MASTER_ADDR:MASTER_PORT",
    )


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
        timeout = timedelta(seconds=config.timeout_s)
        kwargs: dict[str, Any] = {"timeout": timeout}
        if device.type == "cuda":
            torch.cuda.set_device(device)
            kwargs["device_id"] = device
        store = _job_store(rank, world_size, timeout)
        dist.init_process_group(
            backend, store=store, rank=rank, world_size=world_size, **kwargs
        )
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


@record
def main(argv: list[str] | None = None) -> int:
    """``python -m hgt_cluster_kedro.training.hgt_worker --config CONFIG.json``.

    Returns 0, or :data:`~hgt_cluster_kedro.training.elastic.EX_CONFIG` after
    recording a ``ValueError`` (bad input, not worth a restart) in torchrun's
    error file; other exceptions propagate (``@record`` records them).
    """
    exit_with_parent()
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
    try:
        config = WorkerConfig.model_validate_json(Path(args.config).read_text())
        run_worker(config, threads=args.threads)
    except ValueError as exc:
        logger.exception("rank %s: bad input, not retried", rank)
        ErrorHandler().record_exception(exc)
        return EX_CONFIG
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
