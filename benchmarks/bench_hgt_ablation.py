"""HGT objective / mode ablation on a planted graph (validation recall selects).

Each configuration trains from the same seed on one generated planted-community
graph (the default generator scaled to ``--users``) and reports the validation
Recall@50 of every epoch (the selection criterion: hyperparameters are chosen on
validation link recall only) and, for information only, the NMI of KMeans
(k = 16) on the final user embeddings against the planted communities.

    python benchmarks/bench_hgt_ablation.py                 # the default set
    python benchmarks/bench_hgt_ablation.py --runs '{"name": {"lr": 0.003}}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import record, write_results  # noqa: E402
from bench_hgt import make_graph  # noqa: E402

from hgt_cluster_kedro.training.hgt import embed_all, train_hgt  # noqa: E402

BENCH = "hgt_ablation"

#: name -> overrides of the common configuration below
RUNS = {
    "full, link, targets removed": {},
    "full, link, targets kept": {"remove_targets": False},
    "full, link + co-engagement, targets removed": {
        "objectives": {"link": {}, "coengagement": {"batch_size": 2048}}
    },
    "sampled [4, 2], link, targets kept (previous default)": {
        "mode": "sampled",
        "remove_targets": False,
        "epochs": 2,
    },
}


def _communities(n_users: int):
    import yaml

    from hgt_cluster_kedro.generation import GeneratorConfig, generate

    root = Path(__file__).resolve().parents[1] / "conf" / "base"
    gen = yaml.safe_load((root / "parameters_data_generation.yml").read_text())
    gen = gen["data_generation"]
    scale = n_users / gen["n_users"]
    gen.update(
        seed=0, mode="local", n_users=n_users, n_notes=int(gen["n_notes"] * scale)
    )
    gen["n_parts"] = 4
    for rel in gen["relations"].values():
        rel["n_edges"] = int(rel["n_edges"] * scale)
    return generate(GeneratorConfig.model_validate(gen)).user_communities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=str, default=None, help="JSON name -> overrides")
    args = parser.parse_args()
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    torch.set_num_threads(args.threads)
    graph, interactions = make_graph(args.users)
    valid = interactions[interactions["split"] == "valid"]
    val = (valid["user"].to_numpy(), valid["item"].to_numpy())
    comm = _communities(args.users)
    truth = comm.set_index(comm.columns[0]).loc[graph.ids["user"]].iloc[:, 0]
    runs = json.loads(args.runs) if args.runs else RUNS
    records = []
    for name, over in runs.items():
        cfg = {
            "mode": "full",
            "epochs": 4,
            "patience": None,
            "val_k": 50,
            "val_max_users": 2000,
            "progress": False,
            "log_every": 0,
            "device": "cpu",
            "restore_best": False,
            "full_batch_size": 2048,
            **over,
        }
        start = time.perf_counter()
        model, history = train_hgt(graph, val, cfg)
        wall = time.perf_counter() - start
        emb = embed_all(model, graph, "user", fanouts="full", progress=False)
        labels = KMeans(16, n_init=3, random_state=0).fit_predict(emb)
        nmi = normalized_mutual_info_score(truth.to_numpy(), labels)
        recall = history["val_recall"]
        print(json.dumps({"run": name, "val_recall@50": recall, "nmi": nmi}))
        records.append(
            record(
                BENCH,
                f"best validation Recall@50: {name}",
                max(recall),
                "recall",
                val_recall_by_epoch=recall,
                best_epoch=recall.index(max(recall)) + 1,
                seconds_by_epoch=history["seconds"],
                wall_seconds=wall,
                nmi_k16_final_epoch_info_only=nmi,
                overrides=over,
                n_users=args.users,
                seed=0,
            )
        )
    print(f"wrote {write_results(BENCH, records)}")


if __name__ == "__main__":
    main()
