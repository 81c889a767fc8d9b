"""Progress bars that stay quiet in logs.

On a terminal :func:`progress_bar` is a plain ``tqdm`` bar. When standard error
is not a terminal (CI, ``make run > log``, Kedro's log files) it refreshes only
every ~10 % of its total (``miniters``) and never on a timer, so a long loop
writes about ten lines instead of one per step.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

__all__ = ["progress_bar"]


def _interactive() -> bool:
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def progress_bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """A ``tqdm`` bar (same arguments) that prints ~10 lines when not on a
    terminal."""
    if not _interactive() and not kwargs.get("disable", False):
        total = kwargs.get("total")
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        if total:
            kwargs.setdefault("miniters", max(1, math.ceil(total / 10)))
            kwargs.setdefault("mininterval", 0.0)
            kwargs.setdefault("maxinterval", math.inf)
            kwargs.setdefault("dynamic_ncols", False)
    return tqdm(iterable, **kwargs)
