"""Training loops and checkpoints (no Kedro)."""

from .checkpoint import (
    atomic_write,
    flatten_state,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    unflatten_state,
)
from .twhin_trainer import (
    DenseAdagrad,
    RowAdagrad,
    load_twhin,
    resolve_relations,
    train_twhin,
)

__all__ = [
    "DenseAdagrad",
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
