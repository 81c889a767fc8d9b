"""Nodes of ``session``: thin wrappers over :mod:`hgt_cluster_kedro.session`,
:mod:`hgt_cluster_kedro.models.srgnn` and the SR-GNN trainer.

Every node that builds sessions runs the SR-GNN filtering first, so a bad
parameter or an empty result fails before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from hgt_cluster_kedro.graph import GraphArtifact
from hgt_cluster_kedro.models.srgnn import SRGNN
from hgt_cluster_kedro.runtime import peak_rss_mb
from hgt_cluster_kedro.session import (
    ItemKNN,
    Popularity,
    SessionKNN,
    SessionPopularity,
    prefixes,
    repeat_mask,
)
from hgt_cluster_kedro.session.candidates import latest_sessions, top_k_candidates
from hgt_cluster_kedro.session.evaluate import metrics_from_ranks, next_item_ranks
from hgt_cluster_kedro.session.source import (
    CsvSource,
    clicks_from_csv,
    clicks_from_relations,
    prepare,
)
from hgt_cluster_kedro.training.srgnn_trainer import scorer, train_srgnn

from .._common import checkpoint_dir, run_fingerprint

logger = logging.getLogger(__name__)


def _disabled(params: dict[str, Any]) -> bool:
    """``session.enabled: false``: the channel is off for a dataset without
    timestamps (e.g. DBLP); every node writes an empty, marked result."""
    return not params.get("enabled", True)


_OFF = {"disabled": True, "reason": "session.enabled is false"}


def _prepared(clicks: pd.DataFrame, params: dict[str, Any]):
    return prepare(
        clicks,
        min_item_count=int(params["min_item_count"]),
        count_scope=params.get("count_scope", "train"),
    )


def clicks_from_graph(
    raw_edges: dict[str, pd.DataFrame],
    graph: GraphArtifact,
    interactions: pd.DataFrame,
    params: dict[str, Any],
) -> pd.DataFrame:
    """Sessions of the configured relations, cut per user and split
    (``session_clicks``)."""
    if _disabled(params):
        logger.info("Session channel off (session.enabled: false)")
        return pd.DataFrame(
            {
                "session": pd.Series(dtype="int64"),
                "owner": pd.Series(dtype="int64"),
                "item": pd.Series(dtype="int64"),
                "time": pd.Series(dtype="int64"),
                "split": pd.Series(dtype="object"),
            }
        )
    schema = graph.schema
    clicks = clicks_from_relations(
        raw_edges,
        schema,
        graph.ids[schema.user_type],
        graph.ids[schema.item_type],
        interactions,
        relations=params.get("relations"),
        gap=params["gap"],
        max_length=params.get("max_length"),
    )
    _prepared(clicks, params)  # fails here when nothing is left
    return clicks


def clicks_from_file(params: dict[str, Any]) -> pd.DataFrame:
    """Sessions of the log file ``session.csv`` (``session_clicks``)."""
    if not params.get("csv"):
        raise ValueError("session.csv: no session log configured")
    clicks = clicks_from_csv(
        CsvSource(**params["csv"]),
        gap=params["gap"],
        max_length=params.get("max_length"),
    )
    _prepared(clicks, params)
    return clicks


def _model_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    return dict(params["model"])


def train(
    clicks: pd.DataFrame, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train SR-GNN on the train sessions, select the epoch on the valid ones;
    return the model (tensors + metadata) and a training summary."""
    if _disabled(params):
        return {"tensors": {}, "metadata": dict(_OFF)}, {"method": "srgnn", **_OFF}
    data = _prepared(clicks, params)
    max_length = params.get("max_length")
    train_ex = prefixes(data.train, max_length)
    valid_ex = prefixes(data.valid, max_length) if len(data.valid) else None
    kwargs = _model_kwargs(params)
    base = kwargs.pop("checkpoint_dir", None)
    summary_data = {
        "n_clicks": len(clicks),
        "n_items": len(data.vocab),
        "n_train_prefixes": len(train_ex),
        "train_sha256": hashlib.sha256(
            data.train.items.tobytes() + data.train.offsets.tobytes()
        ).hexdigest()[:16],
    }
    ckpt = checkpoint_dir(base, "srgnn", run_fingerprint(kwargs, summary_data))
    start = time.perf_counter()
    model, history = train_srgnn(
        train_ex,
        valid_ex,
        len(data.vocab),
        checkpoint_dir=ckpt,
        fingerprint=summary_data,
        **kwargs,
    )
    seconds = time.perf_counter() - start
    trained = float(sum(history["seconds"]))
    summary = {
        "method": "srgnn",
        "train_seconds": max(seconds, trained),
        "wall_seconds": seconds,
        "peak_memory_mb": peak_rss_mb(),
        "epochs": len(history["epoch"]),
        "best_epoch": history["best_epoch"],
        "train_prefixes_per_s": len(train_ex)
        * len(history["epoch"])
        / max(trained, 1e-9),
        "n_sessions": {
            "train": len(data.train),
            "valid": len(data.valid),
            "test": len(data.test),
        },
        "n_items": len(data.vocab),
        "history": history,
        "params": {**kwargs},
    }
    state = {
        "tensors": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": {
            "num_items": model.num_items,
            "hidden": model.hidden,
            "step": model.gnn.step,
            "hybrid": model.hybrid,
            "item_raw_ids": data.vocab.raw.tolist(),
        },
    }
    return state, summary


def load_model(state: dict[str, Any]) -> SRGNN:
    """Rebuild the :class:`SRGNN` written by :func:`train`."""
    meta = state["metadata"]
    model = SRGNN(
        int(meta["num_items"]),
        int(meta["hidden"]),
        int(meta["step"]),
        bool(meta["hybrid"]),
    )
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state["tensors"].items()})
    return model.eval()


def _check_vocab(state: dict[str, Any], data: Any) -> None:
    if list(state["metadata"]["item_raw_ids"]) != data.vocab.raw.tolist():
        raise ValueError(
            "srgnn_model: its items differ from session_clicks' train items "
            "(model trained on other sessions); rerun the session pipeline"
        )


def report(
    clicks: pd.DataFrame, model_state: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """Next-item HitRate@K / MRR@K over every prefix of the valid and test
    sessions, for SR-GNN and the popularity, S-POP, item-kNN and SKNN baselines
    (``session_report``).

    ``repeat_share[split]`` is the share of prefixes whose target is already in
    the prefix (a re-view), and ``new_items[split]`` the same metrics over the
    other prefixes only: on a log full of re-views (the Diginetica sample: about
    half of the test prefixes) S-POP and SKNN score high by recommending the
    prefix's own items, which says nothing about finding new ones."""
    if _disabled(params):
        return dict(_OFF)
    data = _prepared(clicks, params)
    _check_vocab(model_state, data)
    cfg = params["report"]
    k, batch = int(cfg["k"]), int(cfg.get("batch_size", 512))
    n = len(data.vocab)
    out: dict[str, Any] = {
        "k": k,
        "n_items": n,
        "n_sessions": {
            "train": len(data.train),
            "valid": len(data.valid),
            "test": len(data.test),
        },
    }
    models = {
        "srgnn": scorer(load_model(model_state)),
        "popularity": Popularity(data.train, n).scores,
        "spop": SessionPopularity(data.train, n).scores,
        "item_knn": ItemKNN(data.train, n).scores,
        "sknn": SessionKNN(data.train, n, k=int(cfg["sknn_k"])).scores,
    }
    for split in ("valid", "test"):
        sessions = getattr(data, split)
        if len(sessions) == 0:
            continue
        ex = prefixes(sessions, params.get("max_length"))
        ranks = {
            name: next_item_ranks(f, ex, batch_size=batch) for name, f in models.items()
        }
        out[split] = {name: metrics_from_ranks(r, k) for name, r in ranks.items()}
        repeat = repeat_mask(ex)
        out.setdefault("repeat_share", {})[split] = float(repeat.mean())
        if not repeat.all():  # the same ranks, over the new-item prefixes only
            out.setdefault("new_items", {})[split] = {
                name: metrics_from_ranks(r[~repeat], k) for name, r in ranks.items()
            }
        logger.info(
            "Session report (%s): %s; target already in the prefix for %.1f %%",
            split,
            out[split],
            100 * out["repeat_share"][split],
        )
    return out


def candidates(
    clicks: pd.DataFrame,
    model_state: dict[str, Any],
    interactions: pd.DataFrame,
    graph: GraphArtifact,
    params: dict[str, Any],
) -> pd.DataFrame:
    """Each user's top-K SR-GNN items after their latest train session(s), train
    items excluded (``srgnn_candidates``: user, item, user_id, item_id, rank,
    score)."""
    if _disabled(params):
        return pd.DataFrame(
            {c: pd.Series(dtype="int64") for c in ("user", "item", "user_id")}
            | {"item_id": pd.Series(dtype="int64"), "rank": pd.Series(dtype="int32")}
            | {"score": pd.Series(dtype="float32")}
        )
    data = _prepared(clicks, params)
    _check_vocab(model_state, data)
    cfg = params["candidates"]
    queries = latest_sessions(data.train, int(cfg["history"]))
    n = len(data.vocab)
    train = interactions[interactions["split"] == "train"]
    n_users = graph.num_nodes[graph.schema.user_type]
    row_of_user = np.full(n_users, -1, np.int64)
    row_of_user[queries.owner] = np.arange(len(queries))
    coded = data.vocab.encode(train["item"].to_numpy(np.int64))
    r = row_of_user[train["user"].to_numpy(np.int64)]
    ok = (r >= 0) & (coded > 0)
    seen = sp.csr_matrix(
        (np.ones(int(ok.sum()), bool), (r[ok], coded[ok] - 1)), shape=(len(queries), n)
    )
    rows, items, scores = top_k_candidates(
        scorer(load_model(model_state)),
        queries,
        seen,
        k=int(cfg["k"]),
        max_length=int(params.get("max_length") or cfg.get("max_length", 50)),
        batch_size=int(cfg.get("batch_size", 512)),
    )
    user = queries.owner[rows]
    item = data.vocab.raw[items - 1]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    schema = graph.schema
    return pd.DataFrame(
        {
            "user": user,
            "item": item,
            "user_id": graph.ids[schema.user_type][user],
            "item_id": graph.ids[schema.item_type][item],
            "rank": rank.astype(np.int32),
            "score": scores.astype(np.float32),
        }
    )
