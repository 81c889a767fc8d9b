"""k-means: ours (PyTorch) against scikit-learn and faiss, side by side.

Every method runs 20 Lloyd iterations (scikit-learn and ours stop earlier only if
no label changes) from the *same* initial centroids, with the same thread count;
inertia is computed for all by one shared function on the final centroids
(``hgt_cluster_kedro.clustering.inertia_of``). Achieved GFLOP/s counts the
nominal ``2 n k d`` flops per iteration (ours skips pruned points, so its figure
is an *effective* rate and may exceed the matmul ceiling measured in the same
run). Also timed: each library end to end with its own init (k-means++ for
scikit-learn and ours, faiss's random sample), and fast-pytorch-kmeans when it is
installed (not a project dependency).

The libraries are timed in interleaved rounds (after one warm-up run of each):
every round runs each once, starting at a different one each round, so a load
change on a shared machine hits all alike; times are medians over ``--rounds``
and the records keep the raw per-round ``runs`` / ``peer_runs``.

    python benchmarks/bench_kmeans.py            # 1 M x 64, k = 64
    python benchmarks/bench_kmeans.py --quick    # 100 k points, 2 rounds
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
    median_time,
    record,
    round_fields,
    summarise,
    write_results,
)

from hgt_cluster_kedro.clustering import inertia_of, kmeans  # noqa: E402

BENCH = "kmeans"


def fmt(seconds: list[float]) -> str:
    return "[" + ", ".join(f"{s:.3f}" for s in seconds) + "]"


def make_data(kind: str, n: int, d: int, k: int, seed: int) -> np.ndarray:
    """``blobs``: k well-separated Gaussians; ``mixture``: 4k overlapping modes
    (most points lie near a boundary between the k clusters)."""
    rng = np.random.default_rng(seed)
    if kind == "blobs":
        centers = rng.normal(size=(k, d))
        return (centers[rng.integers(0, k, n)] + 0.3 * rng.normal(size=(n, d))).astype(
            np.float32
        )
    if kind == "mixture":
        centers = rng.normal(size=(4 * k, d))
        return (
            centers[rng.integers(0, 4 * k, n)] + 0.8 * rng.normal(size=(n, d))
        ).astype(np.float32)
    raise ValueError(f"unknown data kind {kind!r}")


def matmul_ceiling(x: np.ndarray, k: int, chunk: int, repeats: int) -> dict[str, float]:
    """GFLOP/s of the assignment matmul shapes: ``[chunk, d] @ [d, k]`` over all
    rows (fp32 and bf16), and one ``[n, d] @ [d, k]``."""
    xt = torch.from_numpy(x)
    c = torch.randn(k, x.shape[1])
    xb, cb = xt.bfloat16(), c.bfloat16()
    out = torch.empty(chunk, k)
    outb = torch.empty(chunk, k, dtype=torch.bfloat16)
    n = x.shape[0]

    def chunked() -> None:
        for s in range(0, n - chunk + 1, chunk):
            torch.mm(xt[s : s + chunk], c.T, out=out)

    def chunked_bf16() -> None:
        for s in range(0, n - chunk + 1, chunk):
            torch.mm(xb[s : s + chunk], cb.T, out=outb)

    flops = 2.0 * (n // chunk) * chunk * k * x.shape[1]
    full_flops = 2.0 * n * k * x.shape[1]
    return {
        "fp32_chunked": flops / median_time(chunked, repeats) / 1e9,
        "bf16_chunked": flops / median_time(chunked_bf16, repeats) / 1e9,
        "fp32_full": full_flops / median_time(lambda: torch.mm(xt, c.T), repeats) / 1e9,
    }


def timed(
    fns: dict[str, Callable[[], tuple[np.ndarray, int]]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, tuple[np.ndarray, int]]]:
    """Seconds of every method over interleaved rounds (one warm-up run each)
    and each method's last (centroids, n_iter)."""
    last: dict[str, tuple[np.ndarray, int]] = {}

    def keep(name: str, fn: Callable[[], tuple[np.ndarray, int]]) -> Callable:
        def run() -> None:
            last[name] = fn()

        return run

    runs = {name: keep(name, fn) for name, fn in fns.items()}
    return interleaved_times(runs, rounds, warmup=1), last


def methods(x: np.ndarray, k: int, init: np.ndarray | None, seed: int, threads: int):
    """name -> callable returning (centroids, n_iter); ``init=None``: own init."""
    import faiss
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    n, d = x.shape

    def sk() -> tuple[np.ndarray, int]:
        with threadpool_limits(threads):
            model = KMeans(
                k,
                init=init if init is not None else "k-means++",
                n_init=1,
                max_iter=20,
                tol=0.0,
                algorithm="lloyd",
                random_state=seed,
            ).fit(x)
        return model.cluster_centers_, int(model.n_iter_)

    def fa() -> tuple[np.ndarray, int]:
        km = faiss.Kmeans(d, k, niter=20, seed=seed, max_points_per_centroid=n)
        km.train(x, init_centroids=init)
        return km.centroids, 20

    def ours() -> tuple[np.ndarray, int]:
        res = kmeans(
            x,
            k,
            init=init if init is not None else "k-means++",
            max_iter=20,
            tol=0.0,
            seed=seed,
            device="cpu",
        )
        return res.centroids, res.n_iter

    out = {"ours": ours, "sklearn": sk, "faiss": fa}
    try:
        from fast_pytorch_kmeans import KMeans as FastKMeans

        def fast() -> tuple[np.ndarray, int]:
            xt = torch.from_numpy(x)
            start = torch.from_numpy(init) if init is not None else None
            model = FastKMeans(n_clusters=k, max_iter=20, tol=-1.0)
            model.fit_predict(xt, centroids=start)
            return model.centroids.numpy(), 20

        if init is not None:
            out["fast_pytorch_kmeans"] = fast
    except ImportError:
        pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100 k points")
    parser.add_argument("--n", type=int, default=None, help="points (overrides)")
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3, help="matmul ceiling")
    parser.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (3; quick: 2)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", nargs="+", default=["mixture", "blobs"])
    args = parser.parse_args()
    n = args.n or (100_000 if args.quick else 1_000_000)
    rounds = args.rounds or (2 if args.quick else 3)
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    records = []
    common = {"n": n, "d": args.d, "k": args.k, "threads": args.threads}
    print(f"{common}, {rounds} interleaved rounds", flush=True)
    for data in args.data:
        x = make_data(data, n, args.d, args.k, args.seed)
        if data == args.data[0]:
            ceiling = matmul_ceiling(x, args.k, 8192, args.repeats)
            print(f"matmul ceiling GFLOP/s: {ceiling}", flush=True)
            for name, val in ceiling.items():
                records.append(
                    record(BENCH, f"matmul_ceiling/{name}", val, "GFLOP/s", **common)
                )
        rng = np.random.default_rng(args.seed)
        init = x[rng.choice(n, args.k, replace=False)].copy()
        results: dict[str, tuple[float, float, int]] = {}
        times, last = timed(methods(x, args.k, init, args.seed, args.threads), rounds)
        for name, (centroids, n_iter) in last.items():
            seconds = statistics.median(times[name])
            inertia = inertia_of(x, centroids)[0]
            results[name] = (seconds, inertia, n_iter)
            gflops = 2.0 * n * args.k * args.d * n_iter / seconds / 1e9
            print(
                f"{data:8s} same-init {name:20s} {seconds:7.3f} s  iters {n_iter:2d}  "
                f"inertia {inertia:.7g}  {gflops:6.1f} GFLOP/s (nominal)  "
                f"runs {fmt(times[name])}",
                flush=True,
            )
        ours_s, ours_in, ours_it = results["ours"]
        for name, (sec, inert, it) in results.items():
            extra = {**common, "data": data, "n_iter": it, "init": "shared random"}
            records.append(
                record(
                    BENCH,
                    f"{data}/seconds/{name}",
                    sec,
                    "s",
                    rounds=rounds,
                    runs=times[name],
                    **extra,
                )
            )
            records.append(
                record(BENCH, f"{data}/inertia/{name}", inert, "sum sq", **extra)
            )
            records.append(
                record(
                    BENCH,
                    f"{data}/gflops_nominal/{name}",
                    2.0 * n * args.k * args.d * it / sec / 1e9,
                    "GFLOP/s",
                    peer="torch.mm fp32 ceiling",
                    peer_value=ceiling["fp32_chunked"],
                    **extra,
                )
            )
            if name != "ours":
                paired = summarise(times, "ours", name)
                print(
                    f"{data}: {name} / ours {paired['ratio']:.3f} (ratio of medians), "
                    f"median per-round ratio {paired['round_ratio']:.3f}",
                    flush=True,
                )
                records.append(
                    record(
                        BENCH,
                        f"{data}/seconds",
                        ours_s,
                        "s",
                        peer=name,
                        peer_value=sec,
                        higher_is_better=False,
                        inertia_ratio=ours_in / inert,
                        **round_fields(paired),
                        **extra,
                    )
                )
        fastest = min(("sklearn", "faiss"), key=lambda m: results[m][0])
        speedup = results[fastest][0] / ours_s
        print(
            f"{data}: ours {speedup:.2f}x faster than {fastest} "
            f"(inertia ratio {ours_in / results[fastest][1]:.5f})",
            flush=True,
        )
        # End to end, each with its own init (ours/sklearn: k-means++).
        own: dict[str, tuple[float, float, int]] = {}
        times, last = timed(methods(x, args.k, None, args.seed, args.threads), rounds)
        for name, (centroids, n_iter) in last.items():
            seconds = statistics.median(times[name])
            own[name] = (seconds, inertia_of(x, centroids)[0], n_iter)
            print(
                f"{data:8s} own-init  {name:20s} {seconds:7.3f} s  iters {n_iter:2d}  "
                f"inertia {own[name][1]:.7g}  runs {fmt(times[name])}",
                flush=True,
            )
        for name, (sec, inert, it) in own.items():
            if name == "ours":
                continue
            paired = summarise(times, "ours", name)
            print(
                f"{data}: end to end {name} / ours {paired['ratio']:.3f} (ratio of "
                f"medians), median per-round ratio {paired['round_ratio']:.3f}",
                flush=True,
            )
            records.append(
                record(
                    BENCH,
                    f"{data}/end_to_end_seconds",
                    own["ours"][0],
                    "s",
                    peer=name,
                    peer_value=sec,
                    higher_is_better=False,
                    inertia_ratio=own["ours"][1] / inert,
                    n_iter=own["ours"][2],
                    peer_n_iter=it,
                    **round_fields(paired),
                    **common,
                    data=data,
                )
            )
        del x
    path = write_results(BENCH, records)
    print(f"wrote {path}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.1f} s")
