"""HGT objective / mode / warm-start ablation on the planted graph.

Each configuration trains from the same seed on one generated planted-community
graph (the default generator scaled to ``--users``; 20 k = the default data).
The **selection criterion is validation u2u2i Recall@50** — the product's
channel: each validation user's 50 most similar users by cosine, their train
items scored as in :func:`~hgt_cluster_kedro.evaluation.retrieval.u2u2i_recommend`
(the evaluation pipeline's defaults), scored on the ``valid`` split only.
Also recorded: the trainer's own link validation (dot-product user → item
Recall@50 of the last epoch) and, for information only (never to choose), the
NMI of KMeans (k = 16) on the user embeddings against the planted communities.

A run ``{"warm": "twhin"}`` starts the id embeddings from a TwHIN model trained
on the same graph with ``conf/base/parameters_twhin.yml`` (the pipeline's
``hgt.warm_start: twhin``); a ``twhin`` reference row scores those tables alone.

    python benchmarks/bench_hgt_ablation.py                 # the default set
    python benchmarks/bench_hgt_ablation.py --runs '{"name": {"lr": 0.003}}'
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR as RESULTS  # noqa: E402
from _common import record, write_results  # noqa: E402
from bench_hgt import make_graph  # noqa: E402

from hgt_cluster_kedro.evaluation.metrics import (  # noqa: E402
    ranking_metrics,
    relevant_csr,
)
from hgt_cluster_kedro.evaluation.retrieval import u2u2i_recommend  # noqa: E402
from hgt_cluster_kedro.models.twhin import embeddings  # noqa: E402
from hgt_cluster_kedro.training.hgt import embed_all, train_hgt  # noqa: E402
from hgt_cluster_kedro.training.twhin_trainer import train_twhin  # noqa: E402

BENCH = "hgt_ablation"
ROOT = Path(__file__).resolve().parents[1] / "conf" / "base"

#: name -> overrides of the common configuration (see ``_config``)
RUNS = {
    "sampled, cold, 600 steps": {"max_steps": 600},
    "sampled, twhin warm start, 100 steps": {"warm": "twhin", "max_steps": 100},
    "sampled, twhin warm start, 300 steps": {"warm": "twhin", "max_steps": 300},
    "sampled, twhin warm start, 600 steps": {"warm": "twhin", "max_steps": 600},
    "full, twhin warm start, 40 steps": {
        "warm": "twhin",
        "mode": "full",
        "max_steps": 40,
    },
}


def _config(over: dict) -> dict:
    """The default run's ``hgt.train`` (sampled [4, 2], link, in-batch 63, ids
    only, lr 1e-3, batch 512) for one process, plus ``over``."""
    train = yaml.safe_load((ROOT / "parameters_hgt.yml").read_text())["hgt"]["train"]
    for key in ("checkpoint_dir", "checkpoint_every", "num_threads"):
        train.pop(key, None)
    train.update(
        epochs=10,
        patience=None,
        val_k=50,
        val_max_users=2000,
        progress=False,
        log_every=0,
        device="cpu",
        restore_best=False,
    )
    train.update(over)
    return train


def _communities(n_users: int):
    from hgt_cluster_kedro.generation import GeneratorConfig, generate

    gen = yaml.safe_load((ROOT / "parameters_data_generation.yml").read_text())
    gen = gen["data_generation"]
    scale = n_users / gen["n_users"]
    gen.update(
        seed=0, mode="local", n_users=n_users, n_notes=int(gen["n_notes"] * scale)
    )
    gen["n_parts"] = 4
    for rel in gen["relations"].values():
        rel["n_edges"] = int(rel["n_edges"] * scale)
    return generate(GeneratorConfig.model_validate(gen)).user_communities


class _Scorer:
    """Validation u2u2i Recall@50 (selection) and KMeans NMI (information)."""

    def __init__(self, graph, interactions, truth: np.ndarray) -> None:
        self.train = interactions[interactions["split"] == "train"]
        valid = interactions[interactions["split"] == "valid"]
        n_u = graph.csr.num_nodes[graph.schema.user_type]
        self.n_items = graph.csr.num_nodes[graph.schema.item_type]
        self.query = np.unique(valid["user"].to_numpy())
        rel = relevant_csr(valid["user"], valid["item"], n_u, self.n_items)
        self.relevant = rel[self.query]
        self.truth = truth

    def __call__(self, user_emb: np.ndarray) -> dict[str, float]:
        from sklearn.cluster import KMeans
        from sklearn.metrics import normalized_mutual_info_score

        emb = np.ascontiguousarray(user_emb, dtype=np.float32)
        recs = u2u2i_recommend(
            emb,
            self.train["user"].to_numpy(),
            self.train["item"].to_numpy(),
            self.n_items,
            self.query,
            k=50,
        )
        recall = ranking_metrics(recs.items, self.relevant, ks=[50])["recall@50"]
        labels = KMeans(16, n_init=3, random_state=0).fit_predict(emb)
        return {
            "u2u2i": float(recall),
            "nmi": float(normalized_mutual_info_score(self.truth, labels)),
        }


def _twhin(graph, path: Path) -> tuple[dict[str, np.ndarray], float]:
    """TwHIN tables with the project's parameters, saved to ``path``."""
    from safetensors.torch import save_file

    p = yaml.safe_load((ROOT / "parameters_twhin.yml").read_text())["twhin"]
    keys = ("dim", "epochs", "batch_size", "lr", "in_batch_neg", "chunk_size")
    keys += ("num_uniform_neg", "balanced_loss", "init_std", "seed")
    start = time.perf_counter()
    model, _ = train_twhin(graph.csr, progress=False, **{k: p[k] for k in keys})
    seconds = time.perf_counter() - start
    tables = {t: embeddings(model, t) for t in graph.csr.node_types}
    save_file({t: torch.from_numpy(v) for t, v in tables.items()}, str(path))
    return tables, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=str, default=None, help="JSON name -> overrides")
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the file's records of other runs (same graph and seed)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    graph, interactions = make_graph(args.users)
    valid = interactions[interactions["split"] == "valid"]
    val = (valid["user"].to_numpy(), valid["item"].to_numpy())
    comm = _communities(args.users)
    truth = comm.set_index(comm.columns[0]).loc[graph.ids["user"]].iloc[:, 0]
    score = _Scorer(graph, interactions, truth.to_numpy())
    runs = json.loads(args.runs) if args.runs else RUNS
    common = dict(n_users=args.users, seed=0, threads=args.threads)
    tmp = tempfile.TemporaryDirectory()
    init_path = Path(tmp.name) / "twhin.safetensors"
    tables, tw_seconds = _twhin(graph, init_path)
    ref = score(tables[graph.schema.user_type])
    print(json.dumps({"run": "twhin", **ref, "seconds": tw_seconds}), flush=True)
    records = [
        record(
            BENCH,
            "validation u2u2i Recall@50: twhin (reference, its tables alone)",
            ref["u2u2i"],
            "recall",
            nmi_k16_info_only=ref["nmi"],
            train_seconds=tw_seconds,
            **common,
        )
    ]
    for name, given in runs.items():
        over = dict(given)
        warm = over.pop("warm", None)
        cfg = _config(over)
        if warm == "twhin":
            cfg["init_embeddings"] = str(init_path)
        start = time.perf_counter()
        model, history = train_hgt(graph, val, cfg)
        wall = time.perf_counter() - start
        emb = embed_all(model, graph, "user", fanouts="full", progress=False)
        got = score(emb)
        print(json.dumps({"run": name, **got, "seconds": wall}), flush=True)
        records.append(
            record(
                BENCH,
                f"validation u2u2i Recall@50: {name}",
                got["u2u2i"],
                "recall",
                link_val_recall_at50=history["val_recall"][-1],
                nmi_k16_info_only=got["nmi"],
                train_seconds=history["train_seconds"],
                wall_seconds=wall,
                steps=history.get("steps"),
                overrides={**over, **({"warm": warm} if warm else {})},
                **common,
            )
        )
    if args.append:
        old = RESULTS / f"{BENCH}.json"
        new = {r["metric"] for r in records}
        kept = [r for r in json.loads(old.read_text()) if r["metric"] not in new]
        records = kept + records
    print(f"wrote {write_results(BENCH, records)}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
