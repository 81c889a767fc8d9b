"""HGT model files: the encoder's ``state_dict`` (safetensors, atomic) with its
constructor configuration in the header; no pickle."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ...models.hgt import HGTEncoder
from ..checkpoint import atomic_write

logger = logging.getLogger(__name__)

__all__ = [
    "MODEL_FORMAT",
    "load_hgt",
    "load_init",
    "load_init_embeddings",
    "save_hgt",
    "unwrap",
]

MODEL_FORMAT = "hgt_model"
VERSION = 1


def unwrap(model: torch.nn.Module) -> HGTEncoder:
    """The :class:`HGTEncoder` inside DDP / ``torch.compile`` wrappers."""
    inner = getattr(model, "_orig_mod", model)  # torch.compile
    inner = getattr(inner, "module", inner)  # DistributedDataParallel
    if not isinstance(inner, HGTEncoder):
        raise ValueError(f"model must be an HGTEncoder (got {type(inner).__name__})")
    return inner


def save_hgt(
    model: torch.nn.Module, path: str | Path, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write the encoder's ``state_dict`` (safetensors, atomic) with its
    constructor config in the header, so :func:`load_hgt` rebuilds it.

    Args:
        model: an :class:`HGTEncoder` (DDP / compiled wrappers are unwrapped).
        path: destination ``.safetensors`` file.
        extra: JSON-serialisable metadata stored alongside (e.g. history summary).
    """
    from safetensors.torch import save_file

    inner = unwrap(model)
    tensors = {
        k: v.detach().to("cpu").contiguous() for k, v in inner.state_dict().items()
    }
    header = {
        "format": MODEL_FORMAT,
        "version": str(VERSION),
        "config": json.dumps(inner.config),
        "extra": json.dumps(dict(extra or {})),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), header))


def _model_header(path: str | Path, name: str) -> dict[str, str]:
    """The header of an HGT model file written by :func:`save_hgt`; ``name`` is
    the argument named in the errors."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise ValueError(f"{name} {str(path)!r} is not a file")
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    if header.get("format") != MODEL_FORMAT:
        raise ValueError(f"{name} {str(path)!r} is not an HGT model file")
    return header


def load_hgt(path: str | Path, device: str | torch.device = "cpu") -> HGTEncoder:
    """Rebuild the encoder written by :func:`save_hgt` (in eval mode).

    Args:
        path: the ``.safetensors`` file.
        device: where to put the model.
    """
    from safetensors.torch import load_file

    header = _model_header(path, "path")
    model = HGTEncoder.from_config(json.loads(header["config"]))
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()


def load_init(model: HGTEncoder, path: str) -> None:
    """Load the encoder weights of the model file ``path`` (``init_model``)."""
    from safetensors.torch import load_file

    stored = json.loads(_model_header(path, "init_model")["config"])
    ours = model.config
    keys = ("node_types", "edge_types", "num_nodes", "feature_dims", "hidden")
    keys += ("heads", "num_layers", "id_embedding_types")
    differ = {k: (stored.get(k), ours[k]) for k in keys if stored.get(k) != ours[k]}
    if differ:
        raise ValueError(
            f"init_model {path!r} has another architecture: "
            + ", ".join(
                f"{k}: {a!r} (file) vs {b!r} (run)" for k, (a, b) in differ.items()
            )
        )
    # objective state (SOM centres, prototypes) belongs to the run that made it:
    # a run starts its own
    own = ("som.", "prototypes.")
    tensors = {k: v for k, v in load_file(path).items() if not k.startswith(own)}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.startswith(own)]
    if missing or unexpected:
        raise ValueError(
            f"init_model {path!r} does not fit the encoder (missing {missing}, "
            f"unexpected {unexpected})"
        )
    logger.info("Initialised the encoder from %s", path)


def load_init_embeddings(model: HGTEncoder, path: str) -> list[str]:
    """Start the id embeddings of ``model`` from the tables in ``path``.

    ``path`` is a safetensors file of ``{node type: [num_nodes, d]}`` tables,
    e.g. the embeddings of a TwHIN run on the same graph (a warm start: the
    encoder begins from shallow embeddings that already separate the graph's
    communities and learns how to aggregate neighbourhoods on top). Each
    table is standardised per dimension and scaled to the standard deviation
    of the table it replaces, so the encoder's input statistics do not change.
    Types without a table (or without an id embedding) keep their random
    initialisation.

    Returns:
        The node types whose id embeddings were replaced.

    Raises:
        ValueError: a table's shape is not ``[num_nodes, hidden]`` of its type.
    """
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise ValueError(f"init_embeddings {str(path)!r} is not a file")
    tables = load_file(str(path))
    done = []
    with torch.no_grad():
        for t, emb in model.id_embeddings.items():
            if t not in tables:
                continue
            table = tables[t].to(emb.weight.dtype)
            if tuple(table.shape) != tuple(emb.weight.shape):
                raise ValueError(
                    f"init_embeddings {path!r}: table {t!r} has shape "
                    f"{tuple(table.shape)}, the encoder's id embedding of {t!r} "
                    f"is {tuple(emb.weight.shape)} (num_nodes x hidden)"
                )
            std = emb.weight.std()
            table = (table - table.mean(0)) / table.std(0).clamp(min=1e-12)
            emb.weight.copy_(table * std)
            done.append(t)
    logger.info("Id embeddings of %s started from %s", done, path)
    return done
