"""Project pipelines, and the default run of each Kedro environment.

``kedro run --env dblp`` must start from ``ingestion`` (real files) where the
base environment starts from ``data_generation`` (fake data). Kedro's
``register_pipelines()`` receives no environment, and ``kedro run --env X`` does
not set ``KEDRO_ENV``; so :class:`~hgt_cluster_kedro.hooks.RunEnvHook` records
``context.env`` in its ``after_context_created`` hook, which fires before a run
first reads the pipelines (see ``KedroSession.run``), by calling
:func:`use_env`. :func:`register_pipelines` then builds ``__default__`` from
:data:`ENV_DEFAULT_PIPELINES` for that environment, or :data:`DEFAULT_PIPELINES`
for any other. Where no session is involved (e.g. ``kedro registry list``) the
environment is ``KEDRO_ENV``, if set.

A new dataset environment adds one line to :data:`ENV_DEFAULT_PIPELINES`;
``--pipelines`` still runs any pipeline in any environment.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

logger = logging.getLogger(__name__)

#: Pipelines of the default run (``kedro run`` / ``make run``), in data order;
#: names without a pipeline package are skipped.
DEFAULT_PIPELINES = (
    "data_generation",
    "graph",
    "twhin",
    "hgt",
    "count_profile",
    "clustering",
    "som",
    "session",
    "evaluation",
)

#: Default run of the environments whose data does not come from the generator.
ENV_DEFAULT_PIPELINES: dict[str, tuple[str, ...]] = {
    "dblp": ("ingestion", *DEFAULT_PIPELINES[1:]),
    "diginetica_sample": ("session_csv",),
}


@dataclass
class _EnvState:
    """The session's environment (``known`` once a session reported it) and the
    environment the cached ``__default__`` was built for."""

    known: bool = False
    env: str | None = None
    registered: bool = False
    registered_env: str | None = None


_STATE = _EnvState()


def current_env() -> str | None:
    """The environment of the running session, else ``KEDRO_ENV`` (or ``None``)."""
    if _STATE.known:
        return _STATE.env
    return os.environ.get("KEDRO_ENV") or None


def default_pipelines(env: str | None) -> tuple[str, ...]:
    """Names of the default run of ``env``."""
    return ENV_DEFAULT_PIPELINES.get(env or "", DEFAULT_PIPELINES)


def use_env(env: str | None) -> bool:
    """Record the session's environment; drop Kedro's cached pipelines if they
    were built for another one (a second session in the same process).

    Returns:
        Whether the cached pipelines were dropped.
    """
    _STATE.known, _STATE.env = True, env
    stale = _STATE.registered and default_pipelines(
        _STATE.registered_env
    ) != default_pipelines(env)
    if stale:
        from kedro.framework.project import pipelines

        pipelines.configure(__name__)  # reloaded on next access
        logger.info("Environment %r: pipelines registered again", env)
    return stale


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``pipelines/`` and the default run of
    the current environment (:func:`current_env`)."""
    env = current_env()
    names = default_pipelines(env)
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipelines[name] for name in names if name in pipelines),
        Pipeline([]),
    )
    _STATE.registered, _STATE.registered_env = True, env
    logger.debug("Default run of environment %r: %s", env, names)
    return pipelines
