"""Project settings: hooks and configuration loading."""

import os

from hgt_cluster_kedro.hooks import DaskClientHook, OutputPathCheckHook

# No network at run time: no telemetry, whichever way kedro is started.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

HOOKS = (OutputPathCheckHook(), DaskClientHook())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
