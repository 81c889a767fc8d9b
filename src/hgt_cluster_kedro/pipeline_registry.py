"""Project pipelines, and the default run of each Kedro environment.

The default run (``kedro run`` without ``--pipelines``) is decided by the
environment's configuration, the ``run`` section
(:class:`~hgt_cluster_kedro.config.RunParams`): its ``source`` pipeline, which
writes the raw graph tables (``auto``: ``ingestion`` when the environment has an
``ingestion`` section, else ``data_generation``), then ``run.pipelines``. So a new
environment made only of YAML files runs with a plain ``kedro run --env NAME``.

Kedro's ``register_pipelines()`` receives no environment, and ``kedro run --env
X`` does not set ``KEDRO_ENV``; so :class:`~hgt_cluster_kedro.hooks.RunEnvHook`
reports ``context.env`` and the environment's raw parameters in its
``after_context_created`` hook, which fires before a run first reads the
pipelines (see ``KedroSession.run``), by calling :func:`use_env`. Where no
session is involved (e.g. ``kedro registry list``) the parameters of
``KEDRO_ENV`` are read from ``conf/`` of the working directory.
``--pipelines`` still runs any pipeline in any environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from hgt_cluster_kedro.config import RunParams

logger = logging.getLogger(__name__)


def default_pipelines(parameters: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Names of the default run for an environment's (raw) parameters."""
    parameters = parameters or {}
    run = RunParams.model_validate(parameters.get("run"))
    return run.default_pipelines(has_ingestion=bool(parameters.get("ingestion")))


@dataclass
class _EnvState:
    """The session's environment and default run (``known`` once a session
    reported them) and the default run the cached ``__default__`` was built for."""

    known: bool = False
    env: str | None = None
    default: tuple[str, ...] = ()
    registered: tuple[str, ...] | None = None


_STATE = _EnvState()


def current_env() -> str | None:
    """The environment of the running session, else ``KEDRO_ENV`` (or ``None``)."""
    if _STATE.known:
        return _STATE.env
    return os.environ.get("KEDRO_ENV") or None


def _parameters_without_session() -> Mapping[str, Any]:
    """Raw parameters of ``KEDRO_ENV`` read from ``./conf`` (no session)."""
    conf = Path.cwd() / "conf"
    if not conf.is_dir():
        return {}
    from kedro.framework.project import settings

    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf),
        env=os.environ.get("KEDRO_ENV") or None,
        **settings.CONFIG_LOADER_ARGS,
    )
    try:
        return loader["parameters"]
    except Exception:  # noqa: BLE001 - no parameters: the base default run
        return {}


def current_default() -> tuple[str, ...]:
    """The default run of the current environment."""
    if _STATE.known:
        return _STATE.default
    return default_pipelines(_parameters_without_session())


def use_env(env: str | None, parameters: Mapping[str, Any] | None = None) -> bool:
    """Record the session's environment and default run (from ``parameters``);
    drop Kedro's cached pipelines if they were built for another default run
    (a second session in the same process).

    Returns:
        Whether the cached pipelines were dropped.
    """
    default = default_pipelines(parameters)
    _STATE.known, _STATE.env, _STATE.default = True, env, default
    stale = _STATE.registered is not None and _STATE.registered != default
    if stale:
        from kedro.framework.project import pipelines

        pipelines.configure(__name__)  # reloaded on next access
        logger.info("Environment %r: pipelines registered again", env)
    return stale


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``pipelines/`` and the default run of
    the current environment (:func:`current_default`)."""
    names = current_default()
    pipelines = find_pipelines(raise_errors=True)
    # `kedro run --pipelines a,b` loads only those: `__default__` is then unused
    loaded_all = "__default__" in pipelines
    unknown = [n for n in names if n not in pipelines]
    if unknown and not loaded_all:
        names = tuple(n for n in names if n in pipelines)
    elif unknown:
        raise ValueError(
            f"run.pipelines / run.source: unknown pipeline(s) {unknown}; "
            f"known: {sorted(pipelines)}"
        )
    pipelines["__default__"] = sum((pipelines[n] for n in names), Pipeline([]))
    _STATE.registered = names
    logger.debug("Default run of environment %r: %s", current_env(), names)
    return pipelines
