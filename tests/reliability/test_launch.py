"""torchrun launch: stores on loopback only, no orphaned worker, bad input not
retried and reported with the worker's message, a clear error for a taken port."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

import psutil
import pytest

from hgt_cluster_kedro.training.distributed import launch, train_distributed
from hgt_cluster_kedro.training.elastic import (
    EX_CONFIG,
    AddressInUseError,
    WorkerFailedError,
    bound_listener,
    hosted_store,
    worker_failure,
)

from ._launch import listening, save_graph, start_launcher, wait_until, workers_of

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="Linux process and socket checks"
)
LOOPBACK = {"127.0.0.1", "::1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _watch(proc) -> tuple[set, set, str]:
    """Poll the launcher's process tree until it exits: its listening sockets
    and its worker pids, then its output."""
    sockets, workers = set(), set()
    while proc.poll() is None:
        try:
            root = psutil.Process(proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        sockets |= listening(tree)
        workers |= {w.pid for w in workers_of(proc.pid)}
        time.sleep(0.05)
    out = proc.stdout.read()
    return sockets, workers, out


@pytest.mark.slow
@pytest.mark.parametrize("rendezvous", ["file", "endpoint", "static"])
def test_single_node_run_listens_on_loopback_only(tmp_path, rendezvous):
    graph_dir = save_graph(tmp_path)
    launch_kwargs = {}
    if rendezvous == "endpoint":
        port = _free_port()
        launch_kwargs["rdzv_endpoint"] = f"127.0.0.1:{port}"
    elif rendezvous == "static":
        launch_kwargs["rdzv_backend"] = "static"
    proc = start_launcher(graph_dir, tmp_path / "out", {"epochs": 2}, **launch_kwargs)
    sockets, workers, out = _watch(proc)
    assert proc.returncode == 0, out[-3000:]
    assert (tmp_path / "out/hgt_model.safetensors").is_file()
    assert len(workers) == 2, out[-2000:]
    # rank 0's store and gloo's pairs were seen listening (so the check below
    # is not vacuous), and every listening socket of the run is on loopback
    assert {pid for pid, _, _ in sockets} & workers, sockets
    assert {addr for _, addr, _ in sockets} <= LOOPBACK, sockets
    launcher_ports = {p for pid, _, p in sockets if pid == proc.pid}
    if rendezvous == "endpoint":
        assert launcher_ports == {port}  # the rendezvous store, on loopback
    elif rendezvous == "static":
        assert len(launcher_ports) == 1  # the agent's store on a free port
    else:
        assert launcher_ports == set()  # a file rendezvous: nothing listens
    assert not list((tmp_path / "out/work").glob(".rdzv-*"))  # file removed


def test_hosted_store_listens_on_its_address_only():
    store = hosted_store("127.0.0.1", 0, timeout=__import__("datetime").timedelta(5))
    me = psutil.Process(os.getpid())
    mine = {(a, p) for _, a, p in listening([me]) if p == store.port}
    assert mine == {("127.0.0.1", store.port)}
    store.set("k", "v")
    assert store.get("k") == b"v"


def test_a_taken_port_names_the_parameter(tmp_path):
    config = tmp_path / "c.json"
    config.write_text("{}")
    holder = bound_listener("127.0.0.1", 0)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(AddressInUseError, match=r"hgt\.launch\.rdzv_endpoint"):
            launch(config, nproc_per_node=1, rdzv_endpoint=f"127.0.0.1:{port}")
    finally:
        holder.close()


def test_launch_rejects_network_addresses_on_one_machine(tmp_path):
    config = tmp_path / "c.json"
    config.write_text("{}")
    with pytest.raises(ValueError, match="loopback only"):
        launch(config, nproc_per_node=1, rdzv_endpoint="0.0.0.0:29500")
    with pytest.raises(ValueError, match="loopback only"):
        launch(config, nproc_per_node=1, local_addr="0.0.0.0")
    with pytest.raises(ValueError, match="must be HOST:PORT of machine 0"):
        launch(config, nproc_per_node=1, nnodes=2, rdzv_endpoint=None)


@pytest.mark.slow
def test_killing_the_launcher_leaves_no_worker(tmp_path):
    graph_dir = save_graph(tmp_path)
    proc = start_launcher(graph_dir, tmp_path / "out", {"epochs": 500})
    try:
        # the workers are training once rank 0's store listens (main() ran)
        def training() -> bool:
            ws = workers_of(proc.pid)
            return len(ws) == 2 and bool(listening(ws))

        assert wait_until(training, timeout=120), "workers did not start"
        workers = workers_of(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

        def gone() -> bool:
            return not any(
                p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                for p in workers
                if psutil.pid_exists(p.pid)
            )

        assert wait_until(gone, timeout=30), [p.pid for p in workers]
        assert not (tmp_path / "out/hgt_model.safetensors").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()


@pytest.mark.slow
def test_bad_input_in_a_worker_is_not_retried_and_keeps_its_message(tmp_path):
    graph_dir = save_graph(tmp_path)
    missing = tmp_path / "no_such_model.safetensors"
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"rejected its input.*init_model.*not a file"):
        train_distributed(
            graph_dir,
            None,
            {**json.loads(json.dumps(_train())), "init_model": str(missing)},
            tmp_path / "out",
            nproc_per_node=2,
            max_restarts=3,
            monitor_interval=0.2,
            log_dir=tmp_path / "logs",
        )
    # one round of workers only: torchrun keeps one attempt_N folder per round
    attempts = sorted(p.name for p in (tmp_path / "logs").glob("*/attempt_*"))
    assert attempts == ["attempt_0"], attempts
    assert time.monotonic() - start < 120


def _train() -> dict:
    from ._launch import TRAIN

    return {**TRAIN, "epochs": 1}


def _failure(tmp_path, rank, exitcode, message=None, ts=0):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    error_file = tmp_path / f"error{rank}.json"
    if message is not None:
        data = {
            "message": {
                "message": message,
                "extraInfo": {
                    "py_callstack": f"Traceback\n  {message}",
                    "timestamp": ts,
                },
            }
        }
        error_file.write_text(json.dumps(data))
    return ProcessFailure(rank, 100 + rank, exitcode, str(error_file))


def test_worker_failure_keeps_the_first_message(tmp_path):
    failures = {
        0: _failure(tmp_path, 0, 1, "RuntimeError: gloo timeout", ts=20),
        1: _failure(tmp_path, 1, 1, "RuntimeError: CUDA out of memory", ts=10),
    }
    err = worker_failure(failures, restarts=3, log_dir="/logs")
    assert isinstance(err, WorkerFailedError)
    assert "rank 1" in str(err) and "CUDA out of memory" in str(err)
    assert "after 3 restart(s)" in str(err) and "/logs" in str(err)
    # bad input wins over the others and is a ValueError
    failures[0] = _failure(tmp_path, 0, EX_CONFIG, "ValueError: som.num_centres", 30)
    err = worker_failure(failures, restarts=0, log_dir=None)
    assert isinstance(err, ValueError) and "som.num_centres" in str(err)
    # killed by a signal: no error file
    err = worker_failure({0: _failure(tmp_path, 5, -9)}, restarts=1, log_dir=None)
    assert isinstance(err, WorkerFailedError) and "SIGKILL" in str(err)
