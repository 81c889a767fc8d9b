"""TwHIN training throughput (triplets/s) beside PyG's TransE, in one run.

Graph: a random power-law user-note graph (200 k users, 100 k notes, ~2 M
triplets over 3 relations; ``--quick``: 20 k / 10 k / ~200 k). Every method
trains on the same triplets at d = 64 with ``torch.set_num_threads(--threads)``:

* ``twhin`` -- ours (:func:`hgt_cluster_kedro.training.train_twhin`): gathered
  rows, hand-derived gradients, row-wise Adagrad with ``index_add_``; in-batch
  negatives per chunk (``chunk_size - 1`` per positive) plus optional uniform
  ones (``2 * num_uniform_neg`` per positive). Triplets/s of a whole epoch
  (shuffling, sampling, updates and loss bookkeeping included).
* ``twhin_autograd`` -- the same loss through plain autograd with
  ``nn.Embedding(sparse=True)`` + ``torch.optim.SparseAdam`` (the straightforward
  implementation), to isolate what the fused update buys.
* ``transe`` -- ``torch_geometric.nn.kge.TransE(sparse=True)`` with its own
  ``loader(..., shuffle=True)``, its own ``loss`` (margin ranking against one
  corrupted triplet per positive) and ``torch.optim.SparseAdam``, at the PyG
  example's batch size (1000) and at ours.

Ours (10 in-batch negatives, one fresh 1-epoch run per round) and the three
peers (a fixed number of triplets each) are measured round-robin for
``--repeats`` rounds, so they share the machine's load, and reported as medians.
Two more negative mixes of ours (10 and 127 negatives per positive) follow.
Records give triplets/s, negatives per positive and ours/peer ratios;
``--profile`` adds a ``torch.profiler`` breakdown of our step (phases and top
operators).

``OMP_WAIT_POLICY=PASSIVE`` is set (unless already set) before torch loads: on a
shared, oversubscribed machine spinning OpenMP workers otherwise stall every
parallel kernel of every method for a scheduler time slice (measured here: our
epochs 3-6x slower at 2 threads with the default policy; TransE likewise).

    python benchmarks/bench_twhin.py            # full size
    python benchmarks/bench_twhin.py --quick    # small
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import record, write_results  # noqa: E402

from hgt_cluster_kedro.graph.csr import HeteroCSR  # noqa: E402
from hgt_cluster_kedro.models.twhin import TwHIN, batch_layout  # noqa: E402
from hgt_cluster_kedro.training.twhin_trainer import (  # noqa: E402
    DenseAdagrad,
    RowAdagrad,
    _train_step,
    resolve_relations,
    train_twhin,
)

BENCH = "twhin"
DIM = 64
RELATIONS = {"follow_note": 0.6, "comment_note": 0.25, "share_note": 0.15}


def powerlaw_graph(
    n_users: int, n_notes: int, n_triplets: int, seed: int = 0
) -> HeteroCSR:
    """Users and notes with Pareto activity / popularity; duplicates merged."""
    rng = np.random.default_rng(seed)
    user_w = rng.pareto(1.5, n_users) + 1.0
    note_w = rng.pareto(1.2, n_notes) + 1.0
    user_w /= user_w.sum()
    note_w /= note_w.sum()
    edges = {}
    for rel, frac in RELATIONS.items():
        m = int(n_triplets * frac * 1.04)  # ~4% duplicates are merged away
        src = rng.choice(n_users, m, p=user_w)
        dst = rng.choice(n_notes, m, p=note_w)
        edges[("user", rel, "note")] = (torch.from_numpy(src), torch.from_numpy(dst))
    return HeteroCSR.from_coo({"user": n_users, "note": n_notes}, edges)


def run_ours(csr: HeteroCSR, *, epochs: int, threads: int, **kw) -> dict:
    """Fresh ``train_twhin`` run; whole-epoch triplets/s per epoch."""
    _, history = train_twhin(
        csr, dim=DIM, epochs=epochs, seed=0, num_threads=threads, progress=False, **kw
    )
    return {"triplets_per_s": history["triplets_per_s"], "loss": history["loss"]}


def _triplets(csr: HeteroCSR) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Global ids (users, then notes) and relation ids, for the TransE peer."""
    heads, rels, tails = [], [], []
    n_users = csr.num_nodes["user"]
    for r, et in enumerate(resolve_relations(csr)):
        src, dst = csr.to_coo(et)
        heads.append(src)
        tails.append(dst + n_users)
        rels.append(torch.full_like(src, r))
    return torch.cat(heads), torch.cat(rels), torch.cat(tails)


def make_transe(
    csr: HeteroCSR, *, batch_size: int, n_triplets: int
) -> Callable[[], float]:
    """PyG TransE as in its KGE example (own loader and loss), sparse embeddings
    with SparseAdam; the returned function trains on ``n_triplets`` triplets and
    gives triplets/s."""
    from torch_geometric.nn.kge import TransE

    head, rel, tail = _triplets(csr)
    torch.manual_seed(0)
    num_nodes = csr.num_nodes["user"] + csr.num_nodes["note"]
    model = TransE(num_nodes, 3, DIM, sparse=True)
    optimizer = torch.optim.SparseAdam(list(model.parameters()), lr=0.01)
    loader = model.loader(head, rel, tail, batch_size=batch_size, shuffle=True)
    batches = max(1, n_triplets // batch_size)
    it = iter(loader)

    def run() -> float:
        nonlocal it
        seen = 0
        start = time.perf_counter()
        for _ in range(batches):
            try:
                h, r, t = next(it)
            except StopIteration:
                it = iter(loader)
                h, r, t = next(it)
            optimizer.zero_grad()
            loss = model.loss(h, r, t)
            loss.backward()
            optimizer.step()
            seen += h.numel()
        return seen / (time.perf_counter() - start)

    run()  # warm-up (lazy imports, allocator)
    return run


def make_autograd(
    csr: HeteroCSR, *, batch_size: int, chunk_size: int, n_triplets: int
) -> Callable[[], float]:
    """The same TwHIN loss through plain autograd: ``nn.Embedding(sparse=True)``
    + ``torch.optim.SparseAdam``, dense Adagrad on the translations."""
    ets = resolve_relations(csr)
    model = TwHIN(csr.num_nodes, ets, DIM, seed=0)
    emb = torch.nn.ModuleDict(
        {
            t: torch.nn.Embedding.from_pretrained(
                model.embeddings[t].detach().clone(), freeze=False, sparse=True
            )
            for t in model.node_types
        }
    )
    sparse_opt = torch.optim.SparseAdam(list(emb.parameters()), lr=0.01)
    dense_opt = torch.optim.Adagrad([model.translations], lr=0.1)
    coo = [csr.to_coo(et) for et in ets]
    gen = torch.Generator().manual_seed(0)
    batches = max(1, n_triplets // batch_size)

    def run() -> float:
        start = time.perf_counter()
        for _ in range(batches):
            r = int(torch.randint(len(ets), (1,), generator=gen))
            src, dst = coo[r]
            idx = torch.randint(src.numel(), (batch_size,), generator=gen)
            layout = batch_layout(src[idx], dst[idx], chunk_size)
            sparse_opt.zero_grad()
            dense_opt.zero_grad()
            s_t, _, d_t = ets[r]
            loss = model.loss_from_rows(
                r, layout, emb[s_t](layout.head), emb[d_t](layout.tail)
            )
            loss.backward()
            sparse_opt.step()
            dense_opt.step()
        return batches * batch_size / (time.perf_counter() - start)

    run()
    return run


def profile_ours(
    csr: HeteroCSR,
    *,
    batch_size: int,
    chunk_size: int,
    num_uniform_neg: int,
    steps: int,
) -> dict:
    """torch.profiler over ``steps`` of our step: share of each phase and of the
    top operators (self CPU time)."""
    from torch.profiler import ProfilerActivity, profile

    ets = resolve_relations(csr)
    model = TwHIN(csr.num_nodes, ets, DIM, seed=0)
    row = RowAdagrad({t: model.embeddings[t].data for t in model.node_types}, 0.1)
    dense = DenseAdagrad(model.translations.data, 0.1)
    gen = torch.Generator().manual_seed(0)
    src, dst = csr.to_coo(ets[0])

    def steps_(n: int) -> None:
        for _ in range(n):
            idx = torch.randint(src.numel(), (batch_size,), generator=gen)
            _train_step(
                model,
                0,
                src.index_select(0, idx),
                dst.index_select(0, idx),
                row_opt=row,
                dense_opt=dense,
                gen=gen,
                chunk_size=chunk_size,
                in_batch_neg=True,
                num_uniform_neg=num_uniform_neg,
                balanced=True,
            )

    steps_(5)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps_(steps)
    wall = time.perf_counter() - start
    events = prof.key_averages()
    phases = {
        e.key.split("/", 1)[1]: e.cpu_time_total / 1e6
        for e in events
        if e.key.startswith("twhin/")
    }
    ops = sorted(
        (e for e in events if not e.key.startswith("twhin/")),
        key=lambda e: e.self_cpu_time_total,
        reverse=True,
    )
    op_total = sum(e.self_cpu_time_total for e in ops) / 1e6
    phase_total = sum(phases.values())
    return {
        "ms_per_step": 1e3 * wall / steps,
        "phase_share": {k: round(v / phase_total, 3) for k, v in phases.items()},
        "top_ops_share": {
            e.key: round(e.self_cpu_time_total / 1e6 / op_total, 3) for e in ops[:8]
        },
        "table": events.table(sort_by="self_cpu_time_total", row_limit=15),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small graph")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8192, help="ours + peer")
    parser.add_argument("--profile", action="store_true", help="profile our step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.quick:
        n_users, n_notes, n_trip, epochs, peer_trip = 20_000, 10_000, 200_000, 2, 30_000
    else:
        n_users, n_notes, n_trip, epochs = 200_000, 100_000, 2_000_000, 3
        peer_trip = 100_000
    csr = powerlaw_graph(n_users, n_notes, n_trip)
    total = sum(csr.num_edges(et) for et in resolve_relations(csr))
    policy = os.environ["OMP_WAIT_POLICY"]
    print(
        f"graph: {n_users} users, {n_notes} notes, {total} triplets, "
        f"{args.threads} threads, OMP_WAIT_POLICY={policy}"
    )
    size = {
        "users": n_users,
        "notes": n_notes,
        "triplets": total,
        "threads": args.threads,
        "omp_wait_policy": policy,
    }
    batch = args.batch_size

    # Headline: ours (10 in-batch negatives), TransE at the PyG example's batch
    # size and at ours, and the autograd variant, measured round-robin so that all
    # see the same machine load; medians over the rounds.
    peers = {
        "transe_1000": make_transe(csr, batch_size=1000, n_triplets=peer_trip),
        f"transe_{batch}": make_transe(csr, batch_size=batch, n_triplets=peer_trip),
        "autograd": make_autograd(
            csr, batch_size=batch, chunk_size=11, n_triplets=peer_trip
        ),
    }
    samples: dict[str, list[float]] = {"ours": [], **{k: [] for k in peers}}
    for rnd in range(args.repeats):
        res = run_ours(
            csr, epochs=1, threads=args.threads, batch_size=batch, chunk_size=11
        )
        samples["ours"].append(res["triplets_per_s"][0])
        for name, run in peers.items():
            samples[name].append(run())
        print(
            f"round {rnd + 1}: "
            + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in samples.items())
        )
    med = {k: statistics.median(v) for k, v in samples.items()}
    for k, v in samples.items():
        print(f"{k}: median {med[k]:,.0f} triplets/s, runs {[round(x) for x in v]}")

    # Other negative mixes of ours (one run of `epochs` epochs each).
    ours_cfgs = {
        # name: (chunk_size, num_uniform_neg) -> negatives per positive
        "in-batch 4 + uniform 6": (5, 3),
        "in-batch 63 + uniform 64": (64, 32),
    }
    ours = {
        "in-batch 10": {
            "triplets_per_s": med["ours"],
            "runs": samples["ours"],
            "neg_per_pos": 10,
        }
    }
    for name, (chunk, uni) in ours_cfgs.items():
        res = run_ours(
            csr,
            epochs=epochs,
            threads=args.threads,
            batch_size=batch,
            chunk_size=chunk,
            num_uniform_neg=uni,
        )
        ours[name] = {
            "triplets_per_s": statistics.median(res["triplets_per_s"]),
            "runs": res["triplets_per_s"],
            "neg_per_pos": chunk - 1 + 2 * uni,
        }
        print(
            f"twhin [{name}] ({ours[name]['neg_per_pos']} neg/pos): "
            f"{ours[name]['triplets_per_s']:,.0f} triplets/s (epochs "
            f"{[round(x) for x in res['triplets_per_s']]})"
        )
    transe = {1000: med["transe_1000"], batch: med[f"transe_{batch}"]}

    best_transe_bs = max(transe, key=lambda b: transe[b])
    best_transe = transe[best_transe_bs]
    head = ours["in-batch 10"]
    rounds = {k: [round(x) for x in v] for k, v in samples.items()}
    records = [
        record(
            BENCH,
            "train triplets/s, TwHIN (10 neg/pos) vs PyG TransE (1 neg/pos)",
            head["triplets_per_s"],
            "triplets/s",
            peer=f"PyG TransE, sparse + SparseAdam, batch {best_transe_bs}",
            peer_value=best_transe,
            neg_per_pos=head["neg_per_pos"],
            peer_neg_per_pos=1,
            runs=rounds["ours"],
            peer_runs=rounds[f"transe_{best_transe_bs}"],
            batch_size=batch,
            dim=DIM,
            **size,
        ),
        record(
            BENCH,
            "train triplets/s, TwHIN fused update vs autograd + sparse Embedding",
            head["triplets_per_s"],
            "triplets/s",
            peer="same loss, nn.Embedding(sparse=True) + SparseAdam",
            peer_value=med["autograd"],
            neg_per_pos=head["neg_per_pos"],
            peer_neg_per_pos=head["neg_per_pos"],
            runs=rounds["ours"],
            peer_runs=rounds["autograd"],
            batch_size=batch,
            dim=DIM,
            **size,
        ),
    ]
    for bs, value in transe.items():
        records.append(
            record(
                BENCH,
                f"PyG TransE triplets/s (batch {bs})",
                value,
                "triplets/s",
                neg_per_pos=1,
                runs=rounds[f"transe_{bs}"],
                batch_size=bs,
                dim=DIM,
                **size,
            )
        )
    for name, res in ours.items():
        if name == "in-batch 10":
            continue
        records.append(
            record(
                BENCH,
                f"train triplets/s, TwHIN ({name})",
                res["triplets_per_s"],
                "triplets/s",
                peer=f"PyG TransE, batch {best_transe_bs} (same run)",
                peer_value=best_transe,
                neg_per_pos=res["neg_per_pos"],
                peer_neg_per_pos=1,
                runs=[round(x) for x in res["runs"]],
                batch_size=batch,
                dim=DIM,
                **size,
            )
        )
    if args.profile:
        prof = profile_ours(
            csr,
            batch_size=batch,
            chunk_size=11,
            num_uniform_neg=0,
            steps=20 if args.quick else 60,
        )
        print(prof.pop("table"))
        print(
            f"profile: {prof['ms_per_step']:.1f} ms/step; phases {prof['phase_share']}"
        )
        print(f"top ops {prof['top_ops_share']}")
        records.append(
            record(
                BENCH,
                "TwHIN step time under profiler (in-batch 10)",
                prof["ms_per_step"],
                "ms",
                higher_is_better=False,
                phase_share=prof["phase_share"],
                top_ops_share=prof["top_ops_share"],
                batch_size=batch,
                **size,
            )
        )
    path = write_results(BENCH, records)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
