"""HGT training and inference throughput.

On one generated planted-community graph (the project's generator and graph
pipeline functions, default parameters scaled down):

1. **Step anatomy** (one process): for the same fixed link batches (512
   positives, 2 uniform negatives per side, fanouts [4, 2]) the median time of
   sampling, forward and backward + AdamW step; seeds/s. Side by side: our
   encoder (``_ConcatHeteroLinear`` K/V transforms) vs the same encoder with
   PyG's stock ``HeteroLinear`` (its pure-PyTorch path, what runs without
   pyg-lib) and vs ``torch.compile`` (dynamic shapes, after warm-up).
2. **Dense GFLOP/s**: the flops of one forward + backward counted by
   ``torch.utils.flop_counter.FlopCounterMode`` divided by its time, next to a
   matmul ceiling measured in the same run (fp32 ``[16384, 64] @ [64, 192]``,
   the shape of HGT's K/Q/V projection, and a square 1024 matmul).
3. **torchrun**: one epoch through ``train_distributed`` with 1 and 2 processes
   (1 thread each): seeds/s and the share of sampling, forward/backward and the
   DDP all-reduce (bucket time, overlapping backward) in the summed rank time;
   and one epoch of the project's default objective (in-batch negatives, ids
   only) at 2 processes, in positives/s next to the uniform-negative epoch.
4. **Inference**: ``embed_all`` nodes/s (fanouts [8, 4]) with 1 and 2 threads
   (inference runs in one process).

    python benchmarks/bench_hgt.py            # 8 k users, ~190 k edges
    python benchmarks/bench_hgt.py --quick    # 2 k users
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from torch_geometric.nn import HeteroLinear

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import record, write_results  # noqa: E402

from hgt_cluster_kedro.generation import GeneratorConfig, generate  # noqa: E402
from hgt_cluster_kedro.graph import GraphArtifact  # noqa: E402
from hgt_cluster_kedro.graph.sampler import NeighborSampler  # noqa: E402
from hgt_cluster_kedro.models.hgt import HGTEncoder  # noqa: E402
from hgt_cluster_kedro.pipelines.graph.nodes import (  # noqa: E402
    build,
    split,
    validate_tables,
)
from hgt_cluster_kedro.training.distributed import train_distributed  # noqa: E402
from hgt_cluster_kedro.training.hgt_trainer import (  # noqa: E402
    _attach_x,
    _batch_loss,
    embed_all,
    resolve_fanouts,
)

BENCH = "hgt"
BATCH = 512


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


def _model(graph: GraphArtifact, stock: bool = False) -> HGTEncoder:
    torch.manual_seed(0)
    feats = {t: x.float() for t, x in graph.features.items()}
    model = HGTEncoder(
        (graph.csr.node_types, graph.csr.edge_types),
        graph.csr.num_nodes,
        {t: x.shape[1] for t, x in feats.items()},
        hidden=64,
        heads=2,
        num_layers=2,
        dropout=0.5,
        id_embedding_types="all",
        features=feats,
    )
    if stock:  # PyG's own HeteroLinear (pure-PyTorch path without pyg-lib)
        for layer in model.layers:
            for name in ("k_rel", "v_rel"):
                ours = getattr(layer.conv, name)
                lin = HeteroLinear(
                    ours.in_channels,
                    ours.out_channels,
                    ours.num_types,
                    bias=False,
                    is_sorted=True,
                )
                lin.load_state_dict(ours.state_dict())
                setattr(layer.conv, name, lin)
    return model


def _batches(graph: GraphArtifact, n: int) -> list:
    et = graph.schema.edge_type(graph.schema.target_relations[0])
    src, dst = graph.csr.to_coo(et)
    sampler = NeighborSampler(graph.csr, resolve_fanouts(graph.csr, [4, 2]), seed=0)
    gen = torch.Generator().manual_seed(0)
    out = []
    feats = {t: x.float() for t, x in graph.features.items()}
    for _ in range(n):
        idx = torch.randint(0, src.numel(), (BATCH,), generator=gen)
        t0 = time.perf_counter()
        data = sampler.sample_links(et, src[idx], dst[idx], num_neg=2)
        _attach_x(data, feats)
        out.append((data, time.perf_counter() - t0))
    return et, out


def step_anatomy(graph: GraphArtifact, steps: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    et, batches = _batches(graph, steps + 3)
    res = {"sample": statistics.median(t for _, t in batches)}
    seeds = statistics.median(
        int(d[et[0]].batch_size) + int(d[et[2]].batch_size) for d, _ in batches
    )
    for name, stock, compiled in (
        ("ours", False, False),
        ("pyg_stock", True, False),
        ("ours_compiled", False, True),
    ):
        model = _model(graph, stock=stock)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        fwd = torch.compile(model, dynamic=True) if compiled else model
        f_t, b_t = [], []
        for i, (data, _) in enumerate(batches):
            t0 = time.perf_counter()
            loss, _ = _batch_loss(fwd, data, et, 2.0)
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            t2 = time.perf_counter()
            if i >= 3:  # warm-up (compilation) excluded
                f_t.append(t1 - t0)
                b_t.append(t2 - t1)
        res[name] = {
            "forward": statistics.median(f_t),
            "backward_step": statistics.median(b_t),
        }
        res[name]["seeds_per_s"] = seeds / (
            res["sample"] + res[name]["forward"] + res[name]["backward_step"]
        )
    model = _model(graph)
    data = batches[0][0]
    with FlopCounterMode(display=False) as counter:
        loss, _ = _batch_loss(model, data, et, 2.0)
        loss.backward()
    res["flops"] = counter.get_total_flops()
    res["seeds"] = seeds
    return res


def matmul_ceiling(threads: int, repeats: int = 7) -> dict[str, float]:
    torch.set_num_threads(threads)
    out = {}
    for name, (m, k, n) in {
        "kqv_shape": (16384, 64, 192),
        "square_1024": (1024, 1024, 1024),
    }.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(2):
            a @ b
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        out[name] = 2 * m * k * n / statistics.median(times) / 1e9
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: the project's default objective (conf/base/parameters_hgt.yml)
DEFAULT_OBJECTIVE = {
    "neg_mode": "in_batch",
    "num_neg": 63,
    "dropout": 0.1,
    "use_features": False,
}


def torchrun_epoch(
    graph: GraphArtifact, interactions, nproc: int, overrides: dict | None = None
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {
            "epochs": 1,
            "batch_size": BATCH,
            "dropout": 0.5,
            "id_embedding_types": "all",
            "progress": False,
            "val_max_users": 500,
            "device": "cpu",
            "log_every": 0,
            **(overrides or {}),
        }
        _, history = train_distributed(
            graph,
            interactions,
            cfg,
            Path(tmp),
            nproc_per_node=nproc,
            rdzv_endpoint=f"127.0.0.1:{_free_port()}",
            threads_per_worker=1,
            max_restarts=0,
        )
    parts = {k: history[f"{k}_s"][0] for k in ("sample", "compute", "allreduce")}
    busy = history["seconds"][0] * nproc
    return {
        "seeds_per_s": history["seeds_per_s"][0],
        "positives_per_s": history["edges_per_s"][0],
        "seconds": history["seconds"][0],
        "share": {k: v / busy for k, v in parts.items()},
        "val_recall": history["val_recall"][0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    n_users = 2000 if args.quick else 8000
    steps = args.steps or (5 if args.quick else 12)
    graph, interactions = make_graph(n_users)
    n_edges = sum(graph.csr.num_edges(et) for et in graph.csr.edge_types) // 2
    print(f"graph: {graph.num_nodes}, {n_edges} train edges")
    records = []
    size = {"n_users": n_users, "train_edges": n_edges, "batch": BATCH}

    for threads in (1, 2):
        a = step_anatomy(graph, steps, threads)
        ceil = matmul_ceiling(threads)
        ours, stock, comp = a["ours"], a["pyg_stock"], a["ours_compiled"]
        step_s = ours["forward"] + ours["backward_step"]
        gflops = a["flops"] / step_s / 1e9
        print(f"threads={threads}: {a}\n  ceiling GFLOP/s {ceil}")
        tag = f"threads={threads}"
        records += [
            record(
                BENCH,
                f"train step seeds/s ({tag}), ours vs PyG stock HeteroLinear",
                ours["seeds_per_s"],
                "seeds/s",
                peer="PyG HGTConv stock (no pyg-lib)",
                peer_value=stock["seeds_per_s"],
                sample_s=a["sample"],
                forward_s=ours["forward"],
                backward_step_s=ours["backward_step"],
                peer_forward_s=stock["forward"],
                peer_backward_step_s=stock["backward_step"],
                seeds_per_batch=a["seeds"],
                **size,
            ),
            record(
                BENCH,
                f"train step seeds/s ({tag}), eager vs torch.compile",
                ours["seeds_per_s"],
                "seeds/s",
                peer="torch.compile(dynamic=True)",
                peer_value=comp["seeds_per_s"],
                compiled_forward_s=comp["forward"],
                compiled_backward_step_s=comp["backward_step"],
                **size,
            ),
            record(
                BENCH,
                f"dense GFLOP/s fwd+bwd ({tag}) vs matmul ceiling [16384x64]@[64x192]",
                gflops,
                "GFLOP/s",
                peer="matmul ceiling (same run)",
                peer_value=ceil["kqv_shape"],
                flops_per_step=a["flops"],
                square_1024_gflops=ceil["square_1024"],
                **size,
            ),
        ]
        torch.set_num_threads(threads)
        model = _model(graph)
        t0 = time.perf_counter()
        embed_all(model, graph, "user", fanouts=[8, 4], progress=False)
        users_s = graph.num_nodes["user"] / (time.perf_counter() - t0)
        records.append(
            record(BENCH, f"inference user nodes/s ({tag})", users_s, "nodes/s", **size)
        )

    runs = {p: torchrun_epoch(graph, interactions, p) for p in (1, 2)}
    print(f"torchrun: {runs}")
    for p, r in runs.items():
        records.append(
            record(
                BENCH,
                f"torchrun epoch seeds/s ({p} process(es) x 1 thread)",
                r["seeds_per_s"],
                "seeds/s",
                peer="1 process" if p == 2 else None,
                peer_value=runs[1]["seeds_per_s"] if p == 2 else None,
                epoch_seconds=r["seconds"],
                share_sampling=r["share"]["sample"],
                share_forward_backward=r["share"]["compute"],
                share_allreduce=r["share"]["allreduce"],
                val_recall=r["val_recall"],
                **size,
            )
        )
    # the default objective: in-batch negatives sample no neighbourhoods for
    # negatives, so compare positives (target edges) per second
    default = torchrun_epoch(graph, interactions, 2, DEFAULT_OBJECTIVE)
    print(f"torchrun, default objective: {default}")
    records.append(
        record(
            BENCH,
            "torchrun epoch positives/s (2 processes), default objective "
            "(in-batch 63, ids only) vs 2 uniform negatives",
            default["positives_per_s"],
            "positives/s",
            peer="2 uniform negatives per side, features + ids",
            peer_value=runs[2]["positives_per_s"],
            epoch_seconds=default["seconds"],
            share_sampling=default["share"]["sample"],
            share_forward_backward=default["share"]["compute"],
            share_allreduce=default["share"]["allreduce"],
            **size,
        )
    )
    import os

    records.append(
        record(BENCH, "load average at end (1 min)", os.getloadavg()[0], "procs")
    )
    path = write_results(BENCH, records)
    print(f"wrote {path}")
    np.set_printoptions(precision=3)


if __name__ == "__main__":
    main()
