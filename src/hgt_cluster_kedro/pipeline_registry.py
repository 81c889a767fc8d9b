"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

#: Pipelines of the default run (``kedro run`` / ``make run``), in data order.
DEFAULT_PIPELINES = (
    "data_generation",
    "graph",
    "twhin",
    "hgt",
    "clustering",
    "som",
    "evaluation",
)


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``pipelines/`` and the default run."""
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipelines[name] for name in DEFAULT_PIPELINES if name in pipelines),
        Pipeline([]),
    )
    return pipelines
