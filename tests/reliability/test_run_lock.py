"""One run per directory: a second TwHIN or HGT run on a locked checkpoint / run
directory fails at once (or waits) with the holder's pid; a killed holder
leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hgt_cluster_kedro.training.distributed import train_distributed
from hgt_cluster_kedro.training.run_lock import LOCK_FILE, RunLock, RunLockedError
from hgt_cluster_kedro.training.twhin_trainer import train_twhin

from ._launch import REPO, TRAIN, save_graph, wait_until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fcntl.flock")

HOLD = """
import sys, time
from hgt_cluster_kedro.training.run_lock import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""

TWHIN = """
import sys
from tests.hgt import planted_artifact
from hgt_cluster_kedro.training.twhin_trainer import train_twhin
graph = planted_artifact()[0]
train_twhin(graph.csr, dim=8, epochs=100000, batch_size=64, checkpoint_dir=sys.argv[1],
            progress=False, log_every=0, keep_checkpoints=1)
"""


def _start(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()


def _holds(proc: subprocess.Popen, directory) -> bool:
    path = directory / LOCK_FILE
    return path.is_file() and f'"pid": {proc.pid}' in path.read_text()


def test_second_holder_fails_with_pid_then_waits(tmp_path):
    holder = _start(HOLD, str(tmp_path), "2.0")
    try:
        assert wait_until(lambda: _holds(holder, tmp_path), timeout=30)
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid} .*{tmp_path}"):
            RunLock(tmp_path, wait_s=0).acquire()
        with pytest.raises(RunLockedError, match="after waiting 0.3 s"):
            RunLock(tmp_path, wait_s=0.3).acquire()
        start = time.monotonic()
        with RunLock(tmp_path, wait_s=60) as lock:  # waits for the holder to end
            assert time.monotonic() - start > 0.3
            assert f'"pid": {os.getpid()}' in lock.path.read_text()
        assert holder.wait(timeout=30) == 0
    finally:
        _stop(holder)


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = _start(HOLD, str(tmp_path), "600")
    try:
        assert wait_until(lambda: _holds(holder, tmp_path), timeout=30)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        with RunLock(tmp_path, wait_s=0):
            pass
    finally:
        _stop(holder)


@pytest.mark.slow
def test_two_twhin_runs_do_not_share_a_checkpoint_dir(tmp_path):
    from tests.hgt import planted_artifact

    ckpt = tmp_path / "ckpt"
    first = _start(TWHIN, str(ckpt))
    try:
        assert wait_until(lambda: _holds(first, ckpt), timeout=60), first.poll()
        graph = planted_artifact()[0]
        with pytest.raises(
            RunLockedError, match=rf"twhin.checkpoint_dir .*pid {first.pid}"
        ):
            train_twhin(graph.csr, dim=8, epochs=1, checkpoint_dir=ckpt, progress=False)
        # without a checkpoint directory there is nothing to share: no lock
        _, history = train_twhin(graph.csr, dim=8, epochs=1, progress=False)
        assert len(history["loss"]) == 1
    finally:
        _stop(first)


def test_an_hgt_launch_on_a_locked_run_directory_fails_before_starting(tmp_path):
    graph_dir = save_graph(tmp_path)
    out = tmp_path / "out"
    holder = _start(HOLD, str(out), "600")
    try:
        assert wait_until(lambda: _holds(holder, out), timeout=30)
        with pytest.raises(RunLockedError, match=rf"hgt run directory .*{holder.pid}"):
            train_distributed(graph_dir, None, {**TRAIN, "epochs": 1}, out)
        assert not (out / "work").exists()  # nothing was written
    finally:
        _stop(holder)
    # a separate checkpoint directory is locked too
    ckpt = tmp_path / "elsewhere"
    holder = _start(HOLD, str(ckpt), "600")
    try:
        assert wait_until(lambda: _holds(holder, ckpt), timeout=30)
        cfg = {**TRAIN, "epochs": 1, "checkpoint_dir": str(ckpt)}
        with pytest.raises(RunLockedError, match=rf"checkpoint_dir .*{holder.pid}"):
            train_distributed(graph_dir, None, cfg, tmp_path / "out2")
    finally:
        _stop(holder)
