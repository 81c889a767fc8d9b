"""Choose SimClusters' follow graph on DBLP by validation recall (issue #14).

Runs the ``simclusters`` nodes in this process, on the DBLP graph and split that
``kedro run --env dblp --pipelines ingestion,graph`` wrote under ``data/dblp``,
once per candidate follow graph and KnownFor seed (0, 1, 2, as
``bench_quality.py``), every other parameter from ``conf/dblp``. Each candidate
is scored on the VALID split only, with the project's own evaluation code:

* ``simclusters_c2i``: Recall@50 of the cluster -> top-items channel with the
  popularity blend the pipeline would choose (the best of ``c2i.blend_grid`` on
  the valid split, :func:`~hgt_cluster_kedro.evaluation.c2i.choose_blend`): the
  selection criterion;
* ``simclusters_u2i``: Recall@50 of InterestedIn · item embeddings
  (:func:`~hgt_cluster_kedro.simclusters.u2i_recommend`) for the valid users;
* NMI / ARI of the top communities against the areas, for information only
  (never used to choose).

    PYTHONPATH=src python benchmarks/simclusters_dblp_follow.py

writes ``benchmarks/results/simclusters_dblp_follow.json``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import _plain, git_commit, merge, summarise  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "simclusters_dblp_follow.json"
SEEDS = (0, 1, 2)
BOOTSTRAP = 2000
#: follow graph -> overrides of conf/dblp's simclusters parameters
GRAPHS: dict[str, dict[str, Any]] = {
    "writes": {"follow_relation": "writes"},
    "writes.in_venue": {"follow_relation": "writes.in_venue"},
    "writes.in_venue (binary)": {
        "follow_relation": "writes.in_venue",
        "metapath_weighting": "binary",
    },
    "writes.has_term": {"follow_relation": "writes.has_term"},
    "writes.rev_writes": {"follow_relation": "writes.rev_writes"},
}
#: KnownFor settings tried with every graph (before this choice conf/dblp had
#: init=neighbors, penalty=1): with 20 venues
#: the similarity graph is nearly complete, and the ``neighbors`` start (k seeds
#: and their neighbours) can begin, and stay, in one community
SETTINGS: dict[str, dict[str, Any]] = {
    f"init={init},penalty={penalty:g}": {"knownfor": {"init": init, "penalty": penalty}}
    for init in ("neighbors", "random")
    for penalty in (1.0, 2.0)
}
CANDIDATES: dict[str, dict[str, Any]] = {
    f"{g} | {s}": {**go, **so} for g, go in GRAPHS.items() for s, so in SETTINGS.items()
}


def main() -> None:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from hgt_cluster_kedro.evaluation import relevant_csr
    from hgt_cluster_kedro.evaluation.c2i import c2i_recommend, choose_blend
    from hgt_cluster_kedro.evaluation.clusters import cluster_quality
    from hgt_cluster_kedro.evaluation.metrics import (
        hit_matrix,
        interactions_csr,
        ranking_metrics,
    )
    from hgt_cluster_kedro.pipelines.evaluation.nodes import _clusters_of, _pairs
    from hgt_cluster_kedro.pipelines.simclusters.nodes import (
        build_embeddings,
        build_interested_in,
        build_knownfor,
        build_similarity,
        frame_to_sparse,
    )
    from hgt_cluster_kedro.simclusters import u2i_recommend

    logging.basicConfig(level=logging.WARNING)
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env="dblp") as session:
        ctx = session.load_context()
        params = _plain(ctx.params)
        graph = ctx.catalog.load("graph")
        interactions = ctx.catalog.load("interactions")
        truth_table = ctx.catalog.load("user_communities")
    base = params["simclusters"]
    c2i = params["c2i"]
    u2i = params["simclusters_u2i"]
    k_select = int(c2i["select_k"])
    schema = graph.schema
    n_users = graph.num_nodes[schema.user_type]
    n_items = graph.num_nodes[schema.item_type]
    train_pairs = _pairs(interactions, "train")
    valid = _pairs(interactions, "valid")
    train = interactions_csr(*train_pairs, n_users, n_items)
    query = np.unique(valid[0])
    relevant = relevant_csr(*valid, n_users, n_items)[query]
    gt = params["evaluation"]["ground_truth"]
    areas = (
        truth_table.set_index(gt["id_column"])[gt["label_column"]]
        .reindex(graph.ids[schema.user_type])
        .to_numpy()
    )
    grid = [float(w) for w in c2i["blend_grid"]]
    n_rel = relevant.getnnz(axis=1).astype(np.float64)
    has_rel = n_rel > 0

    def per_user_recall(items: np.ndarray) -> np.ndarray:
        hits = hit_matrix(items[has_rel], relevant[has_rel])[:, :k_select].sum(1)
        return hits / n_rel[has_rel]

    per_user: dict[str, np.ndarray] = {}

    results: dict[str, Any] = {}
    for name, over in CANDIDATES.items():
        runs = []
        user_recall = []
        for seed in SEEDS:
            p = merge(merge(base, over), {"knownfor": {"seed": seed}})
            p["knownfor"]["compare_leiden"] = False
            start = time.perf_counter()
            sim, sim_summary = build_similarity(graph, p)
            kf, kf_report = build_knownfor(sim, graph, p)
            ii, _, clusters, ii_summary = build_interested_in(kf, graph, p)
            _, items, _ = build_embeddings(
                interested_table=ii,
                graph=graph,
                params=p,
                similarity_summary=sim_summary,
                knownfor_report=kf_report,
                interested_summary=ii_summary,
            )
            seconds = time.perf_counter() - start
            labels = _clusters_of(clusters, graph)
            blend, by_blend = choose_blend(train, labels, valid, grid, k=k_select)
            chosen_recs = c2i_recommend(train, labels, query, k_select, blend=blend)
            user_recall.append(per_user_recall(chosen_recs.items))
            k = int(p["knownfor"]["k"])
            u = frame_to_sparse(ii, graph.ids[schema.user_type], k)
            item_emb = frame_to_sparse(items, graph.ids[schema.item_type], k)
            recs, _ = u2i_recommend(
                u,
                item_emb,
                train,
                query,
                k_select,
                items_per_cluster=int(u2i["items_per_cluster"]),
            )
            u2i_valid = ranking_metrics(recs, relevant, (k_select,))[
                f"recall@{k_select}"
            ]
            quality = cluster_quality(labels, areas)
            mh = kf_report["metropolis_hastings"]
            runs.append(
                {
                    "seed": seed,
                    "c2i_valid_recall": by_blend[f"{blend:g}"],
                    "c2i_blend": blend,
                    "c2i_valid_recall_by_blend": by_blend,
                    "u2i_valid_recall": u2i_valid,
                    "nmi_info": quality["nmi"],
                    "ari_info": quality["ari"],
                    "n_clusters": int(np.unique(labels).size),
                    "users_without_community": ii_summary["users_without_community"],
                    "producer_type": sim_summary["producer_type"],
                    "n_producers": sim_summary["n_producers"],
                    "follow_edges": sim_summary["follow_edges"],
                    "similarity_edges": sim_summary["similarity_edges"],
                    "isolated_producers": sim_summary["isolated_producers"],
                    "knownfor_sizes": mh["community_sizes"],
                    "knownfor_modularity": mh["modularity"],
                    "seconds": seconds,
                }
            )
            print(
                f"{name:50s} seed {seed}: c2i valid R@{k_select} "
                f"{runs[-1]['c2i_valid_recall']:.4f} (blend {blend:g}), u2i "
                f"{u2i_valid:.4f}; NMI {quality['nmi']:.3f} ARI {quality['ari']:.3f} "
                f"(info); KnownFor sizes {mh['community_sizes']}; {seconds:.1f} s",
                flush=True,
            )
        per_user[name] = np.mean(user_recall, axis=0)
        results[name] = {
            "overrides": over,
            "c2i_valid_recall@50": summarise([r["c2i_valid_recall"] for r in runs]),
            "u2i_valid_recall@50": summarise([r["u2i_valid_recall"] for r in runs]),
            "nmi_info": summarise([r["nmi_info"] for r in runs]),
            "ari_info": summarise([r["ari_info"] for r in runs]),
            "runs": runs,
        }
    chosen = max(results, key=lambda n: results[n]["c2i_valid_recall@50"]["mean"])
    # paired bootstrap over the valid users (per-user recall, mean over seeds):
    # how sure is the chosen candidate's lead over each other one?
    rng = np.random.default_rng(0)
    boot = rng.integers(0, int(has_rel.sum()), (BOOTSTRAP, int(has_rel.sum())))
    for name, result in results.items():
        diff = per_user[chosen] - per_user[name]
        means = diff[boot].mean(axis=1)
        result["chosen_minus_this"] = {
            "mean": float(diff.mean()),
            "ci95": [
                float(np.quantile(means, 0.025)),
                float(np.quantile(means, 0.975)),
            ],
            "p_not_better": float((means <= 0).mean()),
        }
    record = {
        "benchmark": "simclusters_dblp_follow",
        "criterion": (
            f"mean over KnownFor seeds {list(SEEDS)} of the VALID Recall@{k_select} "
            "of simclusters_c2i (blend chosen on valid as in the pipeline); "
            "NMI / ARI against the areas are information only"
        ),
        "chosen": chosen,
        "base_parameters": "conf/dblp simclusters (k = 4) with the overrides",
        "before": "writes | init=neighbors,penalty=1",
        "n_valid_users": int(has_rel.sum()),
        "n_valid_pairs": int(valid[0].size),
        "bootstrap": (
            f"{BOOTSTRAP} paired resamples of the valid users; chosen_minus_this = "
            "chosen's per-user c2i valid Recall@50 (mean over seeds) minus this "
            "candidate's, p_not_better = share of resamples where it is <= 0"
        ),
        **git_commit(ROOT),
        "python": sys.version.split()[0],
        "candidates": results,
    }
    OUT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nchosen on valid c2i Recall@{k_select}: {chosen}")
    for n, r in results.items():
        print(
            f"  {n:26s} c2i {r['c2i_valid_recall@50']['mean']:.4f} ± "
            f"{r['c2i_valid_recall@50']['std']:.4f}  u2i "
            f"{r['u2i_valid_recall@50']['mean']:.4f}  NMI "
            f"{r['nmi_info']['mean']:.3f}  ARI {r['ari_info']['mean']:.3f}  lead "
            f"{r['chosen_minus_this']['mean']:+.4f} p {r['chosen_minus_this']['p_not_better']:.3f}"
        )
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
