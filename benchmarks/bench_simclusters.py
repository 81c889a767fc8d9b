"""SimClusters end to end on a planted fake graph (issue #14).

On the project's planted-community generator (64 communities / topics; edges
split 60 / 25 / 15 % over follow / comment / share as in ``bench_generation``):

* end to end: follow matrices, similarity, KnownFor (Metropolis–Hastings),
  InterestedIn (local), producer and item embeddings — seconds per step and in
  total, medians of ``--rounds`` passes (each pass's seconds kept as ``runs``);
* KnownFor MH vs Leiden (``leidenalg``, ``bench`` extra) on the same similarity
  graph, ``--peer-rounds`` interleaved rounds (medians, the per-round ratio
  too): seconds, modularity, NMI against the planted note topics (on the
  producers each method assigns, and on all producers with unassigned ones as
  one group), user NMI of the top InterestedIn community;
* InterestedIn local vs dask (LocalCluster, 2 workers x 1 thread), interleaved
  rounds: median seconds and the peak resident memory of the process tree
  (workers included) over the rounds, identical output checked.

    python benchmarks/bench_simclusters.py                       # 10 M edges
    python benchmarks/bench_simclusters.py --quick               # 1 M edges
    python benchmarks/bench_simclusters.py --peer-rounds 1       # Leiden once (10M: 5 min)
    python benchmarks/bench_simclusters.py --dask-edges 10000000 100000000
    python benchmarks/bench_simclusters.py --edges 10000000 --append  # add a size

Parameters are conf/base/parameters_simclusters.yml with ``k`` = 64.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import scipy.sparse as sp
import yaml
from sklearn.metrics import normalized_mutual_info_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    interleaved_times,
    record,
    round_fields,
    summarise,
    write_results,
)

REPO = Path(__file__).resolve().parents[1]
K = 64


def _generator_config(n_edges: int) -> dict:
    follow = n_edges * 6 // 10
    comment = n_edges * 25 // 100
    return {
        "seed": 1,
        "mode": "local",
        "n_parts": 8,
        "n_users": max(1000, n_edges // 10),
        "n_notes": max(1000, n_edges // 20),
        "n_communities": K,
        "relations": {
            "follow_note": {"n_edges": follow, "p_in_community": 0.35},
            "comment_note": {
                "n_edges": comment,
                "p_in_community": 0.55,
                "weight_mean": 1.0,
            },
            "share_note": {
                "n_edges": n_edges - follow - comment,
                "p_in_community": 0.75,
                "weight_mean": 0.5,
            },
        },
    }


def make_graph(n_edges: int):
    """``(relation matrices, note topics, user communities, seconds)``."""
    from hgt_cluster_kedro.generation import GeneratorConfig, generate

    config = GeneratorConfig.model_validate(_generator_config(n_edges))
    start = time.perf_counter()
    graph = generate(config)
    shape = (config.n_users, config.n_notes)
    mats = {}
    for rel, edges in graph.edges.items():
        mats[rel] = sp.csr_matrix(
            (
                np.ones(len(edges), np.float32),
                (edges["user_id"].to_numpy(), edges["note_id"].to_numpy()),
            ),
            shape=shape,
        )
        mats[rel].sum_duplicates()
        mats[rel].data[:] = 1.0
    topics = graph.note_topics.sort_values("note_id")["topic"].to_numpy()
    comms = graph.user_communities.sort_values("user_id")["community"].to_numpy()
    return mats, topics, comms, time.perf_counter() - start


class PeakRss:
    """Peak resident memory of this process and its children, sampled."""

    def __init__(self) -> None:
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._done.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def _params() -> dict:
    params = yaml.safe_load(
        (REPO / "conf/base/parameters_simclusters.yml").read_text()
    )["simclusters"]
    params["knownfor"]["k"] = K
    return params


def _nmi(truth: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    assigned = labels >= 0
    on_assigned = normalized_mutual_info_score(truth[assigned], labels[assigned])
    return float(on_assigned), float(normalized_mutual_info_score(truth, labels))


def _steps(mats: dict, p: dict) -> tuple[dict[str, float], dict[str, Any]]:
    """One end-to-end pass: seconds per step and what the comparisons reuse."""
    from hgt_cluster_kedro.simclusters import (
        interested_in,
        item_embeddings,
        knownfor,
        producer_embeddings,
        producer_similarity,
    )

    steps: dict[str, float] = {}
    start = time.perf_counter()
    rels = p["follow_relation"]
    weights = p["follow_weights"] or {}
    binary = sum(mats[r] for r in rels).tocsr()
    binary.data[:] = 1.0
    follow = sum(np.float32(weights.get(r, 1.0)) * mats[r] for r in rels).tocsr()
    engaged = sum(mats[r] for r in p["engagement_relations"]).tocsr()
    engaged.data[:] = 1.0
    steps["matrices"] = time.perf_counter() - start
    s = p["similarity"]
    start = time.perf_counter()
    sim = producer_similarity(
        binary,
        top_n=s["top_n"],
        threshold=s["threshold"],
        min_consumers=s["min_consumers"],
        max_consumer_degree=s["max_consumer_degree"],
        block_producers=s["block_producers"],
        kernel=s.get("kernel", "numba"),
    )
    steps["similarity"] = time.perf_counter() - start
    start = time.perf_counter()
    kf = knownfor(sim, K, **_knownfor_args(p))
    steps["knownfor_mh"] = time.perf_counter() - start
    ii = p["interested_in"]
    ii_args = {k: ii[k] for k in ("top_m", "min_score", "norm", "block_rows")}
    v = kf.matrix()
    start = time.perf_counter()
    u = interested_in(follow, v, **ii_args)
    steps["interested_in"] = time.perf_counter() - start
    start = time.perf_counter()
    producer_embeddings(follow, u, top_m=p["embeddings"]["producer_top_m"])
    item_embeddings(engaged, u, top_m=p["embeddings"]["item_top_m"])
    steps["embeddings"] = time.perf_counter() - start
    keep = {"sim": sim, "kf": kf, "u": u, "follow": follow, "v": v, "ii": ii_args}
    return steps, keep


def _knownfor_args(p: dict) -> dict:
    skip = ("compare_leiden", "leiden_resolution", "k")
    return {k: v for k, v in p["knownfor"].items() if k not in skip}


def end_to_end(
    n_edges: int, records: list[dict], *, rounds: int, peer_rounds: int
) -> tuple:
    """All steps at ``n_edges`` (median of ``rounds`` passes), then KnownFor MH
    vs Leiden on the same similarity graph in ``peer_rounds`` interleaved
    rounds; returns what the dask comparison reuses."""
    from hgt_cluster_kedro.simclusters import (
        knownfor,
        producer_similarity,
        top_community,
    )

    p = _params()
    warm = sp.random(50, 50, density=0.2, random_state=0, format="csr")
    knownfor(warm.maximum(warm.T).tocsr(), 2, epochs=1)  # compile outside timing
    producer_similarity(warm, top_n=2)
    mats, topics, comms, gen_s = make_graph(n_edges)
    bench = f"simclusters_{n_edges // 1_000_000}M" if n_edges >= 1e6 else "simclusters"
    total_edges = int(sum(m.nnz for m in mats.values()))
    print(
        f"{n_edges:,} edges asked, {total_edges:,} distinct; generated in {gen_s:.1f} s"
    )
    passes = []
    for _ in range(rounds):
        steps, keep = _steps(mats, p)
        passes.append(steps)
        print("pass (s):", {k: round(x, 2) for k, x in steps.items()}, flush=True)
    totals = [sum(steps.values()) for steps in passes]
    for name in passes[0]:
        runs = [steps[name] for steps in passes]
        records.append(
            record(
                bench,
                f"seconds/{name}",
                statistics.median(runs),
                "s",
                higher_is_better=False,
                runs=runs,
            )
        )
    sim, kf, u = keep["sim"], keep["kf"], keep["u"]
    records.append(
        record(
            bench,
            "seconds/end_to_end",
            statistics.median(totals),
            "s",
            higher_is_better=False,
            runs=totals,
            rounds=rounds,
            edges=total_edges,
            users=int(keep["follow"].shape[0]),
            producers=int(keep["follow"].shape[1]),
            similarity_edges=int(sim.nnz // 2),
            aim_seconds=60.0,
        )
    )
    print(f"end to end: median {statistics.median(totals):.2f} s of {totals}")
    user_nmi = float(normalized_mutual_info_score(comms, top_community(u)))
    records.append(record(bench, "user_nmi_top_interested_in", user_nmi, ""))
    print(f"user NMI (top InterestedIn community) {user_nmi:.4f}")
    _mh_vs_leiden(bench, sim, kf, topics, p, rounds=peer_rounds, records=records)
    return keep["follow"], keep["v"], keep["ii"]


def _mh_vs_leiden(bench, sim, kf, topics, p, *, rounds, records) -> None:
    """KnownFor MH and Leiden on one similarity graph, interleaved rounds."""
    from hgt_cluster_kedro.simclusters import knownfor, leiden, modularity

    if rounds < 1:
        return

    try:
        import leidenalg  # noqa: F401
    except ImportError:
        print("leidenalg missing (bench extra): MH vs Leiden skipped")
        return
    seed = p["knownfor"]["seed"]
    out: dict[str, np.ndarray] = {}
    fns = {
        "mh": lambda: out.__setitem__("mh", knownfor(sim, K, **_knownfor_args(p))),
        "leiden": lambda: out.__setitem__("leiden", leiden(sim, seed=seed)[0]),
    }
    times = summarise(interleaved_times(fns, rounds, warmup=0), "mh", "leiden")
    mh_labels, ld_labels = out["mh"].labels, out["leiden"]
    assert np.array_equal(mh_labels, kf.labels)  # seeded: every pass the same
    mh_mod, ld_mod = modularity(sim, mh_labels), modularity(sim, ld_labels)
    mh_nmi, ld_nmi = _nmi(topics, mh_labels), _nmi(topics, ld_labels)
    records += [
        record(
            bench,
            "knownfor_seconds/mh",
            times["seconds"],
            "s",
            peer="leiden",
            peer_value=times["peer_seconds"],
            higher_is_better=False,
            **round_fields(times),
        ),
        record(
            bench,
            "knownfor_modularity/mh",
            mh_mod,
            "",
            peer="leiden",
            peer_value=ld_mod,
        ),
        record(
            bench,
            "knownfor_nmi_topics_assigned/mh",
            mh_nmi[0],
            "",
            peer="leiden",
            peer_value=ld_nmi[0],
            assigned_fraction=float((mh_labels >= 0).mean()),
            leiden_communities=int(np.unique(ld_labels[ld_labels >= 0]).size),
        ),
        record(
            bench,
            "knownfor_nmi_topics_all/mh",
            mh_nmi[1],
            "",
            peer="leiden",
            peer_value=ld_nmi[1],
        ),
    ]
    print(
        f"MH: {times['seconds']:.2f} s, modularity {mh_mod:.4f}, NMI {mh_nmi}; "
        f"Leiden: {times['peer_seconds']:.2f} s, modularity {ld_mod:.4f}, "
        f"NMI {ld_nmi} ({rounds} interleaved rounds, medians)"
    )


def local_vs_dask(
    follow, v, ii_args, n_edges: int, records: list[dict], *, rounds: int
) -> None:
    """InterestedIn local vs dask on the same inputs, interleaved rounds:
    median seconds (the call alone: cluster start-up not counted) and the peak
    memory of the process tree over the rounds."""
    from distributed import Client, LocalCluster

    from hgt_cluster_kedro.simclusters import interested_in

    bench = f"simclusters_interested_in_{max(n_edges // 1_000_000, 1)}M"
    out: dict[str, Any] = {}
    peaks = {"local": 0, "dask": 0}

    def run(name: str) -> float:
        """Seconds of one InterestedIn; dask on a fresh cluster each time (a
        reused one keeps the scattered blocks: later rounds would ship nothing)."""
        with contextlib.ExitStack() as stack:
            kw: dict[str, Any] = {}
            if name == "dask":
                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=2,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        memory_limit="4GiB",
                    )
                )
                kw["client"] = stack.enter_context(Client(cluster))
                kw["client"].run(lambda: None)  # workers up before timing
            with PeakRss() as mem:
                start = time.perf_counter()
                out[name] = interested_in(follow, v, **kw, **ii_args)
                seconds = time.perf_counter() - start
            peaks[name] = max(peaks[name], mem.peak)
        return seconds

    runs: dict[str, list[float]] = {"local": [], "dask": []}
    for rnd in range(rounds):  # interleaved, alternating which goes first
        for name in ("local", "dask") if rnd % 2 == 0 else ("dask", "local"):
            runs[name].append(run(name))
    times = summarise(runs, "local", "dask")
    local, remote = out["local"], out["dask"]
    same = (
        np.array_equal(local.indptr, remote.indptr)
        and np.array_equal(local.indices, remote.indices)
        and np.array_equal(local.data, remote.data)
    )
    records += [
        record(
            bench,
            "interested_in_seconds/local",
            times["seconds"],
            "s",
            peer="dask_2_workers",
            peer_value=times["peer_seconds"],
            higher_is_better=False,
            identical_output=bool(same),
            follow_edges=int(follow.nnz),
            block_rows=ii_args["block_rows"],
            **round_fields(times),
        ),
        record(
            bench,
            "interested_in_peak_rss/local",
            peaks["local"] / 2**20,
            "MiB",
            peer="dask_2_workers",
            peer_value=peaks["dask"] / 2**20,
            higher_is_better=False,
        ),
    ]
    print(
        f"InterestedIn {follow.nnz:,} follow edges: local {times['seconds']:.2f} s "
        f"{peaks['local'] / 2**20:.0f} MiB, dask {times['peer_seconds']:.2f} s "
        f"{peaks['dask'] / 2**20:.0f} MiB (tree), identical={same}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edges", type=int, default=10_000_000)
    parser.add_argument(
        "--dask-edges",
        type=int,
        nargs="*",
        default=None,
        help="sizes of the local-vs-dask InterestedIn runs (default: --edges only)",
    )
    parser.add_argument(
        "--block-rows",
        type=int,
        default=None,
        help="InterestedIn block (default: parameters file)",
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the records of other sizes already in results/simclusters.json",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 M edges (benchmarks/run_all.py --quick)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="end-to-end passes and local/dask rounds"
    )
    parser.add_argument(
        "--peer-rounds",
        type=int,
        default=None,
        help="interleaved MH / Leiden rounds (default: --rounds)",
    )
    args = parser.parse_args()
    if args.quick:
        args.edges = 1_000_000
    records: list[dict] = []
    peer = args.rounds if args.peer_rounds is None else args.peer_rounds
    rounds = {"rounds": args.rounds, "peer_rounds": peer}
    follow, v, ii_args = end_to_end(args.edges, records, **rounds)
    if args.block_rows:
        ii_args["block_rows"] = args.block_rows
    local_vs_dask(follow, v, ii_args, args.edges, records, rounds=args.rounds)
    for n in args.dask_edges or []:
        if n == args.edges:
            continue
        sub: list[dict] = []
        f2, v2, a2 = end_to_end(n, sub, rounds=1, peer_rounds=0)
        if args.block_rows:
            a2["block_rows"] = args.block_rows
        local_vs_dask(f2, v2, a2, n, records, rounds=args.rounds)
    if args.append:
        path = Path(__file__).resolve().parent / "results/simclusters.json"
        if path.exists():
            ours = {r["benchmark"] for r in records}
            old = [
                r for r in json.loads(path.read_text()) if r["benchmark"] not in ours
            ]
            records = old + records
    print(write_results("simclusters", records))


if __name__ == "__main__":
    main()
