"""The typed configuration of HGT training, its run identity and fingerprint."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_serializer,
    model_validator,
)

from ...graph.csr import EdgeType, HeteroCSR
from ...graph.negatives import NEGATIVE_SAMPLERS, PinSageHardParams
from .objectives import OBJECTIVES, ObjectiveParams

__all__ = [
    "Fanouts",
    "HGTTrainConfig",
    "fingerprint",
    "num_hops",
    "resolve_fanouts",
    "run_identity",
]

Fanouts = list[int] | dict[str, list[int]]

# Settings that may differ between a checkpoint and the run resuming from it
# (they extend or monitor training); any other difference is an error.
RESUMABLE_KEYS = (
    "epochs",
    "max_steps",
    "patience",
    "val_k",
    "val_max_users",
    "val_batch_size",
    "eval_fanouts",
    "val_mode",
    "restore_best",
    "checkpoint_every",
    "world_size",
)

#: Settings that never enter a checkpoint's configuration (how, not what).
NON_IDENTITY_KEYS = (
    "progress",
    "log_every",
    "checkpoint_dir",
    "resume",
    "num_threads",
    "keep_checkpoints",
    "device",
    "compile",
)


def _objectives_model() -> type[BaseModel]:
    """``hgt.train.objectives``: one optional block per registered objective
    (its ``Params``), unknown names rejected."""
    fields: dict[str, Any] = {
        name: (cls.Params | None, None) for name, cls in OBJECTIVES.items()
    }
    return create_model(
        "ObjectivesConfig", __config__=ConfigDict(extra="forbid"), **fields
    )


ObjectivesConfig = _objectives_model()


class HGTTrainConfig(BaseModel):
    """Hyper-parameters of :func:`~hgt_cluster_kedro.training.hgt.train_hgt`.

    Args:
        hidden: embedding size (multiple of ``heads``).
        heads: attention heads.
        layers: HGT layers (use as many as sampled hops).
        dropout: dropout probability.
        id_embedding_types: node types with an id embedding besides features
            (``None``: only types without features; ``"all"``; or a list).
        use_features: feed the graph's node features to the input layer
            (``False``: id embeddings only; every type then gets one).
        mode: ``"full"``: every step embeds the whole graph in one pass (exact
            neighbourhoods, fused attention kernels) and scores
            ``full_batch_size`` positives; ``"sampled"``: every step samples the
            ``fanouts`` neighbourhood of ``batch_size`` positives; ``"auto"``:
            full when the graph has at most ``full_max_edges`` message edges.
        full_max_edges: the ``auto`` threshold (edges of every relation,
            reverse twins included).
        fanouts: neighbours per hop (sampled mode), one list for every edge type
            or a dict ``{relation: list}`` keyed by relation name (``rev_*``
            names for the reverse twins) or ``"src__rel__dst"``; missing
            relations are not sampled.
        neighbourhood: how sampled mode picks a node's neighbours:
            ``uniform`` (``fanouts`` uniform draws per relation and hop) or
            ``pinsage`` (the ``fanouts`` most visited neighbours by short random
            walks, with their visit-count importance added as log to HGT's
            attention logits: PinSage's importance neighbourhoods and pooling,
            :class:`~hgt_cluster_kedro.graph.sampler.PinSageNeighborSampler`).
            Validation and inference on the full graph use every neighbour
            without importance.
        importance_walks: random walks per frontier node (``pinsage``).
        importance_walk_length: steps per walk (``pinsage``; at least 3 for a
            walk to come back to a neighbour through the neighbourhood).
        eval_fanouts: fanouts for validation embeddings in sampled mode
            (``None``: ``fanouts``; ``[-1, -1]``: every neighbour, exact).
        num_neg: negatives per side per positive.
        neg_mode: negative sampler by name
            (:data:`~hgt_cluster_kedro.graph.negatives.NEGATIVE_SAMPLERS`).
        hard_negatives: parameters of ``neg_mode: pinsage_hard`` (PinSage's
            hard negatives with a curriculum,
            :class:`~hgt_cluster_kedro.graph.negatives.PinSageHardParams`;
            ``None``: its defaults); only with that ``neg_mode``.
        remove_targets: remove every edge between the two endpoints of the
            step's positives from its message-passing graph (no shortcut).
        objectives: ``{name: parameters}`` of the objectives summed into the
            loss (each with its ``weight``), by name from
            :data:`~hgt_cluster_kedro.training.hgt.objectives.OBJECTIVES`.
        lr: AdamW learning rate.
        weight_decay: AdamW (decoupled) weight decay.
        batch_size: positives per step (per rank) in sampled mode.
        full_batch_size: positives per step (per rank) in full-graph mode.
        epochs: epochs (a resumed run continues up to it).
        max_steps: stop after this many optimiser steps in total (``None``: no cap).
        seed: seed of every random step.
        device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
        num_threads: ``torch.set_num_threads`` during training (restored after).
        checkpoint_every: write a checkpoint every this many steps (0: only at
            epoch ends and at the end); needs ``checkpoint_dir``.
        checkpoint_dir: checkpoint directory (``None``: no checkpoints).
        keep_checkpoints: checkpoints kept (0: all).
        resume: continue from the latest checkpoint (else delete them, start over).
        patience: epochs without validation Recall@K improvement before stopping
            (``None``: never stop early).
        val_k: K of the validation Recall@K.
        val_max_users: evaluate Recall@K on at most this many validation users
            (seeded sample; ``None``: all).
        val_batch_size: batch size of validation sampling / embedding.
        val_mode: how validation embeds the nodes: ``full``, one exact pass of
            the fused full-graph kernels (seconds on graphs that fit); ``sampled``,
            the ``eval_fanouts`` neighbourhoods by PyG ``HGTConv``; ``auto``
            (default): ``full`` up to ``full_max_edges`` message edges. A
            full-graph training run always validates in full.
        restore_best: return the weights of the best validation epoch.
        compile: ``torch.compile`` the model (dynamic shapes; sampled mode).
        progress: progress bar (rank 0; a line every ~10 % when not a terminal).
        log_every: log throughput and loss every this many steps (0: never).
        init_model: an HGT model file (:func:`~.model_io.save_hgt`) to start
            from instead of a random initialisation (e.g. the self-supervised
            model that the joint SOM fine-tunes); its architecture must match.
        init_embeddings: a safetensors file of ``{node type: [num_nodes, d]}``
            tables (e.g. TwHIN's) that start the id embeddings (warm start;
            :func:`~.model_io.load_init_embeddings`); ``d`` must equal
            ``hidden``. Applied before ``init_model``.
    """

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(default=64, gt=0)
    heads: int = Field(default=2, gt=0)
    layers: int = Field(default=2, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    id_embedding_types: Literal["all"] | list[str] | None = "all"
    use_features: bool = False
    mode: Literal["auto", "full", "sampled"] = "auto"
    full_max_edges: int = Field(default=20_000_000, ge=0)
    fanouts: Fanouts = Field(default_factory=lambda: [4, 2])
    eval_fanouts: Fanouts | None = None
    neighbourhood: Literal["uniform", "pinsage"] = "uniform"
    importance_walks: int = Field(default=50, ge=1)
    importance_walk_length: int = Field(default=3, ge=1)
    num_neg: int = Field(default=63, ge=1)
    neg_mode: str = "in_batch"
    hard_negatives: PinSageHardParams | None = None
    remove_targets: bool = True
    objectives: ObjectivesConfig = Field(  # type: ignore[valid-type]
        default_factory=lambda: ObjectivesConfig(link={})
    )
    lr: float = Field(default=1e-3, gt=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    batch_size: int = Field(default=512, gt=0)
    full_batch_size: int = Field(default=4096, gt=0)
    epochs: int = Field(default=10, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    seed: int = Field(default=0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(default=None, gt=0)
    checkpoint_every: int = Field(default=0, ge=0)
    checkpoint_dir: str | None = None
    keep_checkpoints: int = Field(default=2, ge=0)
    resume: bool = True
    patience: int | None = Field(default=3, ge=1)
    val_k: int = Field(default=20, gt=0)
    val_max_users: int | None = Field(default=None, gt=0)
    val_batch_size: int = Field(default=1024, gt=0)
    val_mode: Literal["auto", "full", "sampled"] = "auto"
    restore_best: bool = True
    compile: bool = False
    progress: bool = True
    log_every: int = Field(default=50, ge=0)
    init_model: str | None = None
    init_embeddings: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HGTTrainConfig:
        if self.hidden % self.heads:
            raise ValueError(
                f"hidden={self.hidden} must be divisible by heads={self.heads}"
            )
        if self.checkpoint_every and self.checkpoint_dir is None:
            raise ValueError(
                f"checkpoint_every={self.checkpoint_every} needs a checkpoint_dir"
            )
        if self.neg_mode not in NEGATIVE_SAMPLERS:
            raise ValueError(
                f"neg_mode={self.neg_mode!r} is not a negative sampler (known: "
                f"{sorted(NEGATIVE_SAMPLERS)})"
            )
        if self.neighbourhood == "pinsage" and self.mode == "full":
            raise ValueError(
                "neighbourhood='pinsage' samples neighbourhoods: it needs mode "
                "sampled (or auto on a graph above full_max_edges), got mode='full'"
            )
        if self.hard_negatives is not None and self.neg_mode != "pinsage_hard":
            raise ValueError(
                f"hard_negatives is set but neg_mode={self.neg_mode!r} (it "
                "parameterises neg_mode: pinsage_hard)"
            )
        hard = self.hard_negatives or PinSageHardParams()
        if self.neg_mode == "pinsage_hard" and (hard.hard_max or 0) > self.num_neg:
            raise ValueError(
                f"hard_negatives.hard_max={hard.hard_max} must be <= "
                f"num_neg={self.num_neg}"
            )
        if self.neg_mode == "in_batch" or (
            self.neg_mode == "pinsage_hard" and hard.easy == "in_batch"
        ):
            for name in ("batch_size", "full_batch_size"):
                if getattr(self, name) < self.num_neg + 1:
                    raise ValueError(
                        f"{name}={getattr(self, name)} is too small for "
                        f"num_neg={self.num_neg} in-batch negatives (needs >= "
                        f"{self.num_neg + 1})"
                    )
        if not self.objective_params():
            raise ValueError("objectives must name at least one objective")
        for name in ("fanouts", "eval_fanouts"):
            value = getattr(self, name)
            lists = value.values() if isinstance(value, dict) else [value]
            for fan in lists:
                if fan is None:
                    continue
                if not fan or any(k < -1 for k in fan):
                    raise ValueError(
                        f"{name} must be non-empty lists of ints >= -1 (got {value})"
                    )
        return self

    @field_serializer("objectives")
    def _dump_objectives(self, value: BaseModel) -> dict[str, Any]:
        return value.model_dump(exclude_none=True)

    def objective_params(self) -> dict[str, ObjectiveParams]:
        """``{name: parameters}`` of the configured objectives."""
        return {
            name: params
            for name in OBJECTIVES
            if (params := getattr(self.objectives, name, None)) is not None
        }

    def use_full_graph(self, num_edges: int) -> bool:
        """Whether this run trains in full-graph mode on a graph of
        ``num_edges`` message edges."""
        if self.mode == "auto":
            return num_edges <= self.full_max_edges
        return self.mode == "full"


def _drop_unused_options(data: dict[str, Any]) -> None:
    """Leave out the PinSage options when unused, so the identity of a run
    without them is what it was before they existed (older checkpoints)."""
    if data.get("hard_negatives") is None:
        data.pop("hard_negatives", None)
    if data.get("neighbourhood") == "uniform":
        for key in ("neighbourhood", "importance_walks", "importance_walk_length"):
            data.pop(key, None)


def run_identity(cfg: HGTTrainConfig) -> dict[str, Any]:
    """The settings that decide whether a run can resume another one's
    checkpoints: everything but how it runs and what may change on resume."""
    data = cfg.model_dump(mode="json")
    for key in (*NON_IDENTITY_KEYS, *RESUMABLE_KEYS):
        data.pop(key, None)
    _drop_unused_options(data)
    return data


def fingerprint(
    cfg: HGTTrainConfig,
    model_config: Mapping[str, Any],
    world_size: int,
    num_edges: int,
) -> dict[str, Any]:
    """What a checkpoint records of its run (compared on resume)."""
    data = cfg.model_dump(mode="json")
    for key in NON_IDENTITY_KEYS:
        data.pop(key, None)
    _drop_unused_options(data)
    data["model"] = dict(model_config)
    data["world_size"] = world_size
    data["num_train_edges"] = num_edges
    return json.loads(json.dumps(data))


def resolve_fanouts(
    csr: HeteroCSR, fanouts: Fanouts
) -> list[int] | dict[EdgeType, list[int]]:
    """Sampler fanouts from a config value: a list, or a dict keyed by relation
    name (``"follow_note"``, ``"rev_follow_note"``) or ``"src__rel__dst"``.

    Args:
        csr: the graph (its edge types resolve the names).
        fanouts: list of ints per hop, or dict of such lists.
    """
    if isinstance(fanouts, Mapping):
        out: dict[EdgeType, list[int]] = {}
        for key, value in fanouts.items():
            if isinstance(key, tuple):
                et = tuple(key)
            elif "__" in key:
                et = tuple(key.split("__"))
            else:
                matches = [et for et in csr.edge_types if et[1] == key]
                if len(matches) != 1:
                    raise ValueError(
                        f"fanouts: relation {key!r} is "
                        f"{'ambiguous' if matches else 'unknown'} (edge types: "
                        f"{csr.edge_types})"
                    )
                et = matches[0]
            if et not in csr.indptr:
                raise ValueError(
                    f"fanouts: edge type {key!r} is unknown (edge types: "
                    f"{csr.edge_types})"
                )
            out[et] = [int(k) for k in value]  # type: ignore[index]
        return out
    return [int(k) for k in fanouts]


def num_hops(fanouts: list[int] | dict[EdgeType, list[int]]) -> int:
    """Hops sampled by resolved fanouts."""
    if isinstance(fanouts, dict):
        return len(next(iter(fanouts.values())))
    return len(fanouts)
