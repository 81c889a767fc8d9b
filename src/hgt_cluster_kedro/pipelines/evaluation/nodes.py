"""Nodes of ``evaluation``: thin wrappers over :mod:`hgt_cluster_kedro.evaluation`.

Every method is scored by the same node on the same split; baselines
(popularity, random) go through the same ranking metrics.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pydantic import ValidationError

from hgt_cluster_kedro.config import EvaluationParams
from hgt_cluster_kedro.embeddings import from_frame
from hgt_cluster_kedro.evaluation import (
    cluster_quality,
    evaluate_u2u2i,
    popularity_recommend,
    random_recommend,
    ranking_metrics,
    relevant_csr,
)
from hgt_cluster_kedro.evaluation.baselines import (
    ClassicalBaselinesConfig,
    community_oracle_recommend,
    evaluate_classical,
)
from hgt_cluster_kedro.evaluation.clusters import label_protocol
from hgt_cluster_kedro.graph import GraphArtifact
from hgt_cluster_kedro.reporting.history import format_value

logger = logging.getLogger(__name__)

#: columns of the printed comparison table, in order
TABLE_METRICS = (
    "nmi",
    "ari",
    "recall@10",
    "ndcg@10",
    "hitrate@10",
    "recall@50",
    "ndcg@50",
    "hitrate@50",
    "recall@100",
    "gap_closed@50",
    "recall@50_boost_delta",
    "ndcg@50_boost_delta",
    "clusters",
    "train_seconds",
)
#: the row of the community oracle in ``comparison`` (planted data only)
ORACLE = "oracle"


def _pairs(interactions: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
    part = interactions[interactions["split"] == split]
    return part["user"].to_numpy(np.int64), part["item"].to_numpy(np.int64)


def _test_pairs(
    interactions: pd.DataFrame, split: str
) -> tuple[np.ndarray, np.ndarray]:
    test = _pairs(interactions, split)
    if len(test[0]) == 0:
        raise ValueError(
            f"evaluation.split={split!r}: the interactions table has no {split} "
            "pairs (too few users with min_history interactions?)"
        )
    return test


def _truth(
    graph: GraphArtifact, ground_truth: pd.DataFrame | None, params: EvaluationParams
) -> Any:
    cfg = params.ground_truth
    if cfg is None or ground_truth is None:
        return None
    id_col, label_col = cfg.id_column, cfg.label_column
    missing = [c for c in (id_col, label_col) if c not in ground_truth.columns]
    if missing:
        raise ValueError(
            f"ground truth: columns {missing} not found (evaluation.ground_truth); "
            f"present: {list(ground_truth.columns)}"
        )
    index = pd.Index(ground_truth[id_col]).get_indexer(
        graph.ids[graph.schema.user_type]
    )
    labels = np.full(len(index), -1, dtype=np.int64)
    known = index >= 0
    labels[known] = ground_truth[label_col].to_numpy()[index[known]]
    if not known.any():
        logger.warning(
            "ground truth: none of the %d users has a label; NMI / ARI skipped",
            len(labels),
        )
        return None
    return labels


#: label-protocol results by (embeddings, labels, settings): methods sharing
#: embeddings (``twhin_kmeans``, ``twhin_som``) run the seeded KMeans once
_PROTOCOL_MEMO: dict[str, dict[str, float]] = {}
_PROTOCOL_MEMO_SIZE = 32


def _protocol(
    emb: np.ndarray, truth: np.ndarray, known: np.ndarray, params: EvaluationParams
) -> dict[str, float]:
    cfg = params.label_protocol
    if cfg is None:
        return {}
    kwargs = cfg.model_dump()
    x, y = np.ascontiguousarray(emb[known]), np.ascontiguousarray(truth[known])
    digest = hashlib.sha256(x.tobytes())
    digest.update(y.tobytes())
    digest.update(repr((x.shape, sorted(kwargs.items()))).encode())
    key = digest.hexdigest()
    if key in _PROTOCOL_MEMO:
        return dict(_PROTOCOL_MEMO[key])
    start = time.perf_counter()
    out = label_protocol(x, y, **kwargs)
    if len(_PROTOCOL_MEMO) >= _PROTOCOL_MEMO_SIZE:
        _PROTOCOL_MEMO.clear()
    _PROTOCOL_MEMO[key] = dict(out)
    logger.info(
        "Label protocol (KMeans x %s seeds) in %.1f s: %s",
        cfg.seeds,
        time.perf_counter() - start,
        {k: round(v, 4) for k, v in out.items()},
    )
    return out


def _tuning(
    params: EvaluationParams, valid: tuple[np.ndarray, np.ndarray]
) -> tuple[dict[str, Any] | None, str | None]:
    """The ``u2u2i_tuning`` options for :func:`evaluate_u2u2i`, or ``None`` and
    why the tuned channel is not scored."""
    if params.u2u2i_tuning is None:
        return None, "evaluation.u2u2i_tuning is null"
    if params.split == "valid":
        return None, "evaluation.split is valid: nothing left to tune on"
    if len(valid[0]) == 0:
        return None, "the interactions table has no valid pairs"
    return params.u2u2i_tuning.model_dump(), None


def evaluate_method(
    *,
    user_embeddings: pd.DataFrame,
    user_clusters: pd.DataFrame,
    interactions: pd.DataFrame,
    graph: GraphArtifact,
    ground_truth: pd.DataFrame,
    training: dict[str, Any],
    params: EvaluationParams,
) -> dict[str, Any]:
    """u2u2i recall (plain and cluster-boosted) and cluster quality of one method."""
    params = EvaluationParams.model_validate(params)
    user_ids = graph.ids[graph.schema.user_type]
    emb = from_frame(
        user_embeddings,
        user_ids,
        dim=training.get("embedding_dim"),
        name="user_embeddings",
    )
    labels = _clusters_of(user_clusters, graph)
    n_items = graph.num_nodes[graph.schema.item_type]
    valid = _pairs(interactions, "valid")
    tuning, tuning_off = _tuning(params, valid)
    result = evaluate_u2u2i(
        emb,
        _pairs(interactions, "train"),
        _test_pairs(interactions, params.split),
        n_items,
        ks=tuple(params.ks),
        m_neighbors=params.m_neighbors,
        cluster_labels=labels,
        cluster_boost=params.cluster_boost,
        metric=params.metric,
        backend=params.backend,
        faiss_threshold=params.faiss_threshold,
        valid=valid if tuning is not None else None,
        tuning=tuning,
        seed=params.seed,
    )
    if tuning_off is not None:
        result["tuned_reason"] = tuning_off
    truth = _truth(graph, ground_truth, params)
    known = truth >= 0 if truth is not None else None
    quality = cluster_quality(
        labels if truth is None else labels[known],
        None if truth is None else truth[known],
        emb if truth is None else emb[known],
        silhouette_sample=params.silhouette_sample,
        seed=params.seed,
    )
    protocol = {} if truth is None else _protocol(emb, truth, known, params)
    record = {
        **quality,
        **protocol,
        **result,
        **fingerprints(emb, labels),
        "train_seconds": float(training.get("train_seconds", float("nan"))),
        "peak_memory_mb": float(training.get("peak_memory_mb", float("nan"))),
    }
    logger.info(
        "Recall@50 %.4f, NDCG@50 %.4f, NMI %s",
        record.get("recall@50", float("nan")),
        record.get("ndcg@50", float("nan")),
        record.get("nmi"),
    )
    return record


def evaluate_candidates(
    *,
    candidates: pd.DataFrame,
    interactions: pd.DataFrame,
    graph: GraphArtifact,
    training: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Recall / NDCG / HitRate@K of a method's own per-user lists (``user``,
    ``item``, ``rank``; contiguous ids), on the same query users as u2u2i: every
    user with a held-out item; a user without a list counts as a miss."""
    params = EvaluationParams.model_validate(params).model_dump()
    if training.get("disabled"):  # the channel is off for this dataset
        return {"disabled": True}
    missing = [c for c in ("user", "item", "rank") if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates: missing column(s) {missing}")
    test_u, test_i = _test_pairs(interactions, params["split"])
    n_users = graph.num_nodes[graph.schema.user_type]
    n_items = graph.num_nodes[graph.schema.item_type]
    ks = tuple(params["ks"])
    query = np.unique(test_u)
    row = np.full(n_users, -1, np.int64)
    row[query] = np.arange(len(query))
    recs = np.full((len(query), max(ks)), -1, np.int64)
    r = row[candidates["user"].to_numpy(np.int64)]
    rank = candidates["rank"].to_numpy(np.int64)
    ok = (r >= 0) & (rank < max(ks))
    recs[r[ok], rank[ok]] = candidates["item"].to_numpy(np.int64)[ok]
    relevant = relevant_csr(test_u, test_i, n_users, n_items)[query]
    record = {
        **ranking_metrics(recs, relevant, ks),
        "coverage": float((recs[:, 0] >= 0).mean()),
        "train_seconds": float(training.get("train_seconds", float("nan"))),
        "peak_memory_mb": float(training.get("peak_memory_mb", float("nan"))),
    }
    logger.info(
        "Candidates: Recall@%d %.4f, coverage %.3f",
        max(ks),
        record.get(f"recall@{max(ks)}", float("nan")),
        record["coverage"],
    )
    return record


def evaluate_baselines(
    interactions: pd.DataFrame, graph: GraphArtifact, params: EvaluationParams
) -> dict[str, dict[str, Any]]:
    """Popularity and random recommenders scored like every method."""
    params = EvaluationParams.model_validate(params)
    train_u, train_i = _pairs(interactions, "train")
    test_u, test_i = _test_pairs(interactions, params.split)
    n_users = graph.num_nodes[graph.schema.user_type]
    n_items = graph.num_nodes[graph.schema.item_type]
    query = np.unique(test_u)
    ks = tuple(params.ks)
    relevant = relevant_csr(test_u, test_i, n_users, n_items)[query]
    out = {}
    for name, recs in (
        (
            "popularity",
            popularity_recommend(
                train_u, train_i, n_items, query, max(ks), n_users=n_users
            ),
        ),
        (
            "random",
            random_recommend(
                train_u,
                train_i,
                n_items,
                query,
                max(ks),
                seed=params.seed,
                n_users=n_users,
            ),
        ),
    ):
        out[name] = ranking_metrics(recs.items, relevant, ks)
    return out


def fingerprints(emb: np.ndarray, labels: np.ndarray) -> dict[str, str]:
    """Short digests of a method's user embeddings and of its partition (labels
    renumbered by first occurrence, so equal digests mean ARI = 1): the
    comparison marks methods that share an embedding or give identical clusters.
    """
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    canonical = rank[inverse.ravel()]
    return {
        "embedding_fingerprint": hashlib.sha256(
            np.ascontiguousarray(emb, dtype=np.float32).tobytes()
        ).hexdigest()[:16],
        "cluster_fingerprint": hashlib.sha256(canonical.tobytes()).hexdigest()[:16],
    }


def _split_matrix(
    interactions: pd.DataFrame, split: str, n_users: int, n_items: int
) -> Any:
    from hgt_cluster_kedro.evaluation import interactions_csr

    user, item = _pairs(interactions, split)
    return interactions_csr(user, item, n_users, n_items)


def evaluate_classical_baselines(
    interactions: pd.DataFrame, graph: GraphArtifact, params: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """EASE and item-kNN (``evaluation.classical_baselines``) on the train pairs,
    their hyperparameters chosen on the valid pairs, scored on ``split``."""
    params = EvaluationParams.model_validate(params).model_dump()
    try:
        config = ClassicalBaselinesConfig.model_validate(
            params.get("classical_baselines") or {}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"evaluation.classical_baselines.{'.'.join(map(str, e['loc']))}"
            f"={e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        )
        raise ValueError(problems) from exc
    n_users = graph.num_nodes[graph.schema.user_type]
    n_items = graph.num_nodes[graph.schema.item_type]
    _test_pairs(interactions, params["split"])  # a clear error when empty
    train = _split_matrix(interactions, "train", n_users, n_items)
    test = _split_matrix(interactions, params["split"], n_users, n_items)
    valid = _split_matrix(interactions, "valid", n_users, n_items)
    out = evaluate_classical(train, valid, test, config, tuple(params["ks"]))
    for name, rec in out.items():
        logger.info(
            "%s: Recall@50 %.4f, NDCG@50 %.4f (chosen on valid: %s) in %.1f s",
            name,
            rec.get("recall@50", float("nan")),
            rec.get("ndcg@50", float("nan")),
            rec.get("l2", rec.get("neighbors")),
            rec["train_seconds"],
        )
    return out


def evaluate_oracle(
    interactions: pd.DataFrame,
    graph: GraphArtifact,
    ground_truth: pd.DataFrame | None,
    params: dict[str, Any],
) -> dict[str, Any]:
    """The community oracle (``evaluation.oracle``), an evaluation reference on
    planted data: each user's true community, items ranked by their train
    frequency in it, own train items excluded. Never a training input.

    Returns:
        ``{"available": True, **ranking metrics}``, or ``{"available": False,
        "reason": ...}`` when it is off or there is no ground truth.
    """
    model = EvaluationParams.model_validate(params)
    params = model.model_dump()
    cfg = params.get("oracle") or {}
    unknown = set(cfg) - {"enabled"}
    if unknown:
        raise ValueError(
            f"evaluation.oracle: unknown keys {sorted(unknown)}; known: enabled"
        )
    if not cfg.get("enabled", False):
        return {
            "available": False,
            "reason": "evaluation.oracle.enabled is false: the oracle needs the "
            "communities that generated the data (planted data only)",
        }
    truth = _truth(graph, ground_truth, model)
    if truth is None:
        return {
            "available": False,
            "reason": "no ground truth (evaluation.ground_truth) for this data",
        }
    n_users = graph.num_nodes[graph.schema.user_type]
    n_items = graph.num_nodes[graph.schema.item_type]
    test_u, test_i = _test_pairs(interactions, params["split"])
    query = np.unique(test_u)
    ks = tuple(params["ks"])
    train = _split_matrix(interactions, "train", n_users, n_items)
    recs = community_oracle_recommend(train, truth, query, max(ks))
    out: dict[str, Any] = {"available": True}
    out.update(
        ranking_metrics(
            recs.items, relevant_csr(test_u, test_i, n_users, n_items)[query], ks
        )
    )
    out["n_eval_users"] = out.pop("n_users")
    out["n_users_without_community"] = int((truth[query] < 0).sum())
    logger.info(
        "Oracle: Recall@50 %.4f, NDCG@50 %.4f",
        out.get("recall@50", float("nan")),
        out.get("ndcg@50", float("nan")),
    )
    return out


_PROTOCOL_KEY = re.compile(r"^(nmi|ari)_k(\d+)_mean$")


def _protocol_columns(records: list[dict[str, Any]]) -> list[str]:
    """``nmi_k4`` / ``ari_k4`` … for every label-protocol result in ``records``."""
    found = {
        key[: -len("_mean")] for r in records for key in r if _PROTOCOL_KEY.match(key)
    }
    return sorted(found, key=lambda c: (int(c.split("_k")[1]), c.startswith("ari")))


def _cell(record: dict[str, Any], metric: str, protocol: list[str]) -> str:
    if metric in protocol:
        mean, std = record.get(f"{metric}_mean"), record.get(f"{metric}_std")
        if mean is None:
            return "–"
        return f"{mean:.4f} ± {std:.4f}"
    return format_value(record.get(metric))


def add_gap_closed(
    records: list[dict[str, Any]], oracle: dict[str, Any] | None
) -> None:
    """``gap_closed@K = (recall@K - popularity) / (oracle - popularity)`` in
    every record (1 = the oracle, 0 = popularity, < 0 = below popularity);
    ``None`` with ``gap_closed_reason`` where there is no oracle."""
    popularity = next((r for r in records if r["method"] == "popularity"), None)
    ks = sorted(
        {int(key.split("@")[1]) for r in records for key in r if _RECALL.match(key)}
    )
    for record in records:
        for k in ks:
            key, value, reason = f"gap_closed@{k}", None, None
            if oracle is None or not oracle.get("available", False):
                reason = (oracle or {}).get("reason", "no oracle in this comparison")
            elif popularity is None or f"recall@{k}" not in popularity:
                reason = "no popularity baseline"
            elif f"recall@{k}" not in record:
                reason = f"no recall@{k}"
            else:
                pop, top = popularity[f"recall@{k}"], oracle.get(f"recall@{k}")
                if top is None or not top > pop:
                    reason = f"the oracle does not beat popularity at recall@{k}"
                else:
                    value = (float(record[f"recall@{k}"]) - pop) / (top - pop)
            record[key] = value
            if reason is not None:
                record["gap_closed_reason"] = reason


_RECALL = re.compile(r"^recall@(\d+)$")


def tuned_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Row ``<method>_tuned`` of every method record with a ``tuned`` u2u2i
    channel (``evaluation.u2u2i_tuning``), taken out of that record."""
    rows = []
    for record in records:
        tuned = record.pop("tuned", None)
        if tuned is None:
            continue
        fingerprint = record.get("embedding_fingerprint")
        rows.append(
            {
                "method": f"{record['method']}_tuned",
                "tuned_from": record["method"],
                **tuned,
                "train_seconds": record.get("train_seconds"),
                "embedding_fingerprint": None
                if fingerprint is None
                else f"{fingerprint}:tuned",
            }
        )
    return rows


def mark_shared(records: list[dict[str, Any]]) -> None:
    """``same_embedding_as`` / ``same_clusters_as``: the first earlier record
    with the same embedding (its u2u2i metrics and ``nmi_k*`` repeat) or the
    same partition (ARI 1.0 between them)."""
    for key, mark in (
        ("embedding_fingerprint", "same_embedding_as"),
        ("cluster_fingerprint", "same_clusters_as"),
    ):
        first: dict[str, str] = {}
        for record in records:
            digest = record.get(key)
            if digest is None:
                continue
            if digest in first:
                record[mark] = first[digest]
            else:
                first[digest] = record["method"]


def _notes(record: dict[str, Any]) -> str:
    notes = []
    if record.get("same_embedding_as"):
        notes.append(
            f"embedding of {record['same_embedding_as']} (u2u2i, nmi_k* repeat it)"
        )
    if record.get("same_clusters_as"):
        notes.append(f"clusters of {record['same_clusters_as']} (ARI 1.0)")
    if record.get("reference"):
        notes.append("reference: uses the true communities")
    if record.get("tuned_from"):
        notes.append(
            f"u2u2i of {record['tuned_from']}, m = {record['m_neighbors']}, "
            f"popularity prior w = {record['popularity_weight']:g} (chosen on valid)"
        )
    return "; ".join(notes)


def _clusters_cell(record: dict[str, Any]) -> str:
    if record.get("n_clusters") is None:
        return "–"
    if record.get("size_min") is None or record.get("size_max") is None:
        return f"{int(record['n_clusters'])}"
    return (
        f"{int(record['n_clusters'])} ({int(record['size_min'])}–"
        f"{int(record['size_max'])})"
    )


def comparison_table(records: list[dict[str, Any]]) -> str:
    """The markdown table of ``comparison.md``, with a legend below it."""
    protocol = _protocol_columns(records)
    columns = [*TABLE_METRICS[:2], *protocol, *TABLE_METRICS[2:]]
    header = "| method | " + " | ".join(columns) + " | notes |"
    rule = "|---|" + "---:|" * len(columns) + "---|"
    rows = []
    for r in records:
        cells = [
            _clusters_cell(r) if m == "clusters" else _cell(r, m, protocol)
            for m in columns
        ]
        rows.append(f"| {r['method']} | " + " | ".join(cells) + f" | {_notes(r)} |")
    legend = [
        "",
        "clusters: number of clusters (smallest–largest size). "
        "gap_closed@50 = (Recall@50 − popularity) / (oracle − popularity).",
    ]
    reasons = {r.get("gap_closed_reason") for r in records} - {None}
    if reasons:
        legend.append("gap_closed: " + "; ".join(sorted(reasons)) + ".")
    if protocol:
        legend.append(
            "± in " + ", ".join(protocol) + ": std over the label protocol's KMeans "
            "seeds (evaluation.label_protocol.seeds) on this run's one trained "
            "embedding, not over training seeds (those: "
            "benchmarks/bench_quality.py, benchmarks/results/quality.json)."
        )
    return "\n".join([header, rule, *rows, *legend]) + "\n"


def compare(
    baselines: dict[str, dict[str, Any]],
    classical_baselines: dict[str, dict[str, Any]] | None = None,
    oracle: dict[str, Any] | None = None,
    **methods: dict[str, Any],
) -> tuple[list[dict[str, Any]], str, Figure]:
    """One record per method, baseline and the oracle, a markdown table and a
    bar plot.

    Rows: the methods, then ``baselines`` (popularity, random), the
    ``classical_baselines`` (EASE, item-kNN) and, where available, the
    ``oracle`` (marked ``reference``). Every record gets ``gap_closed@K``
    (:func:`add_gap_closed`) and the shared-embedding / identical-cluster marks
    (:func:`mark_shared`). The table has ``TABLE_METRICS``, with the
    label-protocol columns (``nmi_k4`` …: mean ± std over the KMeans seeds)
    after ``nmi`` / ``ari`` when any method has them.
    """
    # a channel switched off for this dataset (``{"disabled": True}``) has no row
    records = [
        {"method": name, **metrics}
        for name, metrics in methods.items()
        if not metrics.get("disabled")
    ]
    records += tuned_rows(records)
    records += [{"method": name, **metrics} for name, metrics in baselines.items()]
    records += [
        {"method": name, **metrics}
        for name, metrics in (classical_baselines or {}).items()
    ]
    if oracle is not None and oracle.get("available", False):
        body = {k: v for k, v in oracle.items() if k != "available"}
        records.append({"method": ORACLE, "reference": True, **body})
    add_gap_closed(records, oracle)
    mark_shared(records)
    table = comparison_table(records)
    logger.info("Method comparison:\n%s", table)
    fig = Figure(figsize=(9, 3.5))
    axes = fig.subplots(1, 3)
    names = [r["method"] for r in records]
    for ax, metric in zip(axes, ("recall@50", "ndcg@50", "nmi"), strict=True):
        values = [float(r.get(metric) or 0.0) for r in records]
        ax.barh(names, values, color="tab:blue")
        ax.set_title(metric)
        ax.invert_yaxis()
    fig.tight_layout()
    return records, table, fig


# ------------------------------------------------- recall channels (issue #14)


def _clusters_of(user_clusters: pd.DataFrame, graph: GraphArtifact) -> np.ndarray:
    """Cluster of every user of the graph (row order), every user required."""
    user_ids = graph.ids[graph.schema.user_type]
    clusters = user_clusters.set_index("id")["cluster"]
    missing = ~user_ids.isin(clusters.index)
    if missing.any():
        raise ValueError(
            f"user_clusters: {int(missing.sum())} users have no cluster, e.g. "
            f"{list(user_ids[missing][:5])}"
        )
    return clusters.reindex(user_ids).to_numpy(np.int64)


def evaluate_c2i_channel(
    user_clusters: pd.DataFrame,
    interactions: pd.DataFrame,
    graph: GraphArtifact,
    params: dict[str, Any],
    c2i_params: dict[str, Any],
) -> dict[str, Any]:
    """The cluster → top-items channel of one method's clusters (row
    ``<method>_c2i``): blend chosen on the validation split, scored on
    ``evaluation.split``."""
    params = EvaluationParams.model_validate(params).model_dump()
    from hgt_cluster_kedro.evaluation.c2i import evaluate_c2i

    labels = _clusters_of(user_clusters, graph)
    valid = _pairs(interactions, "valid")
    start = time.perf_counter()
    record = evaluate_c2i(
        labels,
        _pairs(interactions, "train"),
        valid if len(valid[0]) else None,
        _test_pairs(interactions, params["split"]),
        n_users=graph.num_nodes[graph.schema.user_type],
        n_items=graph.num_nodes[graph.schema.item_type],
        ks=tuple(params["ks"]),
        blend_grid=[float(w) for w in c2i_params["blend_grid"]],
        select_k=int(c2i_params["select_k"]),
    )
    record["eval_seconds"] = time.perf_counter() - start
    return record


def evaluate_simclusters_u2i(
    *,
    interested_in: pd.DataFrame,
    item_embeddings: pd.DataFrame,
    interactions: pd.DataFrame,
    graph: GraphArtifact,
    params: dict[str, Any],
    u2i_params: dict[str, Any],
) -> dict[str, Any]:
    """SimClusters u2i (row ``simclusters_u2i``): InterestedIn · item
    embeddings through the cluster → top-items index, own train items
    excluded."""
    params = EvaluationParams.model_validate(params).model_dump()
    from hgt_cluster_kedro.evaluation import relevant_csr
    from hgt_cluster_kedro.evaluation.metrics import interactions_csr
    from hgt_cluster_kedro.pipelines.simclusters.nodes import frame_to_sparse
    from hgt_cluster_kedro.simclusters import u2i_recommend

    schema = graph.schema
    n_users = graph.num_nodes[schema.user_type]
    n_items = graph.num_nodes[schema.item_type]
    k = (
        int(max(interested_in["community"].max(), item_embeddings["community"].max()))
        + 1
    )
    u = frame_to_sparse(
        interested_in, graph.ids[schema.user_type], k, name="interested_in"
    )
    items = frame_to_sparse(
        item_embeddings, graph.ids[schema.item_type], k, name="item_embeddings"
    )
    train = interactions_csr(*_pairs(interactions, "train"), n_users, n_items)
    test_u, test_i = _test_pairs(interactions, params["split"])
    query = np.unique(test_u)
    ks = tuple(params["ks"])
    start = time.perf_counter()
    recs, _ = u2i_recommend(
        u,
        items,
        train,
        query,
        max(ks),
        items_per_cluster=int(u2i_params["items_per_cluster"]),
        block_rows=int(u2i_params.get("block_rows", 4096)),
    )
    seconds = time.perf_counter() - start
    record = ranking_metrics(
        recs, relevant_csr(test_u, test_i, n_users, n_items)[query], ks
    )
    record["eval_seconds"] = seconds
    record["coverage@max_k"] = float((recs >= 0).mean())
    logger.info(
        "SimClusters u2i: Recall@50 %.4f", record.get("recall@50", float("nan"))
    )
    return record
