"""Helpers shared by the pipelines' nodes (Kedro-free)."""

from __future__ import annotations

import hashlib
import json
import resource
import sys
from pathlib import Path
from typing import Any


def run_fingerprint(*parts: Any) -> str:
    """Short stable hash of JSON-serialisable ``parts`` (parameters, graph
    summary): a checkpoint directory per configuration, so a changed run starts
    fresh and an identical one resumes."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def checkpoint_dir(base: str | None, name: str, fingerprint: str) -> Path | None:
    """``<base>/<name>-<fingerprint>`` or ``None`` when checkpoints are off."""
    return None if not base else Path(base) / f"{name}-{fingerprint}"


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
