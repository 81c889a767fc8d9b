"""Whole versions: completion markers, loads that skip incomplete versions, and
the cleaning of stale temporaries.

A Kedro run saves every output of a node one after the other, each atomically.
A crash between two saves leaves a version of some outputs and not of the
others: the next run would load the newest model of one run next to the newest
embeddings of another. The project's hook
(:class:`~hgt_cluster_kedro.hooks.RunConsistencyHook`) therefore writes
:data:`PENDING` into the version directory (``<filepath>/<version>/``) of every
versioned output before a node's first save, and replaces it by
:data:`COMPLETE` (which lists the node's outputs) once all of them are saved.
:class:`CompleteVersionsMixin` makes a dataset load the newest version that is
not pending (a pending version of the running process itself counts as
complete, so a node can read what an earlier node of the same run wrote).
Versions without any marker (written before this existed, or saved by hand from
a notebook) count as complete.

Atomic writes (:func:`~hgt_cluster_kedro.datasets._io.atomic_dir`,
:func:`~hgt_cluster_kedro.training.checkpoint.atomic_write`) name their
temporaries with :func:`temp_tag` (host and pid); :func:`clean_stale_temporaries`
removes those whose process is gone (same host) or that are older than a day.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "COMPLETE",
    "PENDING",
    "CompleteVersionsMixin",
    "clean_stale_temporaries",
    "is_incomplete",
    "mark_complete",
    "mark_pending",
    "temp_tag",
]

PENDING = ".pending.json"
COMPLETE = ".complete.json"
STALE_AFTER_S = 24 * 3600.0

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"
_TOKEN = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
# .<name>.tmp-<host>-<pid>-<hex> (directories) / .<name>.<host>-<pid>-<rand>.tmp
# (files); the legacy forms had no host and pid
_TAGGED = re.compile(
    r"^\..+\.(?:tmp-)?(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-\w+(?:\.tmp)?$"
)
_LEGACY = re.compile(r"^\..+\.(?:tmp-[0-9a-f]{8}|\w{8}\.tmp)$")


def temp_tag() -> str:
    """``<host>-<pid>-``: the prefix of this process's temporary names."""
    return f"{_HOST}-{os.getpid()}-"


def _token() -> str:
    # a forked child is another writer than its parent
    return _TOKEN if _TOKEN.split(":")[1] == str(os.getpid()) else temp_tag()


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{temp_tag()}{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def mark_pending(version_dir: Path, node: str, outputs: Iterable[str]) -> None:
    """Mark ``version_dir`` as being written by this process for ``node``."""
    version_dir.mkdir(parents=True, exist_ok=True)
    _write_json(
        version_dir / PENDING,
        {
            "writer": _token(),
            "node": node,
            "outputs": sorted(outputs),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


def mark_complete(version_dir: Path, node: str, outputs: Mapping[str, str]) -> None:
    """Mark ``version_dir`` complete: every output of ``node`` is saved
    (``outputs``: dataset name -> version)."""
    _write_json(
        version_dir / COMPLETE,
        {
            "node": node,
            "outputs": dict(sorted(outputs.items())),
            "completed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    (version_dir / PENDING).unlink(missing_ok=True)


def is_incomplete(version_dir: Path) -> bool:
    """True when another process (alive or not) started ``version_dir`` and did
    not finish every output of its node."""
    path = Path(version_dir) / PENDING
    if not path.is_file():
        return False
    try:
        writer = json.loads(path.read_text()).get("writer")
    except (OSError, ValueError):
        return True
    return writer != _token()


class CompleteVersionsMixin:
    """Load the newest complete version (see the module docstring).

    Mixed into a Kedro ``AbstractVersionedDataset`` (before it in the bases).
    An explicitly requested load version is loaded as asked.
    """

    def _fetch_latest_load_version(self) -> str:
        from kedro.io.core import VersionNotFoundError

        cached = getattr(self, "_cached_load_version", None)
        if cached is not None:
            return cached
        skipped = []
        for path in self._get_versions():  # type: ignore[attr-defined]
            version_dir = Path(path).parent
            if is_incomplete(version_dir):
                skipped.append(version_dir.name)
                continue
            if skipped:
                logger.warning(
                    "%s: skipped incomplete version(s) %s (a run stopped before "
                    "saving every output of its node); loading %s",
                    self,
                    skipped,
                    version_dir.name,
                )
            self._cached_load_version = version_dir.name
            return version_dir.name
        if skipped:
            raise VersionNotFoundError(
                f"Every version of {self} is incomplete ({skipped}: a run stopped "
                "before saving every output of its node); rerun that node"
            )
        raise VersionNotFoundError(f"Did not find any versions for {self}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(path: Path, now: float, max_age_s: float) -> bool:
    name = path.name
    tagged = _TAGGED.match(name)
    if tagged is None and not _LEGACY.match(name):
        return False
    if tagged and tagged["host"] == _HOST and not _alive(int(tagged["pid"])):
        return True
    try:
        return now - path.lstat().st_mtime > max_age_s
    except OSError:
        return False


def clean_stale_temporaries(
    root: str | Path, *, max_depth: int = 3, max_age_s: float = STALE_AFTER_S
) -> list[Path]:
    """Remove the stale temporaries of atomic writes under ``root``.

    A temporary is stale when the process that made it (named in it) is gone
    from this host, or when it is older than ``max_age_s`` (other hosts, legacy
    names). Returns the removed paths.

    Args:
        root: a directory (a file's directory when ``root`` is a file).
        max_depth: directory levels searched below ``root``.
        max_age_s: age after which any temporary is stale.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    now = time.time()
    removed: list[Path] = []
    base = len(root.parts)
    for current, dirs, files in os.walk(root):
        depth = len(Path(current).parts) - base
        for name in [*files, *dirs]:
            path = Path(current) / name
            if name.startswith(".") and _stale(path, now, max_age_s):
                with contextlib.suppress(OSError):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                    removed.append(path)
        dirs[:] = [d for d in dirs if Path(current, d) not in removed]
        if depth >= max_depth:
            dirs[:] = []
    if removed:
        logger.info("Removed %d stale temporaries under %s", len(removed), root)
    return removed
