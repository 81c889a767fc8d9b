"""torchrun plumbing with closed stores, no retry of bad input, readable errors.

PyTorch's elastic launcher (``torch.distributed.run`` / ``elastic_launch``)
leaves three things open that :func:`run_agent` closes:

* **Where the stores listen.** A ``torch.distributed.TCPStore`` server binds
  the wildcard address (``::``, dual-stack) whatever host it is given: the
  ``host`` argument only tells the clients where to connect. torchrun's c10d
  rendezvous store (``c10d_rendezvous_backend._create_tcp_store``), the static
  rendezvous store (``StaticTCPRendezvous``) and rank 0's worker store
  (``init_process_group("env://")``) therefore accept connections from every
  network the machine is on, without authentication, and the elastic agent
  unpickles the rendezvous state it reads from its store. Here every store
  server is given a socket already bound to one address (``master_listen_fd``):
  on a single machine the rendezvous is a ``FileStore`` in the run directory
  (nothing listens; the file is private to the user), or, with an explicit
  ``rdzv_endpoint``, a store bound to loopback; rank 0's worker store binds
  ``MASTER_ADDR`` (loopback on a single machine) and gloo / NCCL are told to use
  the loopback interface. On several machines the stores bind the address of
  the configured host (``rdzv_endpoint`` / ``local_addr``) rather than all of
  them; see the README, "Reliability and security", for what that leaves open.
* **Retries of bad input.** The agent restarts the whole worker group after any
  failure (``max_restarts``). A worker that fails on bad input (a
  ``ValueError``, which includes pydantic's ``ValidationError``) exits with
  :data:`EX_CONFIG` (78, ``sysexits.h``); :class:`NoRetryOnConfigErrorAgent`
  then stops instead of retrying an error that would recur.
* **The message.** Workers record their exception in torchrun's error file
  (``@record``); :func:`worker_failure` turns the first failure into an
  exception carrying the worker's own message instead of torchrun's
  ``ChildFailedError`` with ``error_file: <N/A>``.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import socket
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "EX_CONFIG",
    "LAUNCHER_PID_ENV",
    "AddressInUseError",
    "WorkerFailedError",
    "bound_listener",
    "hosted_store",
    "is_loopback",
    "loopback_interface",
    "run_agent",
    "worker_failure",
]

EX_CONFIG = 78
"""Exit status of a worker that failed on bad input (``EX_CONFIG`` of sysexits.h)."""

LAUNCHER_PID_ENV = "HGT_LAUNCHER_PID"
"""Environment variable holding the pid of the agent that started the workers."""

ENDPOINT_PARAM = "hgt.launch.rdzv_endpoint"


class AddressInUseError(OSError):
    """A store could not listen on its address because another socket holds it."""


class WorkerFailedError(RuntimeError):
    """The workers failed (after ``max_restarts`` restarts); carries their message."""


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (or ``"[v6]:PORT"``) as ``(host, port)``."""
    host, sep, port = str(endpoint).rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(
            f"rdzv_endpoint must be HOST:PORT (got {endpoint!r}; {ENDPOINT_PARAM})"
        )
    return host.strip("[]"), int(port)


def _addresses(host: str) -> list[tuple[int, str]]:
    """``(family, address)`` of ``host``: the literal itself, or its DNS answers."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve host {host!r}: {exc}") from exc
    seen: list[tuple[int, str]] = []
    for family, _, _, _, sockaddr in infos:
        item = (int(family), str(sockaddr[0]))
        if family in (socket.AF_INET, socket.AF_INET6) and item not in seen:
            seen.append(item)
    if not seen:
        raise ValueError(f"host {host!r} has no IPv4 or IPv6 address")
    return seen


def is_loopback(host: str) -> bool:
    """True when every address of ``host`` is a loopback address."""
    return all(ipaddress.ip_address(a).is_loopback for _, a in _addresses(host))


def bound_listener(
    host: str, port: int, *, what: str = ENDPOINT_PARAM
) -> socket.socket:
    """A listening TCP socket bound to ``host``'s address only (port 0: a free one).

    Args:
        host: host name or address; the first IPv4 address is preferred.
        port: port, or 0 for one chosen by the kernel (no race with other
            programs: the socket holds it from now on).
        what: the setting named in errors.

    Raises:
        AddressInUseError: the port is taken on that address.
        ValueError: ``host`` is not an address of this machine.
    """
    addrs = _addresses(host)
    family, addr = next((a for a in addrs if a[0] == socket.AF_INET), addrs[0])
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # lets a restarted run take its fixed port while old connections sit in
        # TIME_WAIT; on Linux it does not let two sockets listen on one port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, int(port)))
        sock.listen(512)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUseError(
                exc.errno,
                f"{addr}:{port} is already in use (another run or program listens "
                f"there); set {what} to a free port, or leave it null on a single "
                "machine for a free port chosen at launch",
            ) from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ValueError(
                f"{what}: {host} ({addr}) is not an address of this machine, so "
                "the store cannot listen there"
            ) from exc
        raise
    return sock


def hosted_store(
    host: str,
    port: int,
    *,
    timeout: timedelta,
    world_size: int | None = None,
    wait_for_workers: bool = False,
    what: str = ENDPOINT_PARAM,
) -> Any:
    """A ``TCPStore`` server that listens on ``host``'s address only.

    ``TCPStore(is_master=True)`` binds every interface; given a socket bound
    by :func:`bound_listener` (``master_listen_fd``, which the store takes over)
    it listens there alone. ``port=0`` picks a free port (read it from
    ``store.port``).
    """
    from torch.distributed import TCPStore

    sock = bound_listener(host, port, what=what)
    addr, actual = sock.getsockname()[:2]
    fd = sock.detach()
    try:
        return TCPStore(
            addr,
            actual,
            world_size,
            True,
            timeout,
            wait_for_workers=wait_for_workers,
            multi_tenant=True,
            master_listen_fd=fd,
        )
    except BaseException:
        with contextlib.suppress(OSError):  # the store did not take it over
            os.close(fd)
        raise


def loopback_interface() -> str:
    """Name of the loopback network interface (``lo`` on Linux)."""
    for _, name in socket.if_nameindex():
        flags = Path(f"/sys/class/net/{name}/flags")
        try:
            if int(flags.read_text(), 16) & 0x8:  # IFF_LOOPBACK
                return name
        except (OSError, ValueError):
            continue
    return "lo0" if sys.platform == "darwin" else "lo"


def interface_of(address: str) -> str | None:
    """The network interface that holds ``address`` (``None`` if none does)."""
    import psutil

    wanted = {a for _, a in _addresses(address)}
    for name, addrs in psutil.net_if_addrs().items():
        if any(a.address.split("%")[0] in wanted for a in addrs):
            return name
    return None


def _rendezvous_handler(
    *,
    backend: str,
    endpoint: str | None,
    file_path: Path | None,
    run_id: str,
    nnodes: int,
    node_rank: int,
    local_addr: str | None,
    timeout: int,
) -> Any:
    """The rendezvous of :func:`run_agent`, with its store bound to one address."""
    from torch.distributed import FileStore, TCPStore
    from torch.distributed.elastic.rendezvous import RendezvousParameters
    from torch.distributed.elastic.rendezvous.c10d_rendezvous_backend import (
        C10dRendezvousBackend,
    )
    from torch.distributed.elastic.rendezvous.dynamic_rendezvous import create_handler
    from torch.distributed.elastic.rendezvous.static_tcp_rendezvous import (
        StaticTCPRendezvous,
    )

    read_timeout = timedelta(seconds=60)
    if backend == "static":
        host, port = split_endpoint(str(endpoint))
        handler = StaticTCPRendezvous(host, port, node_rank, nnodes, run_id, timeout)
        if node_rank == 0:
            store = hosted_store(
                host, port, timeout=timedelta(seconds=timeout), world_size=nnodes
            )
            handler._store = store  # noqa: SLF001 - a store bound to one address
            handler.master_port = store.port
        return handler
    params = RendezvousParameters(
        backend="c10d",
        endpoint=str(endpoint or file_path),
        run_id=run_id,
        min_nodes=nnodes,
        max_nodes=nnodes,
        local_addr=local_addr,
        join_timeout=timeout,
    )
    if file_path is not None:
        # a single machine: no listener at all, the file is private to the user
        fd = os.open(file_path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.close(fd)
        store = FileStore(str(file_path), -1)
    else:
        host, port = split_endpoint(str(endpoint))
        if node_rank == 0:
            store = hosted_store(host, port, timeout=read_timeout)
        else:
            store = TCPStore(
                host, port, is_master=False, multi_tenant=True, timeout=read_timeout
            )
    return create_handler(store, C10dRendezvousBackend(store, run_id), params)


def _no_retry_agent_class() -> type:
    from torch.distributed.elastic.agent.server.local_elastic_agent import (
        LocalElasticAgent,
    )

    class NoRetryOnConfigErrorAgent(LocalElasticAgent):
        """``LocalElasticAgent`` that does not restart workers which exited with
        :data:`EX_CONFIG` (bad input: the same error would recur)."""

        def _monitor_workers(self, worker_group: Any) -> Any:
            result = super()._monitor_workers(worker_group)
            if result.is_failed() and any(
                f.exitcode == EX_CONFIG for f in result.failures.values()
            ):
                if self._remaining_restarts > 0:
                    logger.warning(
                        "A worker failed on bad input (exit status %d): not retried",
                        EX_CONFIG,
                    )
                self._remaining_restarts = 0
            return result

    return NoRetryOnConfigErrorAgent


def _message_of(failure: Any) -> tuple[str, str]:
    """``(message, traceback)`` recorded by a failed worker (may be empty)."""
    data = failure.message
    if isinstance(data, dict):
        info = data.get("extraInfo") or {}
        return str(data.get("message", "")), str(info.get("py_callstack", ""))
    return str(data or ""), ""


def worker_failure(
    failures: dict[int, Any], *, restarts: int, log_dir: str | None
) -> Exception:
    """The exception :func:`run_agent` raises for failed workers.

    A worker that exited with :data:`EX_CONFIG` gives a ``ValueError`` with its
    own message; any other failure a :class:`WorkerFailedError` with the
    message and the end of the traceback of the first failure (by time), or
    the signal that killed it.
    """
    ordered = sorted(failures.items(), key=lambda kv: (kv[1].timestamp, kv[0]))
    config = [(r, f) for r, f in ordered if f.exitcode == EX_CONFIG]
    rank, first = (config or ordered)[0]
    message, trace = _message_of(first)
    where = f"HGT worker (global rank {rank}, pid {first.pid})"
    logs = f"; worker logs in {log_dir}" if log_dir else ""
    if config:
        return ValueError(f"{where} rejected its input, not retried: {message}")
    if first.exitcode < 0 or not message or message.startswith("To enable"):
        how = (
            f"was killed by {first.signal_name()}"
            if first.exitcode < 0
            else f"exited with status {first.exitcode} without an error message"
        )
        return WorkerFailedError(f"{where} {how} after {restarts} restart(s){logs}")
    tail = "\n".join(trace.strip().splitlines()[-12:])
    return WorkerFailedError(
        f"{where} failed after {restarts} restart(s): {message}{logs}"
        + (f"\nWorker traceback (end):\n{tail}" if tail else "")
    )


def run_agent(
    entrypoint: str,
    args: list[str],
    *,
    nproc_per_node: int,
    nnodes: int,
    node_rank: int,
    rdzv_backend: str,
    rdzv_endpoint: str | None,
    rdzv_file_dir: Path,
    run_id: str,
    max_restarts: int,
    monitor_interval: float,
    rdzv_timeout: int,
    local_addr: str | None,
    log_dir: str | None,
) -> None:
    """Run this machine's workers under an elastic agent until they finish.

    Like ``torch.distributed.launcher.api.launch_agent`` (torchrun), with the
    rendezvous of :func:`_rendezvous_handler` and
    :class:`NoRetryOnConfigErrorAgent`. On a single machine without
    ``rdzv_endpoint`` the rendezvous is a ``FileStore`` created (mode 0600) in
    ``rdzv_file_dir`` and removed afterwards.

    Raises:
        ValueError: a worker rejected its input (exit status :data:`EX_CONFIG`).
        WorkerFailedError: the workers kept failing; carries their message.
        AddressInUseError: the rendezvous port is taken.
    """
    from torch.distributed.elastic.agent.server.api import WorkerSpec
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs

    file_path = None
    if rdzv_backend == "c10d" and nnodes == 1 and rdzv_endpoint is None:
        file_path = Path(rdzv_file_dir) / f".rdzv-{run_id}-{uuid.uuid4().hex[:12]}"
    handler = _rendezvous_handler(
        backend=rdzv_backend,
        endpoint=rdzv_endpoint,
        file_path=file_path,
        run_id=run_id,
        nnodes=nnodes,
        node_rank=node_rank,
        local_addr=local_addr,
        timeout=rdzv_timeout,
    )
    master_addr = master_port = None
    if rdzv_backend == "static":
        master_addr, master_port = handler.master_addr, handler.master_port
    spec = WorkerSpec(
        role="hgt_worker",
        local_world_size=nproc_per_node,
        entrypoint=entrypoint,
        args=tuple(args),
        rdzv_handler=handler,
        max_restarts=max_restarts,
        monitor_interval=monitor_interval,
        master_addr=master_addr,
        master_port=master_port,
        local_addr=local_addr,
    )
    logs_specs = DefaultLogsSpecs(log_dir=log_dir)
    agent = _no_retry_agent_class()(spec, logs_specs=logs_specs, start_method="spawn")
    try:
        result = agent.run()
        if result.is_failed():
            restarts = max_restarts - agent._remaining_restarts  # noqa: SLF001
            raise worker_failure(
                result.failures, restarts=restarts, log_dir=logs_specs.root_log_dir
            )
    finally:
        handler.shutdown()
        if file_path is not None:
            file_path.unlink(missing_ok=True)
