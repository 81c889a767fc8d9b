"""Launch distributed HGT training with PyTorch's own engine (torchrun + DDP).

:func:`launch` starts an elastic agent in this process through torchrun's Python
API (:func:`torch.distributed.launcher.api.elastic_launch` with a
:class:`~torch.distributed.launcher.api.LaunchConfig`); the agent runs
``nproc_per_node`` fresh interpreters of
``python -m hgt_cluster_kedro.training.hgt_worker --config CONFIG.json`` (only the
worker module: no Kedro session is created in the workers), restarts the whole
group up to ``max_restarts`` times when a worker fails (training resumes from
the latest checkpoint), and returns when every worker has exited.
:func:`train_distributed` is what a Kedro node calls: it writes the inputs and
the worker config into ``out_dir``, calls :func:`launch`, and returns the path of
the model and the history written by rank 0. With ``nproc_per_node=1`` and
``nnodes=1`` it still goes through the launcher (one worker, same code path,
same fault tolerance); gloo is not even initialised then.

**Several machines.** Every machine runs one agent; they meet at the c10d
rendezvous ``HOST:PORT`` (``HOST`` = the machine of ``node_rank`` 0, which hosts
the rendezvous store). The graph directory, the worker config and the
checkpoint directory must be on a file system shared by the machines, at the
same paths. Machine 0 calls ``train_distributed(..., nnodes=2, node_rank=0,
rdzv_endpoint="HOST:29500")`` (or ``launch``); the second machine joins with::

    TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 \\
    python -m torch.distributed.run --nnodes 2 --nproc_per_node 2 --node_rank 1 \\
        --rdzv_backend c10d --rdzv_endpoint HOST:29500 --rdzv_id hgt \\
        --max_restarts 3 \\
        -m hgt_cluster_kedro.training.hgt_worker \\
        --config OUT_DIR/work/worker_config.json --threads 1

(:func:`join_command` prints exactly this for given arguments; ``--rdzv_id``
must equal ``run_id``, and ``--nproc_per_node`` / ``--max_restarts`` should
match machine 0's.) ``launch(..., node_rank=1)`` on the second machine is
equivalent. With the c10d backend torchrun assigns the global ranks itself;
``node_rank`` only decides which agent hosts the store (``node_rank == 0``), as
torchrun ignores ``--node_rank`` for non-static rendezvous.
``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` (set by :func:`launch` for its
workers) gives every restart round a fresh worker store: with the store shared
with the agent (torchrun's default), keys of the failed round survive a restart
and the restarted gloo workers can read the dead ranks' addresses.

**Reliability.** :func:`launch` runs torchrun's agent through
:func:`~hgt_cluster_kedro.training.elastic.run_agent`: on one machine
(``nnodes=1``) nothing listens on the network (the rendezvous is a private
``FileStore`` in the work directory, or a store on loopback when
``rdzv_endpoint`` is given; rank 0's store, gloo and NCCL use loopback); on
several machines the stores bind the configured addresses only. A worker that
rejects its input (``ValueError``) is not restarted, and the launcher raises
the worker's own message. Workers die with the launcher
(:func:`~hgt_cluster_kedro.training.hgt_worker.exit_with_parent`), and
:func:`train_distributed` holds an exclusive
:class:`~hgt_cluster_kedro.training.run_lock.RunLock` on the run directory (and
on the checkpoint directory) for the whole launch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .checkpoint import atomic_write
from .elastic import (
    LAUNCHER_PID_ENV,
    interface_of,
    is_loopback,
    loopback_interface,
    run_agent,
    split_endpoint,
)
from .run_lock import RunLock

if TYPE_CHECKING:
    from ..graph.artifact import GraphArtifact
    from .hgt import HGTTrainConfig

# The launcher process imports nothing heavier than torch at module level (the
# graph / model / trainer modules are imported by the workers, and lazily by
# train_distributed), so an agent starts fast.

logger = logging.getLogger(__name__)

__all__ = ["WORKER_MODULE", "join_command", "launch", "train_distributed"]

WORKER_MODULE = "hgt_cluster_kedro.training.hgt_worker"
# torchrun >= 2.4 lets the workers reuse the agent's rendezvous TCPStore, which
# outlives a restart: the keys gloo wrote in the failed round (e.g. rank
# addresses) are still there when the restarted workers connect, and they may
# read the dead ones ("Gloo connectFullMesh failed ... Connection refused").
# Without sharing, rank 0 of every round hosts a fresh store on a fresh port.
_NO_SHARED_STORE = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"


@contextlib.contextmanager
def _env(values: Mapping[str, str]) -> Iterator[None]:
    """Temporarily set environment variables (inherited by the workers)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check_launch_args(
    *,
    nproc_per_node: int,
    nnodes: int,
    node_rank: int,
    rdzv_endpoint: str | None,
    rdzv_backend: str,
    max_restarts: int,
    threads_per_worker: int,
    local_addr: str | None = None,
) -> None:
    if int(nproc_per_node) < 1:
        raise ValueError(f"nproc_per_node must be >= 1 (got {nproc_per_node})")
    if int(nnodes) < 1:
        raise ValueError(f"nnodes must be >= 1 (got {nnodes})")
    if not 0 <= int(node_rank) < int(nnodes):
        raise ValueError(f"node_rank must be in [0, nnodes={nnodes}) (got {node_rank})")
    if rdzv_backend not in ("c10d", "static"):
        raise ValueError(
            f"rdzv_backend must be 'c10d' or 'static' (got {rdzv_backend!r})"
        )
    if rdzv_endpoint is None:
        if int(nnodes) > 1:
            raise ValueError(
                "rdzv_endpoint (hgt.launch.rdzv_endpoint) must be HOST:PORT of "
                f"machine 0 when nnodes > 1 (got null, nnodes={nnodes})"
            )
    else:
        host, _ = split_endpoint(rdzv_endpoint)
        if int(nnodes) == 1 and not is_loopback(host):
            raise ValueError(
                f"rdzv_endpoint {rdzv_endpoint!r} (hgt.launch.rdzv_endpoint): a "
                "single-machine run (nnodes=1) listens on loopback only; use "
                "127.0.0.1:PORT, or null for a free port chosen at launch"
            )
    if int(nnodes) == 1 and local_addr is not None and not is_loopback(local_addr):
        raise ValueError(
            f"local_addr {local_addr!r} (hgt.launch.local_addr): a single-machine "
            "run (nnodes=1) listens on loopback only; use 127.0.0.1 or null"
        )
    if int(max_restarts) < 0:
        raise ValueError(f"max_restarts must be >= 0 (got {max_restarts})")
    if int(threads_per_worker) < 1:
        raise ValueError(f"threads_per_worker must be >= 1 (got {threads_per_worker})")


def _network_env(nnodes: int, local_addr: str | None) -> dict[str, str]:
    """Interfaces gloo and NCCL bind (unless the user set them): loopback on one
    machine, the interface of ``local_addr`` on several."""
    iface = None
    if int(nnodes) == 1:
        iface = loopback_interface()
    elif local_addr:
        iface = interface_of(local_addr)
    if iface is None:
        return {}
    names = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")
    return {k: iface for k in names if k not in os.environ}


def join_command(
    config_path: str | Path,
    *,
    nproc_per_node: int = 2,
    nnodes: int = 2,
    node_rank: int = 1,
    rdzv_endpoint: str = "127.0.0.1:29500",
    rdzv_backend: str = "c10d",
    max_restarts: int = 3,
    threads_per_worker: int = 1,
    run_id: str = "hgt",
) -> str:
    """The shell command another machine runs to join :func:`launch`'s job.

    Args: as for :func:`launch`.
    """
    parts = [
        "python",
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(nnodes),
        "--nproc_per_node",
        str(nproc_per_node),
        "--node_rank",
        str(node_rank),
        "--rdzv_backend",
        rdzv_backend,
        "--rdzv_endpoint",
        rdzv_endpoint,
        "--rdzv_id",
        run_id,
        "--max_restarts",
        str(max_restarts),
        "-m",
        WORKER_MODULE,
        "--config",
        str(config_path),
        "--threads",
        str(threads_per_worker),
    ]
    return f"{_NO_SHARED_STORE}=1 " + shlex.join(parts)


def launch(
    config_path: str | Path,
    *,
    nproc_per_node: int = 2,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
    rdzv_backend: str = "c10d",
    max_restarts: int = 3,
    threads_per_worker: int = 1,
    run_id: str = "hgt",
    local_addr: str | None = None,
    monitor_interval: float = 0.5,
    rdzv_timeout: int = 900,
    log_dir: str | Path | None = None,
) -> None:
    """Run the HGT workers of this machine under a torchrun elastic agent.

    Blocks until the job finishes. Workers are fresh interpreters running
    ``python -m hgt_cluster_kedro.training.hgt_worker --config CONFIG --threads
    N`` with ``OMP_NUM_THREADS=threads_per_worker``.

    Args:
        config_path: the worker config JSON (:class:`WorkerConfig`).
        nproc_per_node: workers on this machine.
        nnodes: machines in the job (every one runs an agent).
        node_rank: this machine's index; 0 hosts the c10d store (with
            ``rdzv_backend="static"`` it is also the node's rank).
        rdzv_endpoint: ``HOST:PORT`` of the rendezvous (machine 0; its store
            listens on that address only). ``None`` (single machine only): a
            private file rendezvous in the config's directory, nothing listens.
            A single machine accepts loopback endpoints only.
        rdzv_backend: ``"c10d"`` (elastic, default) or ``"static"``.
        max_restarts: times the agent restarts the worker group after a failure.
        threads_per_worker: ``torch.set_num_threads`` / ``OMP_NUM_THREADS`` of
            every worker.
        run_id: job id shared by the machines (``--rdzv_id``).
        local_addr: address other machines reach this one at (default: torchrun's
            FQDN lookup); rank 0's store and gloo / NCCL bind it. Always
            loopback when ``nnodes=1``.
        monitor_interval: seconds between the agent's checks of its workers.
        rdzv_timeout: seconds to wait for all machines to join.
        log_dir: directory of the workers' log files (default: a temporary one).

    Raises:
        ValueError: invalid arguments, missing config file, or a worker rejected
            its input (not retried; the worker's message).
        hgt_cluster_kedro.training.elastic.AddressInUseError: the rendezvous
            port is taken (the message names ``hgt.launch.rdzv_endpoint``).
        hgt_cluster_kedro.training.elastic.WorkerFailedError: the workers kept
            failing after ``max_restarts`` restarts (with the worker's message).
    """
    _check_launch_args(
        nproc_per_node=nproc_per_node,
        nnodes=nnodes,
        node_rank=node_rank,
        rdzv_endpoint=rdzv_endpoint,
        rdzv_backend=rdzv_backend,
        max_restarts=max_restarts,
        threads_per_worker=threads_per_worker,
        local_addr=local_addr,
    )
    config_path = Path(config_path).resolve()
    if not config_path.is_file():
        raise ValueError(f"config_path {str(config_path)!r} is not a file")
    if int(nnodes) == 1:
        local_addr = local_addr or "127.0.0.1"
        if rdzv_endpoint is None and rdzv_backend == "static":
            rdzv_endpoint = "127.0.0.1:0"  # a free loopback port
    args = ["-u", "-m", WORKER_MODULE, "--config", str(config_path)]
    args += ["--threads", str(int(threads_per_worker))]
    if nnodes > 1 and node_rank == 0:
        logger.info(
            "Other machines join with: %s",
            join_command(
                config_path,
                nproc_per_node=nproc_per_node,
                nnodes=nnodes,
                node_rank=1,
                rdzv_endpoint=rdzv_endpoint,
                rdzv_backend=rdzv_backend,
                max_restarts=max_restarts,
                threads_per_worker=threads_per_worker,
                run_id=run_id,
            ),
        )
    logger.info(
        "Launching %d HGT worker(s) on node %d/%d (rendezvous %s %s, max_restarts %d)",
        nproc_per_node,
        node_rank,
        nnodes,
        rdzv_backend,
        rdzv_endpoint,
        max_restarts,
    )
    env = {
        "OMP_NUM_THREADS": str(int(threads_per_worker)),
        _NO_SHARED_STORE: "1",
        LAUNCHER_PID_ENV: str(os.getpid()),
        **_network_env(int(nnodes), local_addr),
    }
    with _env(env):
        run_agent(
            sys.executable,
            args,
            nproc_per_node=int(nproc_per_node),
            nnodes=int(nnodes),
            node_rank=int(node_rank),
            rdzv_backend=rdzv_backend,
            rdzv_endpoint=rdzv_endpoint,
            rdzv_file_dir=config_path.parent,
            run_id=run_id,
            max_restarts=int(max_restarts),
            monitor_interval=float(monitor_interval),
            rdzv_timeout=int(rdzv_timeout),
            local_addr=local_addr,
            log_dir=str(log_dir) if log_dir else None,
        )


def _as_pairs(val_pairs: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if val_pairs is None:
        return None
    if hasattr(val_pairs, "columns"):
        if "split" in val_pairs.columns:
            val_pairs = val_pairs[val_pairs["split"] == "valid"]
        return val_pairs["user"].to_numpy(), val_pairs["item"].to_numpy()
    users, items = val_pairs
    return np.asarray(users), np.asarray(items)


def train_distributed(
    graph: GraphArtifact | str | Path,
    val_pairs: Any,
    config: HGTTrainConfig | Mapping[str, Any],
    out_dir: str | Path,
    *,
    owners: Any = None,
    lock_wait_s: float | None = 0.0,
    **launch_kwargs: Any,
) -> tuple[Path, dict[str, Any]]:
    """Train HGT with torchrun workers and return ``(model path, history)``.

    The whole launch holds an exclusive :class:`RunLock` on ``out_dir`` (and on
    the checkpoint directory when it lies outside ``out_dir``): a second
    training of the same run waits ``lock_wait_s`` seconds, then fails with the
    holder's pid.

    Writes into ``out_dir/work/``: the graph (when given as a
    :class:`GraphArtifact`), ``val_pairs.safetensors``, ``owners.safetensors``
    and ``worker_config.json``; checkpoints go to ``config.checkpoint_dir`` or,
    if unset, ``out_dir/checkpoints``. Then :func:`launch` runs the workers and
    rank 0 writes ``out_dir/hgt_model.safetensors`` (load it with
    :func:`~hgt_cluster_kedro.training.hgt.load_hgt`) and
    ``out_dir/history.json``.

    Args:
        graph: a graph artifact or the directory it was saved to.
        val_pairs: ``(users, items)`` contiguous ids, a DataFrame with ``user`` /
            ``item`` columns (rows with ``split == "valid"`` when it has a
            ``split`` column, e.g. the ``interactions`` table), or ``None``.
        config: :class:`HGTTrainConfig` or a dict of its fields.
        out_dir: output directory (created).
        owners: optional graph part of every user (array-like): rank ``r`` trains
            on the users of the parts ``p % world_size == r``.
        lock_wait_s: seconds to wait for another run holding ``out_dir``
            (``0``: fail at once; ``None``: wait without limit).
        **launch_kwargs: :func:`launch` arguments (``nproc_per_node``, ``nnodes``,
            ``node_rank``, ``rdzv_endpoint``, ``max_restarts``,
            ``threads_per_worker``, ``run_id``, ``local_addr``...).
    """
    from .hgt import HGTTrainConfig

    out_dir = Path(out_dir).resolve()
    data = config.model_dump() if isinstance(config, HGTTrainConfig) else dict(config)
    if data.get("checkpoint_dir") is None:
        data["checkpoint_dir"] = str(out_dir / "checkpoints")
    cfg = HGTTrainConfig.model_validate(data)
    locked = [out_dir]
    ckpt = Path(str(cfg.checkpoint_dir)).resolve()
    if not ckpt.is_relative_to(out_dir):
        locked.append(ckpt)
    with contextlib.ExitStack() as stack:
        for directory in sorted(locked):
            what = "hgt run directory" if directory == out_dir else "checkpoint_dir"
            stack.enter_context(RunLock(directory, wait_s=lock_wait_s, what=what))
        return _train_locked(
            graph, val_pairs, cfg, out_dir, owners=owners, **launch_kwargs
        )


def _train_locked(
    graph: GraphArtifact | str | Path,
    val_pairs: Any,
    cfg: HGTTrainConfig,
    out_dir: Path,
    *,
    owners: Any,
    **launch_kwargs: Any,
) -> tuple[Path, dict[str, Any]]:
    """:func:`train_distributed` once its directories are locked."""
    from safetensors.torch import save_file

    from ..graph.artifact import GraphArtifact
    from .hgt_worker import HISTORY_FILE, MODEL_FILE, WorkerConfig

    work = out_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    if isinstance(graph, GraphArtifact):
        graph_dir = work / "graph"
        if graph_dir.exists():
            import shutil

            shutil.rmtree(graph_dir)
        graph.save(graph_dir)
    else:
        graph_dir = Path(graph).resolve()
        if not (graph_dir / "meta.json").is_file():
            raise ValueError(f"graph {str(graph_dir)!r} is not a graph artifact dir")
    val_path = None
    pairs = _as_pairs(val_pairs)
    if pairs is not None and len(pairs[0]):
        val_path = work / "val_pairs.safetensors"
        tensors = {
            "user": torch.as_tensor(np.array(pairs[0])).long().contiguous(),
            "item": torch.as_tensor(np.array(pairs[1])).long().contiguous(),
        }
        atomic_write(val_path, lambda p: save_file(tensors, str(p)))
    owners_path = None
    if owners is not None:
        owners_path = work / "owners.safetensors"
        owner = {"owner": torch.as_tensor(np.asarray(owners)).long().contiguous()}
        atomic_write(owners_path, lambda p: save_file(owner, str(p)))
    worker = WorkerConfig(
        graph_dir=str(graph_dir),
        val_pairs=str(val_path) if val_path else None,
        owners=str(owners_path) if owners_path else None,
        train=cfg,
        out_dir=str(out_dir),
        threads_per_worker=int(launch_kwargs.get("threads_per_worker", 1)),
    )
    config_path = work / "worker_config.json"
    text = worker.model_dump_json(indent=2)
    atomic_write(config_path, lambda p: p.write_text(text))
    model_path = out_dir / MODEL_FILE
    history_path = out_dir / HISTORY_FILE
    for stale in (model_path, history_path):
        stale.unlink(missing_ok=True)
    launch(config_path, **launch_kwargs)
    if not model_path.is_file() or not history_path.is_file():
        raise RuntimeError(
            f"the workers finished but {model_path} / {history_path} are missing "
            "(on a multi-machine job they are written by the machine of rank 0)"
        )
    return model_path, json.loads(history_path.read_text())
