"""Nodes of ``hgt``: resolve the configuration, launch torchrun, embed.

The node never runs training itself: it writes the worker configuration and
starts ``torchrun`` workers that run only
:mod:`hgt_cluster_kedro.training.hgt_worker` (running DDP inside a Kedro node
would run the whole node once per rank). Rank 0 writes the model; the node then
loads it, embeds every user and item, and returns them to the catalog.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.torch import load_file

from hgt_cluster_kedro.embeddings import to_frame
from hgt_cluster_kedro.graph import GraphArtifact
from hgt_cluster_kedro.training.distributed import join_command, train_distributed
from hgt_cluster_kedro.training.hgt_trainer import (
    HGTTrainConfig,
    embed_all,
    load_hgt,
    peak_rss_mb,
    run_identity,
)

from .._common import run_fingerprint

logger = logging.getLogger(__name__)


def _user_owners(
    graph: GraphArtifact, partitions: dict[str, pd.DataFrame]
) -> np.ndarray:
    owners = partitions["owners"]
    users = owners[owners["node_type"] == graph.schema.user_type].sort_values("node")
    if len(users) != graph.num_nodes[graph.schema.user_type]:
        raise ValueError(
            "graph_partitions does not match the graph: "
            f"{len(users)} owned users vs {graph.num_nodes[graph.schema.user_type]}"
        )
    return users["part"].to_numpy()


def train(
    graph: GraphArtifact,
    interactions: pd.DataFrame,
    partitions: dict[str, pd.DataFrame],
    params: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Train HGT with torchrun (``params.launch``) and embed users and items.

    Returns the model (tensors + config), user and item embeddings keyed by
    original ids, and a training summary (time, peak memory, history).
    """
    launch = dict(params.get("launch") or {})
    inference = dict(params.get("inference") or {})
    # the run directory is keyed by what the trainer's resume rules compare, so a
    # rerun that may resume lands in the same directory and finds its checkpoints
    config = HGTTrainConfig.model_validate(
        {"checkpoint_dir": "<run dir>", **params["train"]}
    )
    fingerprint = run_fingerprint(run_identity(config), graph.summary())
    out_dir = Path(params["run_dir"]) / f"hgt-{fingerprint}"
    if config.checkpoint_dir == "<run dir>":
        config = config.model_copy(
            update={"checkpoint_dir": str(out_dir / "checkpoints")}
        )
    owners = _user_owners(graph, partitions) if params.get("use_partitions") else None
    logger.info(
        "Launching HGT training: %s process(es) x %s node(s), run dir %s",
        launch.get("nproc_per_node", 2),
        launch.get("nnodes", 1),
        out_dir,
    )
    if int(launch.get("nnodes", 1)) > 1:
        keys = ("nproc_per_node", "nnodes", "rdzv_endpoint", "rdzv_backend")
        keys += ("max_restarts", "threads_per_worker", "run_id")
        join_args = {k: launch[k] for k in keys if k in launch}
        logger.info(
            "Other machines join with:\n  %s",
            join_command(out_dir / "work" / "worker_config.json", **join_args),
        )
    start = time.perf_counter()
    model_path, history = train_distributed(
        graph, interactions, config, out_dir, owners=owners, **launch
    )
    train_seconds = time.perf_counter() - start
    model = load_hgt(model_path)
    start = time.perf_counter()
    fanouts = inference.get("fanouts")
    emb = {
        t: embed_all(
            model,
            graph,
            t,
            batch_size=int(inference.get("batch_size", 1024)),
            fanouts=fanouts,
            seed=int(inference.get("seed", 0)),
        )
        for t in (graph.schema.user_type, graph.schema.item_type)
    }
    infer_seconds = time.perf_counter() - start
    summary = {
        "method": "hgt",
        "embedding_dim": config.hidden,
        "train_seconds": train_seconds,
        "inference_seconds": infer_seconds,
        "peak_memory_mb": max(
            peak_rss_mb(), float(np.max(history.get("peak_rss_mb", [0.0]) or [0.0]))
        ),
        "history": history,
        "launch": launch,
        "params": config.model_dump(),
    }
    state = {"tensors": load_file(str(model_path)), "metadata": model.config}
    return (
        state,
        to_frame(graph.ids[graph.schema.user_type], emb[graph.schema.user_type]),
        to_frame(graph.ids[graph.schema.item_type], emb[graph.schema.item_type]),
        summary,
    )
