"""Project settings: hooks and configuration loading."""

from __future__ import annotations

import os

from hgt_cluster_kedro.hooks import (
    DaskClientHook,
    OutputPathCheckHook,
    RunConsistencyHook,
    RunEnvHook,
)

# No network at run time: no telemetry, whichever way kedro is started.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

# RunEnvHook records the environment before anything reads the pipelines
HOOKS = (RunEnvHook(), OutputPathCheckHook(), RunConsistencyHook(), DaskClientHook())


def numbered(prefix: str, count: int) -> list[str]:
    """``${numbered:f,334}`` in configuration: ``["f0", "f1", …, "f333"]`` (e.g.
    the feature columns of a bag-of-words matrix in ``graph.schema``)."""
    return [f"{prefix}{i}" for i in range(int(count))]


CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {"numbered": numbered},
}
