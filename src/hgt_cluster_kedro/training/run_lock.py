"""An exclusive lock per run or checkpoint directory.

Two trainings that share a checkpoint directory would resume from each other's
checkpoints and overwrite each other's model. :class:`RunLock` takes an
exclusive ``fcntl.flock`` on ``<directory>/.lock`` for the whole training; the
file holds the holder's pid, host and start time, so a second run fails at
once (``wait_s=0``) or after waiting ``wait_s`` seconds with an error naming the
holder and the directory. The kernel drops the lock when the holder exits,
however it exits (``kill -9`` included), so a crash never leaves a stale lock;
the file itself stays (deleting it would let two processes lock two different
files of one name).

``flock`` is local to a machine on most network file systems: a multi-machine
job must not start two launchers on the same run directory from two machines.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

__all__ = ["LOCK_FILE", "RunLock", "RunLockedError"]

LOCK_FILE = ".lock"


class RunLockedError(RuntimeError):
    """The directory is locked by another run."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "an unknown process"
    if not info:
        return "an unknown process"
    return (
        f"pid {info.get('pid')} on {info.get('host')} "
        f"(since {info.get('started', '?')})"
    )


class RunLock:
    """Context manager holding an exclusive lock on ``directory``.

    Args:
        directory: the run or checkpoint directory (created if missing).
        wait_s: seconds to wait for another holder to finish; ``0`` fails at
            once, ``None`` waits without limit.
        what: how errors name the directory (e.g. ``"twhin.checkpoint_dir"``).
        poll_s: seconds between attempts while waiting.

    Raises:
        RunLockedError: on entry, when another process holds the lock after
            ``wait_s`` seconds; the message names its pid and the directory.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        wait_s: float | None = 0.0,
        what: str = "run directory",
        poll_s: float = 0.2,
    ) -> None:
        if wait_s is not None and wait_s < 0:
            raise ValueError(f"wait_s must be >= 0 or None (got {wait_s})")
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.wait_s = wait_s
        self.what = what
        self.poll_s = float(poll_s)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (see the class docstring); returns ``self``."""
        import fcntl

        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this RunLock")
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if self.wait_s is None else time.monotonic() + self.wait_s
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
            holder = _holder(self.path)
            if deadline is not None and time.monotonic() >= deadline:
                os.close(fd)
                waited = f" after waiting {self.wait_s:g} s" if self.wait_s else ""
                raise RunLockedError(
                    f"{self.what} {str(self.directory)!r} is in use by another run: "
                    f"{holder} holds {self.path}{waited}. Wait for it to finish "
                    "(or stop it), or use another directory."
                )
            if not announced:
                logger.info("Waiting for %s to release %s", holder, self.directory)
                announced = True
            time.sleep(self.poll_s)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (the lock file stays)."""
        import fcntl

        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
