"""Shared helpers for benchmarks: timing medians, interleaved rounds, result records.

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
from collections.abc import Callable, Mapping
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


def interleaved_times(
    fns: Mapping[str, Callable[[], Any]],
    rounds: int,
    warmup: int | Mapping[str, int] = 1,
) -> dict[str, list[float]]:
    """Wall seconds of every ``fns[name]()``, measured in interleaved rounds.

    Each method first runs ``warmup`` untimed times (an int for all, or a
    mapping name -> count, missing names 0), in the mapping's order. Then, in
    each of ``rounds`` rounds, every method runs once, timed; round ``r`` starts
    at method ``r mod n`` and goes on in the mapping's (cyclic) order, so no
    method is always first and a load change on a shared machine hits ours and
    the peers alike. Returns name -> the ``rounds`` seconds, in round order.
    """
    names = list(fns)
    counts = (
        {name: warmup.get(name, 0) for name in names}
        if isinstance(warmup, Mapping)
        else dict.fromkeys(names, warmup)
    )
    for name in names:
        for _ in range(counts[name]):
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    n = len(names)
    for rnd in range(rounds):
        for i in range(n):
            name = names[(rnd + i) % n]
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def summarise(times: Mapping[str, list[float]], ours: str, peer: str) -> dict[str, Any]:
    """Medians of ``ours`` and ``peer`` from :func:`interleaved_times` and their
    ratios, peer / ours (> 1: ours faster, as :func:`record` with
    ``higher_is_better=False``): ``ratio`` of the medians and ``round_ratio``,
    the median of the per-round ratios. Also ``rounds`` and the raw ``runs`` /
    ``peer_runs`` lists, as stored in the records."""
    mine, theirs = list(times[ours]), list(times[peer])
    seconds, peer_seconds = statistics.median(mine), statistics.median(theirs)
    per_round = [p / o for o, p in zip(mine, theirs, strict=True) if o > 0]
    return {
        "seconds": seconds,
        "peer_seconds": peer_seconds,
        "ratio": peer_seconds / seconds if seconds else None,
        "round_ratio": statistics.median(per_round) if per_round else None,
        "rounds": len(mine),
        "runs": mine,
        "peer_runs": theirs,
    }


#: the fields of a :func:`summarise` result that a record keeps beside its
#: medians: the raw rounds and the median per-round ratio
ROUND_KEYS = ("rounds", "runs", "peer_runs", "round_ratio")


def round_fields(paired: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`ROUND_KEYS` of a :func:`summarise` result, for a record."""
    return {key: paired[key] for key in ROUND_KEYS}


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
