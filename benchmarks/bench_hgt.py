"""HGT training engine: full-graph fused kernels vs the PyG HGTConv reference.

On one generated planted-community graph (the project's generator and graph
pipeline functions, default parameters scaled to ``--users``):

1. **Full-graph step** (one process, 1 and 2 threads): forward and backward of
   the whole graph by the fused attention kernels
   (``HGTEncoder.forward_full``) vs PyG's ``HGTConv`` on the same graph and
   weights (``HGTEncoder.forward`` on the full ``HeteroData``), interleaved in
   rounds, medians.
2. **Dense GFLOP/s**: the matmul flops of one full-graph forward + backward
   (``FlopCounterMode``; the fused attention is not a torch op and is not
   counted) over the time of the dense ops alone (profiler), next to a matmul
   ceiling of the same shape class measured in the same run.
3. **Epochs through torchrun** (2 processes x 1 thread, the default objective:
   in-batch 63, ids only, target edges removed): the engine's ``mode: auto``
   (full graph here) vs ``mode: sampled`` (PyG ``HGTConv`` on sampled [4, 2]
   neighbourhoods, the previous engine), interleaved over ``--rounds`` rounds;
   positives/s and seconds per epoch, medians, and the validation Recall@20
   each reached after one epoch.
4. **Inference**: ``embed_all`` user nodes/s, ``fanouts="full"`` vs sampled
   [8, 4].

    python benchmarks/bench_hgt.py            # 20 k users (the default data)
    python benchmarks/bench_hgt.py --quick    # 4 k users
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import record, write_results  # noqa: E402

from hgt_cluster_kedro.generation import GeneratorConfig, generate  # noqa: E402
from hgt_cluster_kedro.graph import GraphArtifact  # noqa: E402
from hgt_cluster_kedro.models.hgt import HGTEncoder  # noqa: E402
from hgt_cluster_kedro.models.hgt_attention import FullGraph  # noqa: E402
from hgt_cluster_kedro.pipelines.graph.nodes import (  # noqa: E402
    build,
    split,
    validate_tables,
)
from hgt_cluster_kedro.training.distributed import train_distributed  # noqa: E402
from hgt_cluster_kedro.training.hgt import embed_all  # noqa: E402

BENCH = "hgt"
DENSE_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear")


def make_graph(n_users: int, seed: int = 0) -> tuple[GraphArtifact, object]:
    """Planted-community graph from the default generator, scaled to n_users."""
    import yaml

    root = Path(__file__).resolve().parents[1] / "conf" / "base"
    gen = yaml.safe_load((root / "parameters_data_generation.yml").read_text())
    gen = gen["data_generation"]
    scale = n_users / gen["n_users"]
    gen.update(
        seed=seed,
        mode="local",
        n_users=n_users,
        n_notes=int(gen["n_notes"] * scale),
        n_parts=4,
    )
    for rel in gen["relations"].values():
        rel["n_edges"] = int(rel["n_edges"] * scale)
    data = generate(GeneratorConfig.model_validate(gen))
    graph_params = yaml.safe_load((root / "parameters_graph.yml").read_text())["graph"]
    tables = validate_tables(data.nodes, data.edges, graph_params)
    interactions = split(tables, graph_params)
    return build(tables, interactions), interactions


def _model(graph: GraphArtifact) -> HGTEncoder:
    torch.manual_seed(0)
    return HGTEncoder(
        (graph.csr.node_types, graph.csr.edge_types),
        graph.csr.num_nodes,
        {},
        hidden=64,
        heads=2,
        num_layers=2,
        dropout=0.1,
        id_embedding_types="all",
    )


def _full_batch(graph: GraphArtifact):
    data = graph.csr.to_hetero_data()
    for t, n in graph.csr.num_nodes.items():
        data[t].n_id = torch.arange(n)
    return data


def _fwd_bwd(fn) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = fn()
    loss = sum((v * v).sum() for v in out.values())
    t1 = time.perf_counter()
    loss.backward()
    return t1 - t0, time.perf_counter() - t1


def full_graph_step(graph: GraphArtifact, threads: int, rounds: int) -> dict:
    """Fused vs PyG HGTConv full-graph forward/backward, interleaved rounds."""
    torch.set_num_threads(threads)
    model = _model(graph).train()
    fg = FullGraph.from_csr(graph.csr, model.edge_types)
    data = _full_batch(graph)
    runs = {"fused": lambda: model.forward_full(fg), "pyg": lambda: model(data)}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    for fn in runs.values():  # warm-up (JIT compile, allocator)
        _fwd_bwd(fn)
        model.zero_grad()
    for _ in range(rounds):
        for name, fn in runs.items():
            times[name].append(_fwd_bwd(fn))
            model.zero_grad()
    out = {}
    for name, ts in times.items():
        out[name] = {
            "forward": statistics.median(t[0] for t in ts),
            "backward": statistics.median(t[1] for t in ts),
        }
        out[name]["step"] = out[name]["forward"] + out[name]["backward"]
    with FlopCounterMode(display=False) as counter:
        _fwd_bwd(runs["fused"])
    model.zero_grad()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _fwd_bwd(runs["fused"])
    model.zero_grad()
    dense_us = sum(
        e.self_cpu_time_total for e in prof.key_averages() if e.key in DENSE_OPS
    )
    out["dense_flops"] = counter.get_total_flops()
    out["dense_seconds"] = dense_us / 1e6
    return out


def matmul_ceiling(threads: int, m: int, repeats: int = 7) -> float:
    """fp32 GFLOP/s of ``[m, 64] @ [64, 192]`` (the K/Q/V projection shape)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(m, 64), torch.randn(64, 192)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * m * 64 * 192 / statistics.median(times) / 1e9


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_epoch(
    graph: GraphArtifact, interactions, mode: str, max_steps: int | None
) -> dict:
    """Training steps of the default objective at 2 processes x 1 thread (one
    epoch, or its first ``max_steps`` steps)."""
    import yaml

    root = Path(__file__).resolve().parents[1] / "conf" / "base"
    train = yaml.safe_load((root / "parameters_hgt.yml").read_text())["hgt"]["train"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {
            **train,
            "mode": mode,
            "epochs": 1,
            "max_steps": max_steps,
            "progress": False,
            "val_max_users": 1000,
            "device": "cpu",
            "log_every": 0,
            "num_threads": 1,
        }
        _, history = train_distributed(
            graph,
            interactions,
            cfg,
            Path(tmp),
            nproc_per_node=2,
            rdzv_endpoint=f"127.0.0.1:{_free_port()}",
            threads_per_worker=1,
            max_restarts=0,
        )
    parts = {k: history[f"{k}_s"][0] for k in ("sample", "compute", "allreduce")}
    busy = history["seconds"][0] * 2
    return {
        "mode": history["mode"],
        "positives_per_s": history["edges_per_s"][0],
        "seconds": history["seconds"][0],
        "share": {k: v / busy for k, v in parts.items()},
        "val_recall": history["val_recall"][0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--skip-epochs",
        action="store_true",
        help="only the step, GFLOP/s and inference parts (no torchrun epochs)",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="torchrun part: time this many steps per run instead of an epoch",
    )
    args = parser.parse_args()
    n_users = args.users or (4000 if args.quick else 20000)
    rounds = args.rounds or (2 if args.quick else 3)
    graph, interactions = make_graph(n_users)
    n_edges = graph.csr.num_edges()
    print(f"graph: {graph.num_nodes}, {n_edges} message edges (reverse included)")
    size = {"n_users": n_users, "message_edges": n_edges}
    records = []
    for threads in (1, 2):
        step = full_graph_step(graph, threads, rounds)
        ceiling = matmul_ceiling(threads, sum(graph.num_nodes.values()))
        fused, pyg = step["fused"], step["pyg"]
        print(f"threads={threads}: {step}, ceiling {ceiling:.1f} GFLOP/s")
        tag = f"threads={threads}"
        records += [
            record(
                BENCH,
                f"full-graph train step seconds ({tag}), fused kernels vs PyG",
                fused["step"],
                "s",
                peer="PyG HGTConv reference (same graph and weights)",
                peer_value=pyg["step"],
                higher_is_better=False,
                forward_s=fused["forward"],
                backward_s=fused["backward"],
                peer_forward_s=pyg["forward"],
                peer_backward_s=pyg["backward"],
                rounds=rounds,
                **size,
            ),
            record(
                BENCH,
                f"dense GFLOP/s of the full-graph step ({tag}) vs matmul ceiling",
                step["dense_flops"] / max(step["dense_seconds"], 1e-9) / 1e9,
                "GFLOP/s",
                peer="fp32 [nodes x 64] @ [64 x 192] ceiling (same run)",
                peer_value=ceiling,
                dense_flops=step["dense_flops"],
                dense_seconds=step["dense_seconds"],
                step_seconds=fused["step"],
                dense_share_of_step=step["dense_seconds"] / fused["step"],
                **size,
            ),
        ]
        torch.set_num_threads(threads)
        model = _model(graph).eval()
        t0 = time.perf_counter()
        embed_all(model, graph, "user", fanouts="full", progress=False)
        full_s = graph.num_nodes["user"] / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        embed_all(model, graph, "user", fanouts=[8, 4], progress=False)
        sampled_s = graph.num_nodes["user"] / (time.perf_counter() - t0)
        records.append(
            record(
                BENCH,
                f"inference user nodes/s ({tag}), full graph vs sampled [8, 4]",
                full_s,
                "nodes/s",
                peer="sampled [8, 4] (PyG HGTConv)",
                peer_value=sampled_s,
                **size,
            )
        )
    if args.skip_epochs:
        records.append(
            record(BENCH, "load average at end (1 min)", os.getloadavg()[0], "procs")
        )
        print(f"wrote {write_results(BENCH, records)}")
        return
    epochs: dict[str, list[dict]] = {"auto": [], "sampled": []}
    for _ in range(rounds):  # interleaved: ours, peer, ours, peer, ...
        for mode, results in epochs.items():
            results.append(torchrun_epoch(graph, interactions, mode, args.max_steps))
            print(f"torchrun {mode}: {results[-1]}")

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in epochs[mode])

    ours, ref = epochs["auto"][0], epochs["sampled"][0]
    records.append(
        record(
            BENCH,
            "torchrun epoch positives/s (2 processes x 1 thread), default "
            f"objective, engine mode auto ({ours['mode']}) vs sampled",
            med("auto", "positives_per_s"),
            "positives/s",
            peer="PyG HGTConv reference (sampled [4, 2], 2 processes)",
            peer_value=med("sampled", "positives_per_s"),
            epoch_seconds=med("auto", "seconds"),
            peer_epoch_seconds=med("sampled", "seconds"),
            val_recall_after_one_epoch=med("auto", "val_recall"),
            peer_val_recall_after_one_epoch=med("sampled", "val_recall"),
            share_batches=ours["share"]["sample"],
            share_forward_backward=ours["share"]["compute"],
            share_allreduce=ours["share"]["allreduce"],
            peer_share_sampling=ref["share"]["sample"],
            rounds=rounds,
            max_steps=args.max_steps,
            **size,
        )
    )
    records.append(
        record(BENCH, "load average at end (1 min)", os.getloadavg()[0], "procs")
    )
    path = write_results(BENCH, records)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
