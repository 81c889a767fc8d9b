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

__all__ = ["MODEL_FORMAT", "load_hgt", "load_init", "save_hgt", "unwrap"]

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
    tensors = {k: v for k, v in load_file(path).items() if not k.startswith("som.")}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.startswith("som.")]
    if missing or unexpected:
        raise ValueError(
            f"init_model {path!r} does not fit the encoder (missing {missing}, "
            f"unexpected {unexpected})"
        )
    logger.info("Initialised the encoder from %s", path)
