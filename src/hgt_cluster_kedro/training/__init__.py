"""Training loops, the torchrun launcher and checkpoints (no Kedro)."""

from .checkpoint import (
    atomic_write,
    flatten_state,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    unflatten_state,
)
from .distributed import join_command, launch, train_distributed
from .hgt import HGTTrainConfig, embed_all, load_hgt, save_hgt, train_hgt
from .twhin_trainer import (
    DenseAdagrad,
    RowAdagrad,
    load_twhin,
    resolve_relations,
    train_twhin,
)

__all__ = [
    "DenseAdagrad",
    "HGTTrainConfig",
    "embed_all",
    "join_command",
    "launch",
    "load_hgt",
    "save_hgt",
    "train_distributed",
    "train_hgt",
    "RowAdagrad",
    "atomic_write",
    "flatten_state",
    "latest_checkpoint",
    "load_checkpoint",
    "load_twhin",
    "resolve_relations",
    "save_checkpoint",
    "train_twhin",
    "unflatten_state",
]
