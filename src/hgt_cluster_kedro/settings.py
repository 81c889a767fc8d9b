"""Project settings: hooks and configuration loading."""

from __future__ import annotations

import os

from hgt_cluster_kedro.config_loader import ProjectConfigLoader
from hgt_cluster_kedro.hooks import (
    DaskClientHook,
    NodeTimerHook,
    OutputPathCheckHook,
    ParameterCheckHook,
    RunConsistencyHook,
    RunEnvHook,
)

# No network at run time: no telemetry, whichever way kedro is started.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

# RunEnvHook records the environment before anything reads the pipelines;
# ParameterCheckHook checks every section the run reads before the first node;
# RunConsistencyHook marks a version complete once its node saved every output
HOOKS = (
    RunEnvHook(),
    ParameterCheckHook(),
    OutputPathCheckHook(),
    RunConsistencyHook(),
    DaskClientHook(),
    NodeTimerHook(),
)


def numbered(prefix: str, count: int) -> list[str]:
    """``${numbered:f,334}`` in configuration: ``["f0", "f1", …, "f333"]`` (e.g.
    the feature columns of a bag-of-words matrix in ``graph.schema``)."""
    return [f"{prefix}{i}" for i in range(int(count))]


# environments override base key by key (soft merge; graph.schema as a unit) and
# write under their own data root: see hgt_cluster_kedro.config_loader
CONFIG_LOADER_CLASS = ProjectConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {"numbered": numbered},
    "merge_strategy": {"parameters": "soft"},
}
