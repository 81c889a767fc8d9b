"""Evaluation harness speed: neighbour search and the full u2u2i evaluation.

Synthetic data with planted communities: user embeddings ``d = 64`` around a
community centre (or plain Gaussian with ``--random``), about 20 train+test
interactions per user, 70 % of them on items of the user's community. Timed
side by side: ``top_m_similar`` with the exact backend (float32, and bf16
screening + float32 verification) against faiss ``IndexFlatIP`` (exact) and
HNSW (approximate), and ``evaluate_u2u2i`` with the exact and the faiss
backends, with the Recall@50 difference between them.

Both are timed in interleaved rounds (no warm-up, as before): every round runs
each backend once, starting at a different one each round, so a load change on
a shared machine hits all alike; times are medians over ``--rounds`` (search)
and ``--eval-rounds`` (full evaluation), and the records keep the raw
per-round ``runs`` / ``peer_runs``.

    python benchmarks/bench_evaluation.py            # 100 k users, 50 k items
    python benchmarks/bench_evaluation.py --quick    # 10 k users, 2 rounds
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    interleaved_times,
    record,
    round_fields,
    summarise,
    write_results,
)

from hgt_cluster_kedro.evaluation import evaluate_u2u2i, top_m_similar  # noqa: E402

BENCH = "evaluation"


def make_data(
    n_users: int,
    n_items: int,
    *,
    d: int = 64,
    per_user: int = 20,
    n_comm: int = 100,
    p_comm: float = 0.7,
    test_fraction: float = 0.2,
    clustered: bool = True,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Embeddings, community labels and a random train/test split of the pairs."""
    rng = np.random.default_rng(seed)
    comm = rng.integers(0, n_comm, n_users)
    noise = rng.normal(size=(n_users, d))
    if clustered:
        emb = rng.normal(size=(n_comm, d))[comm] + 1.5 * noise
    else:
        emb = noise
    item_comm = rng.integers(0, n_comm, n_items)
    order = np.argsort(item_comm, kind="stable")
    bounds = np.searchsorted(item_comm[order], np.arange(n_comm + 1))
    user = np.repeat(np.arange(n_users), per_user)
    lo, hi = bounds[comm[user]], bounds[comm[user] + 1]
    own = order[
        np.minimum(lo + (rng.random(user.size) * (hi - lo)).astype(int), hi - 1)
    ]
    item = np.where(
        rng.random(user.size) < p_comm, own, rng.integers(0, n_items, user.size)
    )
    pairs = np.unique(user * np.int64(n_items) + item)
    user, item = pairs // n_items, pairs % n_items
    test = rng.random(user.size) < test_fraction
    return {
        "emb": emb.astype(np.float32),
        "comm": comm,
        "train": (user[~test], item[~test]),
        "test": (user[test], item[test]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 k users")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--m", type=int, default=50, help="neighbours per user")
    parser.add_argument(
        "--rounds",
        "--repeats",
        dest="rounds",
        type=int,
        default=None,
        help="search rounds (3; quick: 2)",
    )
    parser.add_argument(
        "--eval-rounds",
        "--eval-repeats",
        dest="eval_rounds",
        type=int,
        default=None,
        help="full-evaluation rounds (default: --rounds)",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--random", action="store_true", help="unclustered embeddings")
    args = parser.parse_args()
    n_users = args.users or (10_000 if args.quick else 100_000)
    n_items = args.items or n_users // 2
    rounds = args.rounds or (2 if args.quick else 3)
    eval_rounds = args.eval_rounds or rounds
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    data = make_data(n_users, n_items, clustered=not args.random)
    emb = data["emb"]
    common = {
        "n_users": n_users,
        "n_items": n_items,
        "m": args.m,
        "threads": args.threads,
        "n_train": int(data["train"][0].size),
        "n_test": int(data["test"][0].size),
    }
    print(f"{common}, rounds {rounds}, eval rounds {eval_rounds}", flush=True)
    records = []

    # -- neighbour search for every user
    search = {
        "exact_fp32": {"backend": "exact", "precision": "fp32"},
        "exact_bf16": {"backend": "exact", "precision": "bf16"},
        "faiss_flat": {"backend": "faiss", "faiss_index": "flat"},
        "faiss_hnsw": {"backend": "faiss", "faiss_index": "hnsw"},
    }
    found: dict[str, np.ndarray] = {}

    def searcher(name: str, opts: dict) -> Callable[[], None]:
        def run() -> None:
            found[name] = top_m_similar(emb, None, args.m, **opts)[0]

        return run

    runs = interleaved_times(
        {name: searcher(name, opts) for name, opts in search.items()},
        rounds,
        warmup=0,
    )
    times = {name: statistics.median(ts) for name, ts in runs.items()}
    for name in search:
        overlap = np.mean(
            [
                np.intersect1d(a, b).size / args.m
                for a, b in zip(
                    found[name][:2000], found["exact_fp32"][:2000], strict=True
                )
            ]
        )
        print(
            f"top-{args.m} search {name:11s} {times[name]:8.2f} s  "
            f"neighbour overlap with exact_fp32 {overlap:.4f}  "
            f"runs {[round(t, 3) for t in runs[name]]}",
            flush=True,
        )
        records.append(
            record(
                BENCH,
                f"search_seconds/{name}",
                times[name],
                "s",
                neighbour_overlap=overlap,
                rounds=rounds,
                runs=runs[name],
                **common,
            )
        )
    for name in ("exact_bf16", "exact_fp32"):
        for peer in ("faiss_flat", "faiss_hnsw"):
            paired = summarise(runs, name, peer)
            print(
                f"search {peer} / {name}: {paired['ratio']:.3f} (ratio of medians), "
                f"median per-round ratio {paired['round_ratio']:.3f}",
                flush=True,
            )
            records.append(
                record(
                    BENCH,
                    f"search_seconds/{name}",
                    paired["seconds"],
                    "s",
                    peer=peer,
                    peer_value=paired["peer_seconds"],
                    higher_is_better=False,
                    **round_fields(paired),
                    **common,
                )
            )

    # -- full evaluation, exact vs faiss
    backends = {
        "exact": {"backend": "exact"},
        "faiss_flat": {"backend": "faiss", "faiss_index": "flat"},
        "faiss_hnsw": {"backend": "faiss", "faiss_index": "hnsw"},
    }
    results: dict[str, list[dict]] = {name: [] for name in backends}

    def evaluator(name: str, opts: dict) -> Callable[[], None]:
        def run() -> None:
            results[name].append(
                evaluate_u2u2i(
                    emb,
                    data["train"],
                    data["test"],
                    n_items,
                    m_neighbors=args.m,
                    cluster_labels=data["comm"],
                    cluster_boost=0.5,
                    **opts,
                )
            )

        return run

    eval_runs = interleaved_times(
        {name: evaluator(name, opts) for name, opts in backends.items()},
        eval_rounds,
        warmup=0,
    )
    evals: dict[str, dict] = {}
    for name in backends:
        # metrics from the last run (deterministic); internal timings: medians
        res = dict(results[name][-1])
        for key in res:
            if key.startswith("seconds_"):
                res[key] = statistics.median(r[key] for r in results[name])
        res["seconds_wall"] = statistics.median(eval_runs[name])
        evals[name] = res
        print(
            f"evaluate_u2u2i {name:10s} {res['seconds_wall']:7.2f} s "
            f"(search {res['seconds_search']:.2f}, recommend "
            f"{res['seconds_recommend']:.2f}, metrics {res['seconds_metrics']:.2f}, "
            f"boost {res['seconds_boost']:.2f})  recall@50 {res['recall@50']:.4f}  "
            f"boost delta {res['recall@50_boost_delta']:+.4f}  "
            f"runs {[round(t, 3) for t in eval_runs[name]]}",
            flush=True,
        )
        records.append(
            record(
                BENCH,
                f"evaluate_seconds/{name}",
                res["seconds_wall"],
                "s",
                **{
                    key: res[key]
                    for key in (
                        "seconds_search",
                        "seconds_recommend",
                        "seconds_metrics",
                        "seconds_boost",
                        "recall@50",
                        "ndcg@50",
                        "recall@50_boost_delta",
                    )
                },
                rounds=eval_rounds,
                runs=eval_runs[name],
                **common,
            )
        )
    for peer in ("faiss_flat", "faiss_hnsw"):
        paired = summarise(eval_runs, "exact", peer)
        records.append(
            record(
                BENCH,
                "evaluate_seconds/exact",
                paired["seconds"],
                "s",
                peer=peer,
                peer_value=paired["peer_seconds"],
                higher_is_better=False,
                recall50_diff=evals["exact"]["recall@50"] - evals[peer]["recall@50"],
                **round_fields(paired),
                **common,
            )
        )
        print(
            f"evaluate {peer} / exact: {paired['ratio']:.3f} (ratio of medians), "
            f"median per-round ratio {paired['round_ratio']:.3f}; Recall@50 exact - "
            f"{peer}: {evals['exact']['recall@50'] - evals[peer]['recall@50']:+.5f}"
        )
    path = write_results(BENCH, records)
    print(f"wrote {path}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.1f} s")
