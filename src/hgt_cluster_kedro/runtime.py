"""Runtime helpers shared by every trainer, clusterer and evaluator.

Seeds derived from integers, device resolution, the bf16 capability of the CPU,
numba's thread count and the peak memory of the process: one definition each,
imported by the domain packages (none of them imports Kedro).
"""

from __future__ import annotations

import os
import resource
import sys

import numpy as np
import torch

__all__ = [
    "cpu_has_bf16",
    "derive_seed",
    "match_numba_threads",
    "peak_rss_mb",
    "resolve_device",
]


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (NumPy ``SeedSequence``): distinct streams
    for ``(seed, purpose, rank, step, ...)``."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(
        1, dtype=np.uint64
    )
    return int(state[0] >> np.uint64(1))


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA (this process's ``LOCAL_RANK`` device) when present,
    else CPU; ``"cuda"`` without an index gets ``LOCAL_RANK``'s.

    Raises:
        ValueError: CUDA asked for but not available.
    """
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r} but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return dev


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (``ru_maxrss``)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX; Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def match_numba_threads() -> int:
    """Set numba's threads to torch's (the caller's thread budget, capped by
    ``NUMBA_NUM_THREADS``) before a parallel kernel; returns the count."""
    import numba

    want = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != want:
        numba.set_num_threads(want)
    return want
