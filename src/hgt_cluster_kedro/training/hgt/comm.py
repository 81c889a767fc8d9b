"""Collectives of HGT training: scalar all-reduce / broadcast and a DDP comm
hook that times the gradient all-reduce."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "CommTimer",
    "all_reduce",
    "broadcast",
    "collective_device",
    "sum_over_ranks",
    "timed_allreduce_hook",
]


def collective_device(device: torch.device) -> torch.device:
    """Where collectives run: the device with nccl, else the CPU (gloo)."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return device
    return torch.device("cpu")


def all_reduce(values: list[float], op: Any, device: torch.device) -> list[float]:
    """Scalars reduced over every rank."""
    t = torch.tensor(values, dtype=torch.float64, device=collective_device(device))
    dist.all_reduce(t, op=op)
    return t.cpu().tolist()


def broadcast(values: list[float], device: torch.device) -> list[float]:
    """Rank 0's scalars on every rank."""
    t = torch.tensor(values, dtype=torch.float64, device=collective_device(device))
    dist.broadcast(t, src=0)
    return t.cpu().tolist()


@dataclass
class CommTimer:
    """State of the DDP comm hook: seconds from all-reduce launch to completion
    (per bucket, summed; it overlaps the backward pass)."""

    world_size: int
    seconds: float = 0.0


def timed_allreduce_hook(state: CommTimer, bucket):  # noqa: ANN001, ANN202
    # No annotations: DDP checks them against dist.GradBucket / Future[Tensor],
    # which the postponed (string) annotations of this module would fail.
    start = time.perf_counter()
    buf = bucket.buffer().div_(state.world_size)
    fut = dist.all_reduce(buf, async_op=True).get_future()

    def done(f: torch.futures.Future) -> Tensor:
        state.seconds += time.perf_counter() - start
        return f.value()[0]

    return fut.then(done)


def sum_over_ranks(t: Tensor) -> Tensor:
    """``t`` summed over every rank, in place."""
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t
