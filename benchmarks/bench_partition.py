"""METIS vs hash partitioning on a random power-law user-note graph.

Same generator as ``bench_sampler.py`` at 1 M edges (100 k users, 50 k notes, 3
relations + reverses) so that METIS finishes well under a minute; 20 parts,
2-hop halos. Records seconds, edge-cut fraction, balance and halo ratio of METIS
with the hash baseline as peer. That graph has no community structure, so a second
case plants 64 communities (75 % of the edges inside one) into a graph of the same
size, to show what METIS gains when there is structure to find.

    python benchmarks/bench_partition.py            # 1 M edges
    python benchmarks/bench_partition.py --quick    # 100 k edges
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import torch  # noqa: E402
from _common import record, write_results  # noqa: E402
from bench_sampler import power_law_edges  # noqa: E402

from hgt_cluster_kedro.graph.csr import HeteroCSR  # noqa: E402
from hgt_cluster_kedro.graph.partition import partition_graph  # noqa: E402

BENCH = "partition"


def planted_edges(
    num_users: int, num_notes: int, num_edges: int, communities: int, p_in: float
) -> tuple[dict[str, int], dict]:
    """Like ``power_law_edges`` but nodes belong to planted communities: with
    probability ``p_in`` an edge's note is drawn from its user's community."""
    num_nodes, edges = power_law_edges(num_users, num_notes, num_edges, seed=1)
    g = torch.Generator().manual_seed(2)
    per = num_notes // communities
    out = {}
    for et, (src, dst) in edges.items():
        inside = torch.rand(src.numel(), generator=g) < p_in
        local = torch.randint(0, per, (src.numel(),), generator=g)
        out[et] = (src, torch.where(inside, (src % communities) * per + local, dst))
    return num_nodes, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 k edges")
    parser.add_argument("--parts", type=int, default=20)
    parser.add_argument("--hops", type=int, default=2)
    args = parser.parse_args(argv)

    if args.quick:
        num_users, num_notes, num_edges = 10_000, 5_000, 100_000
    else:
        num_users, num_notes, num_edges = 100_000, 50_000, 1_000_000
    records = []
    cases = {
        "power_law": power_law_edges(num_users, num_notes, num_edges, seed=0),
        "communities": planted_edges(num_users, num_notes, num_edges, 64, 0.75),
    }
    for case, (num_nodes, edges) in cases.items():
        graph = HeteroCSR.from_coo(num_nodes, edges)
        extra = {
            "graph": case,
            "num_edges": num_edges,
            "num_users": num_users,
            "num_notes": num_notes,
            "num_parts": args.parts,
            "hops": args.hops,
            "quick": args.quick,
        }
        reports = {}
        for method in ("metis", "hash"):
            p = partition_graph(
                graph,
                args.parts,
                method=method,
                user_type="user",
                item_type="note",
                seed=0,
                hops=args.hops,
            )
            reports[method] = r = p.report()
            print(
                f"{case:11s} {method:5s}: {r['seconds']:.2f} s, edge cut "
                f"{r['edge_cut_fraction']:.3f}, balance {r['balance']:.3f}, "
                f"halo ratio {r['halo_ratio']:.2f}"
            )
        metis, hashed = reports["metis"], reports["hash"]
        suffix = "" if case == "power_law" else f"_{case}"
        records.append(
            record(
                BENCH,
                f"metis_seconds{suffix}",
                metis["seconds"],
                "s",
                peer="hash",
                peer_value=hashed["seconds"],
                higher_is_better=False,
                **extra,
            )
        )
        for metric, unit in (
            ("edge_cut_fraction", "fraction"),
            ("balance", "max/mean"),
            ("halo_ratio", "halo/owned"),
        ):
            records.append(
                record(
                    BENCH,
                    f"metis_{metric}{suffix}",
                    metis[metric],
                    unit,
                    peer="hash",
                    peer_value=hashed[metric],
                    higher_is_better=False,
                    **extra,
                )
            )
    path = write_results(BENCH, records)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
