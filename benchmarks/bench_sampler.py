"""CSR build and neighbour-sampler throughput on a random power-law user-note graph.

Reports, on a 10 M-edge graph (3 relations, 1 M users, 500 k notes; reverse
relations added, so 20 M stored directed edges):

* CSR build seconds (median of 3) and bytes per stored directed edge;
* 2-hop node sampling (fanouts [4, 2], 1024 seed users per batch): sampled edges/s
  of the ``numba`` and the ``torch`` backend, side by side with a gather ceiling
  measured in the same run -- one ``torch.index_select`` per batch of as many
  random positions as the batch has sampled edges, from the largest CSR
  ``indices`` array of the store. Each is timed over back-to-back passes
  (medians), the numba backend first, then the ceiling, then the torch backend;
* link sampling (1024 positives + 1 uniform negative per side), default backend:
  positives/s.

The sampler loop runs with ``--threads`` intra-op threads (default 1, as in a
DataLoader worker; the ceiling uses the same setting); the CSR build uses all cores.
The numba kernels are compiled (or loaded from numba's cache) before timing; the
first call's seconds are recorded (``first_call_seconds``).

    python benchmarks/bench_sampler.py            # full size
    python benchmarks/bench_sampler.py --quick    # 1 M edges
    python benchmarks/bench_sampler.py --profile  # + per-op profile of the sampler
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _common import median_time, record, write_results  # noqa: E402

from hgt_cluster_kedro.graph.csr import HeteroCSR  # noqa: E402
from hgt_cluster_kedro.graph.sampler import NeighborSampler  # noqa: E402

RELATIONS = {"like": 0.5, "comment": 0.3, "create": 0.2}
BENCH = "sampler"


def power_law_edges(
    num_users: int, num_notes: int, num_edges: int, seed: int = 0, gamma: float = 2.0
) -> tuple[dict[str, int], dict]:
    """Random user->note edges whose endpoint popularity follows a power law.

    Node ``i`` of a type (after a random relabelling) is drawn with density
    ``~ rank ** (1 / gamma - 1)``: a few hubs, a long tail of degree-1 nodes.
    """
    g = torch.Generator().manual_seed(seed)

    def draw(n: int, m: int) -> torch.Tensor:
        rank = (torch.rand(m, generator=g).pow_(gamma) * n).long().clamp_(max=n - 1)
        return torch.randperm(n, generator=g)[rank]

    edges = {}
    left = num_edges
    for i, (rel, share) in enumerate(RELATIONS.items()):
        m = left if i == len(RELATIONS) - 1 else int(num_edges * share)
        left -= m
        edges[("user", rel, "note")] = (draw(num_users, m), draw(num_notes, m))
    return {"user": num_users, "note": num_notes}, edges


def _rate(fn, repeats: int) -> tuple[float, float]:
    """Median over ``repeats`` runs of ``count / seconds`` (``fn`` returns count)."""
    fn()  # warm-up
    rates, counts = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
        counts.append(n)
    return statistics.median(rates), statistics.mean(counts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 M edges")
    parser.add_argument("--threads", type=int, default=1, help="sampler threads")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    if args.quick:
        num_users, num_notes, num_edges = 100_000, 50_000, 1_000_000
    else:
        num_users, num_notes, num_edges = 1_000_000, 500_000, 10_000_000
    size = {
        "num_edges": num_edges,
        "num_users": num_users,
        "num_notes": num_notes,
        "quick": args.quick,
    }
    records = []

    num_nodes, edges = power_law_edges(num_users, num_notes, num_edges)
    build_threads = torch.get_num_threads()
    graph = None

    def build() -> None:
        nonlocal graph
        graph = None
        graph = HeteroCSR.from_coo(num_nodes, edges)

    build_s = median_time(build, repeats=3, warmup=0)
    stored = graph.num_edges()
    bytes_per_edge = graph.nbytes() / stored
    print(f"CSR build {build_s:.2f} s, {stored:,} stored edges, {bytes_per_edge:.2f} B")
    records.append(
        record(
            BENCH,
            "csr_build_seconds",
            build_s,
            "s",
            higher_is_better=False,
            threads=build_threads,
            budget=10.0,
            **size,
        )
    )
    records.append(
        record(
            BENCH,
            "csr_bytes_per_stored_edge",
            bytes_per_edge,
            "B",
            higher_is_better=False,
            stored_edges=stored,
            budget=24.0,
            **size,
        )
    )
    edges = None  # free the COO input

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(1)
    batches = [
        torch.randperm(num_users, generator=g)[:1024] for _ in range(args.batches)
    ]
    samplers = {}
    for backend in ("numba", "torch"):
        t0 = time.perf_counter()
        sampler = NeighborSampler(graph, [4, 2], seed=0, backend=backend)
        init_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sampler.sample_nodes({"user": batches[0]})
        first_s = time.perf_counter() - t0
        samplers[backend] = (sampler, init_s, first_s)
        print(
            f"{backend} sampler init {init_s:.2f} s, first call {first_s:.3f} s, "
            f"{sampler.nbytes() / 2**20:.0f} MiB extra"
        )

    def sample_all(sampler: NeighborSampler) -> int:
        n = 0
        for seeds in batches:
            data = sampler.sample_nodes({"user": seeds})
            n += sum(data[et].edge_index.size(1) for et in data.edge_types)
        return n

    # Gather ceiling: same number of random positions per batch, same store.
    per_batch = sample_all(samplers["numba"][0]) // len(batches)
    et_big = max(graph.edge_types, key=graph.num_edges)
    indices = graph.indices[et_big]
    positions = [
        torch.randint(0, indices.numel(), (per_batch,), generator=g) for _ in batches
    ]

    def gather_all() -> int:
        for pos in positions:
            torch.index_select(indices, 0, pos)
        return per_batch * len(positions)

    rates = {"numba": _rate(lambda: sample_all(samplers["numba"][0]), args.repeats)}
    rates["ceiling"] = _rate(gather_all, args.repeats)
    rates["torch"] = _rate(lambda: sample_all(samplers["torch"][0]), args.repeats)
    ceiling = rates["ceiling"][0]
    for backend in ("numba", "torch"):
        ours, total = rates[backend]
        edges = int(total / len(batches))
        sampler, init_s, first_s = samplers[backend]
        print(
            f"{backend}: {ours / 1e6:.2f} M edges/s ({edges} edges/batch, "
            f"{1e3 * edges / ours:.2f} ms/batch), ceiling {ceiling / 1e6:.1f} M/s, "
            f"ratio {ours / ceiling:.3f}"
        )
        records.append(
            record(
                BENCH,
                "sampled_edges_per_s" + ("" if backend == "numba" else "_torch"),
                ours,
                "edges/s",
                peer="index_select_ceiling",
                peer_value=ceiling,
                backend=backend,
                fanouts=[4, 2],
                batch_size=1024,
                edges_per_batch=edges,
                threads=args.threads,
                ceiling_array=list(et_big),
                sampler_init_seconds=init_s,
                first_call_seconds=first_s,
                **size,
            )
        )
    speedup = rates["numba"][0] / rates["torch"][0]
    print(f"numba backend / torch backend: {speedup:.2f}x")
    records.append(
        record(
            BENCH,
            "sampled_edges_per_s_numba_vs_torch",
            rates["numba"][0],
            "edges/s",
            peer="torch_backend",
            peer_value=rates["torch"][0],
            fanouts=[4, 2],
            batch_size=1024,
            threads=args.threads,
            **size,
        )
    )
    sampler = samplers["numba"][0]

    pos_src, pos_dst = graph.to_coo(("user", "like", "note"))
    pick = [torch.randint(0, pos_src.numel(), (1024,), generator=g) for _ in batches]
    link_batches = [(pos_src[p], pos_dst[p]) for p in pick]
    for mode in ("uniform", "in_batch"):

        def links(mode: str = mode) -> int:
            for src, dst in link_batches:
                sampler.sample_links(
                    ("user", "like", "note"), src, dst, num_neg=1, neg_mode=mode
                )
            return 1024 * len(link_batches)

        rate, _ = _rate(links, max(3, args.repeats // 2))
        print(f"link sampling ({mode}, numba) {rate:,.0f} positives/s")
        records.append(
            record(
                BENCH,
                f"link_positives_per_s_{mode}",
                rate,
                "positives/s",
                fanouts=[4, 2],
                batch_size=1024,
                num_neg=1,
                backend="numba",
                threads=args.threads,
                **size,
            )
        )

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            sample_all(samplers["torch"][0])
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))

    path = write_results(BENCH, records)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
