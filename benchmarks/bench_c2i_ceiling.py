"""How much of the oracle gap can a cluster -> top-items channel close? c2i_ceiling.json.

Issue #14 aims at a ``c2i`` channel closing >= 80 % of the gap between
popularity and the community oracle on the fake data. This diagnostic reads the
default run's outputs (run ``make run`` first: ``data/03_primary/interactions``,
``data/01_raw/user_communities`` and ``data/07_model_output/<method>_user_embeddings``)
and scores the c2i channel (:func:`~hgt_cluster_kedro.evaluation.c2i.c2i_recommend`,
no popularity blend) on the **validation** split with different user clusters:

* ``kmeans``: KMeans (``k`` = the planted community count) on the L2-normalised
  embedding — what ``<method>_kmeans_c2i`` uses;
* ``kmeans+em``: those clusters refined by EM of a mixture of multinomials over
  each user's train items (a cluster = a distribution over items; ``--em-iters``
  iterations, add-``alpha`` smoothing), the model whose likelihood a c2i
  channel's ranking follows;
* ``truth posterior``: each user put in the community whose item distribution
  (estimated from the planted communities' train items) best explains the
  user's own train items — how identifiable the communities are from the
  train interactions at all (uses the truth: a ceiling, never a method);
* ``truth+em``: EM started from the planted communities (the likelihood's
  optimum near the truth);
* ``oracle``: the planted communities themselves, and ``popularity``.

Every row reports validation Recall@50, the share of the oracle gap it closes,
its NMI against the planted communities and the EM log-likelihood where there
is one. Information for the issue, not a pipeline: the truth is read here
and nowhere else.

    python benchmarks/bench_c2i_ceiling.py --methods twhin,hgt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import record, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def em_refine(
    train: sp.csr_matrix, labels: np.ndarray, k: int, *, iters: int, alpha: float
) -> tuple[np.ndarray, float]:
    """Hard labels after ``iters`` EM steps of a multinomial mixture started from
    ``labels``, and the final log-likelihood."""
    x = sp.csr_matrix(train, dtype=np.float64)
    resp = np.zeros((x.shape[0], k))
    resp[np.arange(x.shape[0]), labels] = 1.0
    loglik = -np.inf
    for _ in range(iters):
        counts = (sp.csr_matrix(resp.T) @ x).toarray() + alpha
        log_share = np.log(counts / counts.sum(axis=1, keepdims=True))
        log_prior = np.log(resp.sum(axis=0) + 1e-12) - np.log(x.shape[0])
        logp = x @ log_share.T + log_prior
        top = logp.max(axis=1, keepdims=True)
        norm = top.ravel() + np.log(np.exp(logp - top).sum(axis=1))
        loglik = float(norm.sum())
        resp = np.exp(logp - norm[:, None])
    return resp.argmax(axis=1), loglik


def main() -> None:
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from hgt_cluster_kedro.embeddings import from_frame
    from hgt_cluster_kedro.evaluation.c2i import c2i_recommend
    from hgt_cluster_kedro.evaluation.metrics import interactions_csr, ranking_metrics
    from hgt_cluster_kedro.evaluation.tuning import validation_queries
    from hgt_cluster_kedro.pipelines.evaluation.nodes import _pairs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--methods", default="twhin,hgt")
    parser.add_argument("--em-iters", type=int, default=30)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    inputs = (
        args.data / "03_primary/interactions",
        args.data / "01_raw/user_communities",
    )
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        print(f"bench_c2i_ceiling: {missing} missing (run `make run` first); skipped")
        return
    inter = pd.read_parquet(inputs[0])
    truth_table = pd.read_parquet(inputs[1])
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    frames = {
        m: pd.read_parquet(p)
        for m in methods
        if (p := args.data / f"07_model_output/{m}_user_embeddings").exists()
    }
    if not frames:
        print(f"bench_c2i_ceiling: no embeddings of {methods} (run `make run`)")
        return
    # the embedding tables list every user in index order (graph.ids)
    users = next(iter(frames.values()))["id"].to_numpy()
    n_users, n_items = users.size, int(inter["item"].max()) + 1
    first = inter.drop_duplicates("user")
    if not np.array_equal(users[first["user"].to_numpy()], first["user_id"]):
        raise ValueError("interactions and embeddings disagree on the user order")
    truth = truth_table.set_index("user_id")["community"].reindex(users).to_numpy()
    k = int(np.unique(truth).size)

    train = interactions_csr(*_pairs(inter, "train"), n_users, n_items)
    rel, query = validation_queries(train, _pairs(inter, "valid"))

    def recall(labels: np.ndarray) -> float:
        recs = c2i_recommend(train, labels, query, 50)
        return float(ranking_metrics(recs.items, rel[query], (50,))["recall@50"])

    pop, oracle = recall(np.zeros(n_users, np.int64)), recall(truth)
    rows: dict[str, tuple[np.ndarray, float | None]] = {"oracle": (truth, None)}
    posterior, _ = em_refine(train, truth, k, iters=1, alpha=args.alpha)
    rows["truth posterior"] = (posterior, None)
    rows["truth+em"] = em_refine(train, truth, k, iters=args.em_iters, alpha=args.alpha)
    for method, frame in frames.items():
        emb = from_frame(frame, users, name=f"{method}_user_embeddings")
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        labels = KMeans(k, n_init=3, random_state=args.seed).fit_predict(emb)
        rows[f"{method} kmeans"] = (labels, None)
        rows[f"{method} kmeans+em"] = em_refine(
            train, labels, k, iters=args.em_iters, alpha=args.alpha
        )
    records = [
        record("c2i_ceiling", "valid_recall@50/popularity", pop, "recall"),
    ]
    for name, (labels, loglik) in rows.items():
        value = recall(labels)
        gap = (value - pop) / (oracle - pop)
        records.append(
            record(
                "c2i_ceiling",
                f"valid_recall@50/{name}",
                value,
                "recall",
                gap_closed=gap,
                nmi=float(nmi(truth, labels)),
                **({"em_loglik": loglik} if loglik is not None else {}),
                em_iters=args.em_iters if "em" in name else None,
            )
        )
        print(
            f"{name:24s} valid R@50 {value:.4f}  gap {gap:.3f}  NMI "
            f"{records[-1]['nmi']:.3f}"
        )
    print(write_results("c2i_ceiling", records))


if __name__ == "__main__":
    main()
