"""Pickle-free, atomic training checkpoints (safetensors + JSON metadata).

A checkpoint is one ``.safetensors`` file: tensors (model, optimiser state, RNG
state) plus a JSON document in the header. Nested state dicts (e.g.
``optimizer.state_dict()``) are flattened by :func:`flatten_state` into tensors
and a JSON skeleton that keeps key types (int keys of ``state``), tuples and
scalars, and rebuilt exactly by :func:`unflatten_state`. Files are written to a
temporary file in the same directory, flushed to disk and moved into place with
``os.replace``, so a crash never leaves a partial checkpoint under the final
name. Nothing here is specific to a model; every trainer of the project reuses
it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = [
    "atomic_write",
    "changed_keys",
    "checkpoint_path",
    "flatten_state",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checked",
    "load_checkpoint",
    "prune_checkpoints",
    "save_checkpoint",
    "strip_prefix",
    "unflatten_state",
]

_META_KEY = "checkpoint"
_TENSOR = "__tensor__"
_TUPLE = "__tuple__"
_DICT = "__dict__"


def _temp_tag() -> str:
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"
    return f"{host}-{os.getpid()}-"


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically move the file to ``path``.

    The temporary file lives in the directory of ``path`` (so ``os.replace`` is
    a rename on the same file system) and is removed if ``write`` fails.

    Args:
        path: final file name; its directory is created if missing.
        write: function writing the whole file to the path it is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # host and pid in the name: a later run knows when it is stale
    # (hgt_cluster_kedro.datasets._versions.clean_stale_temporaries)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.{_temp_tag()}", suffix=".tmp", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, Tensor], Any]:
    """Split a nested state (dicts, lists, tuples, tensors, scalars) in two.

    Args:
        state: e.g. ``optimizer.state_dict()`` or ``module.state_dict()``.
        prefix: prefix of the tensor keys (keeps several states apart in one file).

    Returns:
        ``(tensors, skeleton)``: tensors keyed ``prefix + path`` (contiguous CPU
        clones, safe for safetensors), and a JSON-serialisable skeleton where each
        tensor is replaced by ``{"__tensor__": key}``.
    """
    tensors: dict[str, Tensor] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, Tensor):
            key = prefix + path
            tensors[key] = obj.detach().to("cpu").contiguous().clone()
            return {_TENSOR: key}
        if isinstance(obj, Mapping):
            items = []
            for k, v in obj.items():
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise ValueError(
                        f"state keys must be str or int (got {k!r} at {path!r})"
                    )
                items.append([k, walk(v, f"{path}/{k}" if path else str(k))])
            return {_DICT: items}
        if isinstance(obj, tuple):
            return {_TUPLE: [walk(v, f"{path}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(obj)]
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise ValueError(
            f"cannot checkpoint value of type {type(obj).__name__} at {path!r}"
        )

    return tensors, walk(state, "")


def unflatten_state(tensors: Mapping[str, Tensor], skeleton: Any) -> Any:
    """Inverse of :func:`flatten_state`.

    Args:
        tensors: the tensors (at least those the skeleton refers to).
        skeleton: the skeleton returned by :func:`flatten_state`.
    """

    def build(obj: Any) -> Any:
        if isinstance(obj, dict):
            if _TENSOR in obj:
                key = obj[_TENSOR]
                if key not in tensors:
                    raise ValueError(f"checkpoint is missing tensor {key!r}")
                return tensors[key]
            if _TUPLE in obj:
                return tuple(build(v) for v in obj[_TUPLE])
            if _DICT in obj:
                return {k: build(v) for k, v in obj[_DICT]}
            raise ValueError(f"malformed checkpoint skeleton node: {sorted(obj)}")
        if isinstance(obj, list):
            return [build(v) for v in obj]
        return obj

    return build(skeleton)


def save_checkpoint(
    path: str | Path, tensors: Mapping[str, Tensor], metadata: Mapping[str, Any]
) -> Path:
    """Write ``tensors`` and JSON ``metadata`` to one safetensors file, atomically.

    Args:
        path: destination file (``.safetensors``).
        tensors: flat name -> tensor mapping (see :func:`flatten_state`).
        metadata: JSON-serialisable document stored in the file header.
    """
    from safetensors.torch import save_file

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    header = {_META_KEY: json.dumps(metadata)}
    return atomic_write(path, lambda tmp: save_file(flat, str(tmp), metadata=header))


def load_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a file written by :func:`save_checkpoint`: ``(tensors, metadata)``.

    Args:
        path: checkpoint file.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a checkpoint file")
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    if _META_KEY not in header:
        raise ValueError(f"path {str(path)!r} holds no checkpoint metadata")
    return load_file(str(path)), json.loads(header[_META_KEY])


def load_checked(
    path: str | Path, fmt: str, version: int, what: str
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """:func:`load_checkpoint`, then check the metadata's ``format``/``version``.

    Args:
        path: checkpoint file.
        fmt: expected ``metadata["format"]``.
        version: expected ``metadata["version"]``.
        what: how to name the file in the error (e.g. ``"checkpoint_dir: ..."``).
    """
    tensors, meta = load_checkpoint(path)
    if meta.get("format") != fmt or meta.get("version") != version:
        raise ValueError(f"{what} {str(path)!r} is not a {fmt} of version {version}")
    return tensors, meta


def changed_keys(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Sorted keys whose values differ between two flat configurations."""
    return sorted(
        k for k in set(stored) | set(current) if stored.get(k) != current.get(k)
    )


def strip_prefix(tensors: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The tensors whose key starts with ``prefix``, keyed without it."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def checkpoint_path(
    directory: str | Path, prefix: str, index: int, unit: str = "epoch"
) -> Path:
    """``<directory>/<prefix>-<unit><index>.safetensors`` (epochs: 5 digits,
    steps: 8)."""
    width = 5 if unit == "epoch" else 8
    return Path(directory) / f"{prefix}-{unit}{int(index):0{width}d}.safetensors"


def list_checkpoints(
    directory: str | Path, prefix: str, unit: str = "epoch"
) -> list[tuple[int, Path]]:
    """``(index, path)`` of every checkpoint of ``prefix`` in ``directory``
    (index = epoch or step, as ``unit`` says), sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(prefix)}-{re.escape(unit)}(\d+)\.safetensors$")
    found = []
    for p in directory.iterdir():
        m = pattern.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(
    directory: str | Path,
    prefix: str,
    max_epoch: int | None = None,
    unit: str = "epoch",
) -> tuple[int, Path] | None:
    """The checkpoint with the highest index (``<= max_epoch`` if given), or None."""
    found = [
        (e, p)
        for e, p in list_checkpoints(directory, prefix, unit)
        if max_epoch is None or e <= max_epoch
    ]
    return found[-1] if found else None


def prune_checkpoints(
    directory: str | Path,
    prefix: str,
    keep: int,
    current_epoch: int,
    unit: str = "epoch",
) -> None:
    """Delete the checkpoints of ``prefix`` up to ``current_epoch`` but the
    ``keep`` latest (checkpoints of later indices are left alone).

    Args:
        directory: checkpoint directory.
        prefix: file name prefix.
        keep: number of checkpoints to keep (``<= 0`` keeps all).
        current_epoch: the index (epoch or step) just written.
        unit: ``"epoch"`` or ``"step"`` (the file names' index).
    """
    if keep <= 0:
        return
    found = [
        (i, p)
        for i, p in list_checkpoints(directory, prefix, unit)
        if i <= current_epoch
    ]
    for _, path in found[:-keep]:
        path.unlink(missing_ok=True)
        logger.debug("Removed old checkpoint %s", path)
