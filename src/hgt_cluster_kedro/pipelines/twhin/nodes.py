"""Nodes of ``twhin``: thin wrappers over :mod:`hgt_cluster_kedro.training`."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from hgt_cluster_kedro.config import TwhinParams
from hgt_cluster_kedro.embeddings import to_frame
from hgt_cluster_kedro.graph import GraphArtifact
from hgt_cluster_kedro.models.twhin import embeddings
from hgt_cluster_kedro.runtime import peak_rss_mb
from hgt_cluster_kedro.training.twhin_trainer import train_twhin

from .._common import checkpoint_dir, run_fingerprint

logger = logging.getLogger(__name__)


def train(
    graph: GraphArtifact, params: TwhinParams
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Train TwHIN on the train graph; return the model, user and item
    embeddings keyed by original ids, and a training summary.

    Checkpoints go to ``<checkpoint_dir>/twhin-<fingerprint>`` (one directory per
    parameters and graph), so a rerun with the same inputs resumes, and a
    changed one starts fresh.
    """
    cfg = TwhinParams.model_validate(params)
    params = cfg.train_kwargs()
    # how long to wait for another run's lock is not part of the run's identity
    lock_wait_s = params.pop("lock_wait_s")
    ckpt = checkpoint_dir(
        cfg.checkpoint_dir,
        "twhin",
        run_fingerprint(params, graph.summary()),
    )
    start = time.perf_counter()
    model, history = train_twhin(
        graph.csr, checkpoint_dir=ckpt, lock_wait_s=lock_wait_s, **params
    )
    seconds = time.perf_counter() - start
    user_t, item_t = graph.schema.user_type, graph.schema.item_type
    summary = {
        "method": "twhin",
        "embedding_dim": model.dim,
        # a rerun that resumes a finished run trains for ~0 s: report the
        # training time of every epoch (restored from the checkpoint history)
        "train_seconds": max(seconds, float(sum(history.get("seconds", [])))),
        "wall_seconds": seconds,
        "peak_memory_mb": peak_rss_mb(),
        "epochs": len(history.get("loss", [])),
        "history": history,
        "params": params,
    }
    logger.info(
        "TwHIN trained in %.1f s, final loss %s",
        seconds,
        history.get("loss", [None])[-1],
    )
    state = {
        "tensors": dict(model.state_dict()),
        "metadata": {
            "num_nodes": model.num_nodes,
            "relations": [list(r) for r in model.relations],
            "dim": model.dim,
        },
    }
    return (
        state,
        to_frame(graph.ids[user_t], embeddings(model, user_t)),
        to_frame(graph.ids[item_t], embeddings(model, item_t)),
        summary,
    )
