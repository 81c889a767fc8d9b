"""Self-organising maps: our batch SOM (PyTorch) against MiniSom and torchsom.

All three train the same grid (10 x 10 by default) on the same data from the
same initial codebook (MiniSom's PCA init, ``clustering.som.pca_init``), with
the same radius schedule (``sigma`` 5 -> 0.5, exponential over the first 70% of
the epochs, then held: ``--convergence-fraction`` 0.3) and the same number
of sample presentations (``epochs`` passes over the data):

* ours: ``fit_som(backend="batch")``, Kohonen's batch map, one codebook update
  per epoch; timed end to end (checks, init, training, final error pass).
  Run twice: ``ours`` with the same epochs as the peers, and ``ours_<E>ep``
  with ``--ours-more-epochs`` (default 3x) epochs, since a batch map needs more
  (cheap) epochs than the online SOM to reach the same quantisation error.
* MiniSom: ``MiniSom.train(x, epochs, random_order=True, use_epochs=True)``,
  the online SOM (one update per sample, ``epochs * n`` presentations), step
  size 0.5 -> 0.01 on the same schedule; timed from construction to the end
  of training.
* torchsom: ``SOM.fit`` (mini-batches of ``--torchsom-batch`` samples, PyTorch
  brute-force BMU search; its FAISS search was slower here), same schedules;
  timed from construction to the end of ``fit`` (which also computes errors
  per batch, as its API does). Skipped with a recorded note when not
  importable (``pip install --no-deps torchsom==1.3.1 hdbscan``).

Quantisation and topographic errors of every result are computed by one shared
function (``hgt_cluster_kedro.clustering.som_errors``). The methods are timed
in interleaved rounds (ours after one warm-up run, the peers without, as
before): every round runs each once, starting at a different one each round, so
a load change on the shared machine hits all alike. Times are medians over
``--rounds``; the records keep the raw per-round ``runs`` / ``peer_runs`` and
the 1-minute load average before (``load1``) and after (``load1_end``) the
rounds.

    python benchmarks/bench_som.py            # 100 k x 64, 10 x 10, 10 epochs
    python benchmarks/bench_som.py --quick    # 20 k points, 5 epochs, 2 rounds
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

from hgt_cluster_kedro.clustering import fit_som, som_errors  # noqa: E402
from hgt_cluster_kedro.clustering.som import pca_init, schedule  # noqa: E402

BENCH = "som"


def make_data(n: int, d: int, k: int, seed: int) -> np.ndarray:
    """``k`` overlapping Gaussian clusters, rows L2-normalised (as the ``som``
    pipeline's ``normalize: true``)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d))
    x = centers[rng.integers(0, k, n)] + 0.8 * rng.normal(size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def load1() -> float:
    return os.getloadavg()[0]


def timed(
    methods: dict[str, tuple[Callable[[], np.ndarray], int]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Seconds of every ``name: (fn, warm-up runs)`` over interleaved rounds
    and each method's last codebook."""
    last: dict[str, np.ndarray] = {}

    def keep(name: str, fn: Callable[[], np.ndarray]) -> Callable[[], None]:
        def run() -> None:
            last[name] = fn()

        return run

    times = interleaved_times(
        {name: keep(name, fn) for name, (fn, _) in methods.items()},
        rounds,
        warmup={name: warmup for name, (_, warmup) in methods.items()},
    )
    return times, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 k points, 5 epochs")
    parser.add_argument("--n", type=int, default=None, help="points (overrides)")
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--clusters", type=int, default=32, help="clusters in the data")
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--cols", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--sigma", type=float, default=5.0)
    parser.add_argument("--sigma-final", type=float, default=0.5)
    parser.add_argument("--convergence-fraction", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--rounds",
        "--repeats",
        dest="rounds",
        type=int,
        default=None,
        help="interleaved rounds (3; quick: 2)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torchsom-batch", type=int, default=1024)
    parser.add_argument(
        "--ours-more-epochs", type=int, default=None, help="default 3 x epochs"
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["minisom", "torchsom"]
    )
    args = parser.parse_args()
    n = args.n or (20_000 if args.quick else 100_000)
    epochs = args.epochs or (5 if args.quick else 10)
    rounds = args.rounds or (2 if args.quick else 3)
    rows, cols, d = args.rows, args.cols, args.d
    torch.set_num_threads(args.threads)
    x = make_data(n, d, args.clusters, args.seed)
    w0 = pca_init(x, rows, cols)
    hold = {"convergence_fraction": args.convergence_fraction}
    sigmas = [
        schedule(args.sigma, args.sigma_final, t, epochs, "exponential", **hold)
        for t in range(epochs)
    ]
    rates = [
        schedule(0.5, 0.01, t, epochs, "exponential", **hold) for t in range(epochs)
    ]
    common = {
        "n": n,
        "d": d,
        "grid": f"{rows}x{cols}",
        "epochs": epochs,
        "presentations": epochs * n,
        "init": "pca (shared)",
        "sigma": f"{args.sigma} -> {args.sigma_final} exponential",
        "convergence_fraction": args.convergence_fraction,
        "threads": args.threads,
        "load1_start": load1(),
    }
    print(
        f"data {n} x {d}, grid {rows}x{cols}, {epochs} epochs, {rounds} rounds; "
        f"{common}",
        flush=True,
    )

    def ours(run_epochs: int) -> np.ndarray:
        return fit_som(
            x,
            rows=rows,
            cols=cols,
            sigma=args.sigma,
            sigma_final=args.sigma_final,
            epochs=run_epochs,
            convergence_fraction=args.convergence_fraction,
            init="pca",
            backend="batch",
            device="cpu",
            n_threads=args.threads,
        ).codebook

    def minisom() -> np.ndarray:
        from minisom import MiniSom

        som = MiniSom(
            rows,
            cols,
            d,
            sigma=args.sigma,
            learning_rate=0.5,
            decay_function=lambda _lr, t, _m: rates[int(t)],
            random_seed=args.seed,
        )
        # the constructor takes only named sigma schedules
        som._sigma_decay_function = lambda _s, t, _m: sigmas[int(t)]
        som._weights = w0.astype(np.float64).reshape(rows, cols, d).copy()
        som.train(x, epochs, random_order=True, use_epochs=True)
        return som.get_weights().reshape(rows * cols, d).astype(np.float32)

    def torchsom() -> np.ndarray:
        from torchsom import SOM

        som = SOM(
            rows,
            cols,
            d,
            epochs=epochs,
            batch_size=args.torchsom_batch,
            sigma=args.sigma,
            learning_rate=0.5,
            search_backend="torch",
            device="cpu",
            random_seed=args.seed,
        )
        som.weights.data = torch.from_numpy(w0.reshape(rows, cols, d).copy())
        som.sigma_schedule = torch.tensor(sigmas)
        som.lr_schedule = torch.tensor(rates)
        som.fit(torch.from_numpy(x), verbose=False)
        return som.weights.data.reshape(rows * cols, d).cpu().numpy()

    more = args.ours_more_epochs or 3 * epochs
    method_epochs = {"ours": epochs, f"ours_{more}ep": more}
    methods: dict[str, tuple[Callable[[], np.ndarray], int]] = {
        "ours": (lambda: ours(epochs), 1),
        f"ours_{more}ep": (lambda: ours(more), 1),
    }
    notes: dict[str, str] = {}
    if "minisom" not in args.skip:
        methods["minisom"] = (minisom, 0)
    if "torchsom" not in args.skip:
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import torchsom as _torchsom  # noqa: F401

            methods["torchsom"] = (torchsom, 0)
        except ImportError as exc:
            notes["torchsom"] = f"skipped: not importable ({exc})"
            print(f"torchsom {notes['torchsom']}", flush=True)

    records = []
    results: dict[str, dict[str, float]] = {}
    _, qe0, te0 = som_errors(x, w0, rows, cols, device="cpu")
    print(f"initial PCA codebook: QE {qe0:.5f}, TE {te0:.4f}", flush=True)
    load = load1()
    times, codebooks = timed(methods, rounds)
    load_end = load1()
    for name, codebook in codebooks.items():
        seconds = statistics.median(times[name])
        _, qe, te = som_errors(x, codebook, rows, cols, device="cpu")
        ep = method_epochs.get(name, epochs)
        results[name] = {"seconds": seconds, "qe": qe, "te": te, "load1": load}
        print(
            f"{name:11s} {ep:3d} ep {seconds:8.3f} s  {ep * n / seconds:12,.0f} "
            f"samples/s  QE {qe:.5f}  TE {te:.4f}  "
            f"runs {[round(t, 3) for t in times[name]]}",
            flush=True,
        )
        extra = {
            **common,
            "epochs": ep,
            "presentations": ep * n,
            "load1": load,
            "load1_end": load_end,
            "repeats": rounds,
            "rounds": rounds,
        }
        if name == "torchsom":
            extra["torchsom_batch"] = args.torchsom_batch
        records += [
            record(BENCH, f"seconds/{name}", seconds, "s", runs=times[name], **extra),
            record(
                BENCH,
                f"samples_per_s/{name}",
                ep * n / seconds,
                "samples/s",
                **extra,
            ),
            record(BENCH, f"quantization_error/{name}", qe, "mean dist", **extra),
            record(BENCH, f"topographic_error/{name}", te, "share", **extra),
        ]
    for mine, mine_epochs in method_epochs.items():
        ours_r = results[mine]
        for name, r in results.items():
            if name in method_epochs:
                continue
            paired = summarise(times, mine, name)
            print(
                f"{mine} ({mine_epochs} epochs) {paired['ratio']:.1f}x faster than "
                f"{name} ({epochs} epochs; median per-round ratio "
                f"{paired['round_ratio']:.1f}); QE {mine}/{name} "
                f"{ours_r['qe'] / r['qe']:.4f}, TE {ours_r['te']:.4f} vs {r['te']:.4f}",
                flush=True,
            )
            extra = {
                **common,
                "epochs": mine_epochs,
                "peer_epochs": epochs,
                "load1": ours_r["load1"],
                "peer_load1": r["load1"],
                "load1_end": load_end,
            }
            timing = round_fields(paired)
            for metric, key, unit in (
                ("seconds", "seconds", "s"),
                ("quantization_error", "qe", "mean dist"),
                ("topographic_error", "te", "share"),
            ):
                records.append(
                    record(
                        BENCH,
                        f"{metric}/{mine}",
                        ours_r[key],
                        unit,
                        peer=name,
                        peer_value=r[key],
                        higher_is_better=False,
                        **extra,
                        **(timing if metric == "seconds" else {}),
                    )
                )
    for name, note in notes.items():
        records.append(record(BENCH, f"skipped/{name}", 0, "", note=note, **common))
    path = write_results(BENCH, records)
    print(f"wrote {path}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.1f} s")
