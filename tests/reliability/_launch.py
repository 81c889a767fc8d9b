"""Helpers: a tiny HGT run in a subprocess, and the processes / sockets it owns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]

TRAIN = {
    "hidden": 16,
    "heads": 2,
    "lr": 0.01,
    "val_k": 10,
    "patience": None,
    "eval_fanouts": [-1, -1],
    "progress": False,
    "device": "cpu",
    "log_every": 0,
    "batch_size": 64,
}

LAUNCHER = """
import json, sys
from hgt_cluster_kedro.training.distributed import train_distributed
train_distributed(sys.argv[1], None, json.loads(sys.argv[2]), sys.argv[3],
                  **json.loads(sys.argv[4]))
"""


def save_graph(tmp_path: Path) -> Path:
    """The planted test graph of tests/hgt, saved once under ``tmp_path``."""
    from tests.hgt import planted_artifact

    graph_dir = tmp_path / "graph"
    if not graph_dir.exists():
        planted_artifact()[0].save(graph_dir)
    return graph_dir


def start_launcher(
    graph_dir: Path, out_dir: Path, train: dict, **launch: object
) -> subprocess.Popen:
    """``train_distributed`` in a fresh interpreter (its own process group)."""
    launch = {"nproc_per_node": 2, "max_restarts": 0, "monitor_interval": 0.2, **launch}
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO)}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            str(graph_dir),
            json.dumps({**TRAIN, **train}),
            str(out_dir),
            json.dumps(launch),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def workers_of(pid: int) -> list[psutil.Process]:
    """Live HGT worker processes among the descendants of ``pid``."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in children if is_worker(p)]


def is_worker(proc: psutil.Process) -> bool:
    try:
        alive = proc.status() != psutil.STATUS_ZOMBIE
        return alive and "hgt_cluster_kedro.training.hgt_worker" in proc.cmdline()
    except psutil.Error:
        return False


def listening(procs: list[psutil.Process]) -> set[tuple[int, str, int]]:
    """``(pid, address, port)`` of the TCP sockets the processes listen on."""
    found = set()
    for proc in procs:
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                found.add((proc.pid, c.laddr.ip, c.laddr.port))
    return found


def wait_until(predicate, timeout: float, step: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
