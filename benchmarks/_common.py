"""Shared helpers for benchmarks: timing medians, peak memory, result records.

Every benchmark writes ``benchmarks/results/<benchmark>.json``: a list of records
``{"benchmark", "metric", "value", "unit"}`` plus ``"peer"``, ``"peer_value"`` and
``"ratio"`` for side-by-side runs. ``benchmarks/run_all.py`` rebuilds the readable
table ``benchmarks/results/README.md`` from every JSON file.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def median_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def record(
    benchmark: str,
    metric: str,
    value: float,
    unit: str,
    *,
    peer: str | None = None,
    peer_value: float | None = None,
    higher_is_better: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """One result record; ``ratio`` is ours/peer (or peer/ours when lower is better)."""
    rec: dict[str, Any] = {
        "benchmark": benchmark,
        "metric": metric,
        "value": float(value),
        "unit": unit,
    }
    if peer is not None and peer_value is not None:
        rec["peer"] = peer
        rec["peer_value"] = float(peer_value)
        if higher_is_better:
            rec["ratio"] = float(value) / float(peer_value) if peer_value else None
        else:
            rec["ratio"] = float(peer_value) / float(value) if value else None
    rec.update(extra)
    return rec


def write_results(benchmark: str, records: list[dict[str, Any]]) -> Path:
    """Write ``records`` to ``results/<benchmark>.json`` atomically."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{benchmark}.json"
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    for rec in records:
        rec.setdefault("env", meta)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(records, indent=2) + "\n")
    os.replace(tmp, path)
    return path
