"""Nodes of ``hgt``: resolve the configuration, launch torchrun, embed.

The node never runs training itself: it writes the worker configuration and
starts ``torchrun`` workers that run only
:mod:`hgt_cluster_kedro.training.hgt_worker` (running DDP inside a Kedro node
would run the whole node once per rank). Rank 0 writes the model; the node then
loads it, embeds every user and item, and returns them to the catalog.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from hgt_cluster_kedro.config import HGTParams, HGTSomJointParams
from hgt_cluster_kedro.config.sections import RUN_DIR
from hgt_cluster_kedro.embeddings import from_frame, to_frame
from hgt_cluster_kedro.graph import GraphArtifact
from hgt_cluster_kedro.models.hgt import HGTEncoder
from hgt_cluster_kedro.runtime import peak_rss_mb
from hgt_cluster_kedro.training.checkpoint import atomic_write
from hgt_cluster_kedro.training.distributed import join_command, train_distributed
from hgt_cluster_kedro.training.hgt import (
    HGTTrainConfig,
    embed_all,
    load_hgt,
    run_identity,
    save_hgt,
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


def _launch_and_embed(
    graph: GraphArtifact,
    interactions: pd.DataFrame,
    partitions: dict[str, pd.DataFrame],
    params: HGTParams,
    config: HGTTrainConfig,
    *,
    name: str,
    init_model: dict[str, Any] | None = None,
    init_tables: dict[str, torch.Tensor] | None = None,
) -> tuple[HGTEncoder, dict[str, Any], pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Resolve the configuration, train through torchrun, embed users and items.

    Returns the trained encoder, its catalog form (tensors + config), user and
    item embeddings keyed by original ids, and the training summary.
    """
    launch = params.launch.kwargs()
    inference = params.inference
    # the run directory is keyed by what the trainer's resume rules compare, so a
    # rerun that may resume lands in the same directory and finds its checkpoints
    init_key = None if init_model is None else _state_digest(init_model)
    tables_key = None
    if init_tables is not None:
        tables_key = _state_digest({"metadata": {}, "tensors": init_tables})
    fingerprint = run_fingerprint(
        run_identity(config), graph.summary(), init_key, tables_key
    )
    out_dir = Path(params.run_dir) / f"{name}-{fingerprint}"
    if config.checkpoint_dir == RUN_DIR:
        config = config.model_copy(
            update={"checkpoint_dir": str(out_dir / "checkpoints")}
        )
    if init_model is not None:
        encoder = HGTEncoder.from_config(init_model["metadata"])
        encoder.load_state_dict(init_model["tensors"])
        path = save_hgt(encoder, out_dir / "init_model.safetensors")
        config = config.model_copy(update={"init_model": str(path)})
    if init_tables is not None:
        from safetensors.torch import save_file

        path = out_dir / "init_embeddings.safetensors"
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: save_file(init_tables, str(p)))
        config = config.model_copy(update={"init_embeddings": str(path)})
    owners = _user_owners(graph, partitions) if params.use_partitions else None
    logger.info(
        "Launching %s training: %s process(es) x %s node(s), run dir %s",
        name,
        launch["nproc_per_node"],
        launch["nnodes"],
        out_dir,
    )
    if launch["nnodes"] > 1:
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
    emb = {
        t: embed_all(
            model,
            graph,
            t,
            batch_size=inference.batch_size,
            fanouts=inference.fanouts,
            seed=inference.seed,
        )
        for t in (graph.schema.user_type, graph.schema.item_type)
    }
    infer_seconds = time.perf_counter() - start
    recorded_seconds = history.get("train_seconds", 0.0) + sum(
        history.get("val_seconds", [])
    )
    summary = {
        "method": name,
        "embedding_dim": config.hidden,
        # a rerun that resumes a finished run trains for ~0 s: report the step
        # and validation time of every session (restored from the checkpoints)
        "train_seconds": max(train_seconds, float(recorded_seconds)),
        "wall_seconds": train_seconds,
        "inference_seconds": infer_seconds,
        "peak_memory_mb": max(
            peak_rss_mb(), float(np.max(history.get("peak_rss_mb", [0.0]) or [0.0]))
        ),
        "history": history,
        "launch": launch,
        "params": config.model_dump(),
    }
    state = {"tensors": load_file(str(model_path)), "metadata": model.config}
    user_t, item_t = graph.schema.user_type, graph.schema.item_type
    return (
        model,
        state,
        to_frame(graph.ids[user_t], emb[user_t]),
        to_frame(graph.ids[item_t], emb[item_t]),
        summary,
    )


def _state_digest(model: dict[str, Any]) -> str:
    """Content hash of a catalog model (tensors + config)."""
    h = hashlib.sha256(json.dumps(model["metadata"], sort_keys=True).encode())
    for key in sorted(model["tensors"]):
        h.update(key.encode())
        h.update(model["tensors"][key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def train(
    graph: GraphArtifact,
    interactions: pd.DataFrame,
    partitions: dict[str, pd.DataFrame],
    twhin_model: dict[str, Any],
    params: HGTParams,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Train HGT with torchrun (``params.launch``) and embed users and items.

    With ``params.warm_start: twhin`` the id embeddings start from the TwHIN
    run's tables (``twhin_model``); otherwise it is not read.

    Returns the model (tensors + config), user and item embeddings keyed by
    original ids, and a training summary (time, peak memory, history).
    """
    params = HGTParams.model_validate(params)
    tables = None
    if params.warm_start == "twhin":
        tables = twhin_tables(twhin_model, params.train.hidden)
    _, state, users, items, summary = _launch_and_embed(
        graph,
        interactions,
        partitions,
        params,
        params.train,
        name="hgt",
        init_tables=tables,
    )
    return state, users, items, summary


def twhin_tables(twhin_model: dict[str, Any], hidden: int) -> dict[str, torch.Tensor]:
    """``{node type: table}`` of a catalog TwHIN model (``twhin_model``), checked
    against the HGT width ``hidden``."""
    prefix = "embeddings."
    tables = {
        key[len(prefix) :]: value.detach().float().contiguous()
        for key, value in twhin_model["tensors"].items()
        if key.startswith(prefix)
    }
    if not tables:
        raise ValueError(
            "hgt.warm_start: twhin needs the twhin_model artifact with embedding "
            f"tables (got keys {sorted(twhin_model['tensors'])[:5]})"
        )
    dims = {int(t.shape[1]) for t in tables.values()}
    if dims != {int(hidden)}:
        raise ValueError(
            f"hgt.warm_start: twhin needs twhin.dim ({sorted(dims)}) to equal "
            f"hgt.train.hidden ({hidden}); change one, or set hgt.warm_start: null"
        )
    return tables


def train_joint_som(
    graph: GraphArtifact,
    interactions: pd.DataFrame,
    partitions: dict[str, pd.DataFrame],
    hgt_model: dict[str, Any],
    *,
    params: HGTParams,
    joint: HGTSomJointParams,
) -> tuple[
    dict[str, Any],
    pd.DataFrame,
    pd.DataFrame,
    dict[str, Any],
    pd.DataFrame,
    pd.DataFrame,
]:
    """Fine-tune the self-supervised HGT jointly with a SOM (the original's
    HGT + SOM), through the same torchrun launcher.

    ``joint.train`` overrides ``params.train``; its ``objectives`` include the
    joint SOM (``som``). Users are clustered by their winning SOM centre.

    Returns the model, user and item embeddings, the training summary, the user
    clusters (``id``, ``cluster``) and the centres (``cluster``, ``e0 …``,
    ``size``).
    """
    params = HGTParams.model_validate(params)
    joint = HGTSomJointParams.model_validate(joint)
    config = joint.train_config(params)
    users = graph.num_nodes[graph.schema.user_type]
    centres = config.objective_params()["som"].num_centres
    if centres > users:  # before torchrun: no retried workers
        raise ValueError(
            f"hgt_som_joint.train.objectives.som.num_centres={centres} is larger "
            f"than the {users} users of the graph"
        )
    model, state, users, items, summary = _launch_and_embed(
        graph,
        interactions,
        partitions,
        params,
        config,
        name="hgt_som_joint",
        init_model=hgt_model,
    )
    assert model.som is not None  # guaranteed by the som setting
    emb = torch.from_numpy(from_frame(users, users["id"].to_numpy()))
    clusters = model.som.assign(emb).numpy().astype(np.int32)
    k = model.som.num_centres
    sizes = np.bincount(clusters, minlength=k)
    summary["som"] = {
        "num_centres": k,
        "empty_centres": int((sizes == 0).sum()),
        "quantization_error": float(
            model.som.distances(emb).min(dim=1).values.sqrt().mean()
        ),
    }
    logger.info(
        "Joint SOM: %d centres, %d empty, quantisation error %.4f",
        k,
        summary["som"]["empty_centres"],
        summary["som"]["quantization_error"],
    )
    centres = pd.DataFrame(
        model.som.centres.numpy().astype(np.float32),
        columns=[f"e{j}" for j in range(model.som.dim)],
    )
    centres.insert(0, "cluster", np.arange(k, dtype=np.int32))
    centres["size"] = sizes
    return (
        state,
        users,
        items,
        summary,
        pd.DataFrame({"id": users["id"].to_numpy(), "cluster": clusters}),
        centres,
    )
