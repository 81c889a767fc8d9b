"""Fake-data generation throughput and peak memory, local and dask mode.

Each case runs in a fresh subprocess; peak memory is the largest resident set of
the whole process tree (dask workers included), sampled every 50 ms. Edges/s
counts edges generated *and* written as parquet through the project's dataset.

    python benchmarks/bench_generation.py            # full: 10 M local, 100 M dask
    python benchmarks/bench_generation.py --quick    # small sizes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import record, write_results  # noqa: E402


def _config(n_edges: int, mode: str, n_workers: int, n_parts: int) -> dict:
    n_users = max(1000, n_edges // 10)
    return {
        "seed": 1,
        "mode": mode,
        "n_parts": n_parts,
        "n_users": n_users,
        "n_notes": max(1000, n_edges // 20),
        "n_communities": 64,
        "relations": {
            "follow_note": {"n_edges": n_edges * 6 // 10, "p_in_community": 0.35},
            "comment_note": {
                "n_edges": n_edges * 25 // 100,
                "p_in_community": 0.55,
                "weight_mean": 1.0,
            },
            "share_note": {
                "n_edges": n_edges - n_edges * 6 // 10 - n_edges * 25 // 100,
                "p_in_community": 0.75,
                "weight_mean": 0.5,
            },
        },
        "dask": {
            "n_workers": n_workers,
            "threads_per_worker": 1,
            "memory_limit": "3GiB",
        },
    }


def _child(config_json: str, out_dir: str) -> None:
    """Generate and write once; print seconds as JSON."""
    from hgt_cluster_kedro.datasets import ParquetPartsDataset, ParquetTableSetDataset
    from hgt_cluster_kedro.generation import (
        GeneratorConfig,
        generate,
        start_client,
        stop_client,
    )

    config = GeneratorConfig.model_validate_json(config_json)
    client = start_client(config.dask) if config.mode == "dask" else None
    try:
        start = time.perf_counter()
        graph = generate(config)
        ParquetTableSetDataset(filepath=f"{out_dir}/nodes").save(graph.nodes)
        ParquetTableSetDataset(filepath=f"{out_dir}/edges").save(graph.edges)
        ParquetPartsDataset(filepath=f"{out_dir}/uc").save(graph.user_communities)
        seconds = time.perf_counter() - start
    finally:
        if client is not None:
            stop_client(client)
    print(json.dumps({"seconds": seconds}))


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_case(config: dict) -> tuple[float, float]:
    """(seconds, peak bytes) of one generation in a subprocess."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, __file__, "--child", json.dumps(config), out]
        env = {**os.environ, "TQDM_DISABLE": "1"}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        ps = psutil.Process(proc.pid)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                try:
                    peak = max(peak, _tree_rss(ps))
                except psutil.Error:
                    pass
                time.sleep(0.05)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        stdout, _ = proc.communicate()
        done.set()
        t.join()
        if proc.returncode != 0:
            raise RuntimeError(f"case failed: {config['mode']}")
        return json.loads(stdout.strip().splitlines()[-1])["seconds"], peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    small = 200_000 if args.quick else 10_000_000
    big = 1_000_000 if args.quick else 100_000_000
    repeats = 1 if args.quick else args.repeats
    cases = [
        ("local", small, 1, 20, repeats),
        ("dask", small, 1, 20, repeats),
        ("dask", small, 2, 20, repeats),
        ("dask", big, 2, 200, 1),
    ]
    records = []
    local_rate = None
    for mode, n_edges, workers, n_parts, reps in cases:
        runs = [run_case(_config(n_edges, mode, workers, n_parts)) for _ in range(reps)]
        seconds = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs)
        rate = n_edges / seconds
        label = "local" if mode == "local" else f"dask_{workers}w"
        print(
            f"{label:8s} {n_edges:>12,d} edges  {seconds:7.1f} s  {rate:12,.0f} edges/s "
            f" peak {peak / 2**30:.2f} GiB  (median of {reps})"
        )
        size = (
            f"{n_edges // 1_000_000}M"
            if n_edges >= 1_000_000
            else f"{n_edges // 1000}k"
        )
        if mode == "local" and n_edges == small:
            local_rate = rate
        peer = (
            {}
            if local_rate is None or mode == "local"
            else {"peer": "local", "peer_value": local_rate}
        )
        records += [
            record(
                "generation", f"{label}_{size}_edges_per_s", rate, "edges/s", **peer
            ),
            record(
                "generation",
                f"{label}_{size}_seconds",
                seconds,
                "s",
                higher_is_better=False,
            ),
            record(
                "generation",
                f"{label}_{size}_peak_memory",
                peak / 2**30,
                "GiB",
                higher_is_better=False,
            ),
        ]
    write_results("generation", records)


if __name__ == "__main__":
    main()
