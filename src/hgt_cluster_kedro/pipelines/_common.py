"""Helpers shared by the pipelines' nodes (Kedro-free)."""

from __future__ import annotations

import hashlib
import json
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
