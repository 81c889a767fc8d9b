"""Connect to a dask cluster: a LocalCluster by default, or an existing scheduler."""

from __future__ import annotations

import logging
from typing import Any

from .config import DaskConfig

logger = logging.getLogger(__name__)


def start_client(config: DaskConfig) -> Any:
    """Return a ``dask.distributed.Client`` made the default scheduler.

    With ``scheduler_address`` set (e.g. ``tcp://scheduler:8786``) it connects to
    that cluster; otherwise it starts a ``LocalCluster`` of ``n_workers``
    processes with ``threads_per_worker`` threads and ``memory_limit`` each, on
    loopback. The dashboard is off unless ``dashboard_address`` is given: dask's
    scheduler always starts an HTTP server (on ``:8787`` when no address is
    given, with the dashboard when bokeh is installed), so with
    ``dashboard_address: null`` it gets no routes at all (no dashboard, no
    ``/health``, no metrics) and a free loopback port.
    """
    import dask
    from distributed import Client, LocalCluster

    if config.scheduler_address:
        logger.info("Connecting to dask scheduler at %s", config.scheduler_address)
        return Client(config.scheduler_address, set_as_default=True)
    options: dict[str, Any] = {"dashboard_address": config.dashboard_address}
    settings: dict[str, Any] = {}
    if config.dashboard_address is None:
        options = {
            "dashboard_address": "127.0.0.1:0",
            "scheduler_kwargs": {"dashboard": False},
        }
        settings = {
            "distributed.scheduler.http.routes": [],
            "distributed.worker.http.routes": [],
        }
    with dask.config.set(settings):
        cluster = LocalCluster(
            n_workers=config.n_workers,
            threads_per_worker=config.threads_per_worker,
            memory_limit=config.memory_limit,
            host="127.0.0.1",
            processes=True,
            **options,
        )
    logger.info(
        "Started dask LocalCluster: %d workers x %d threads, %s each",
        config.n_workers,
        config.threads_per_worker,
        config.memory_limit,
    )
    return Client(cluster, set_as_default=True)


def stop_client(client: Any) -> None:
    """Close ``client`` and, for a LocalCluster we started, the cluster itself."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()
