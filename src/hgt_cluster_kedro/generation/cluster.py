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
    processes with ``threads_per_worker`` threads and ``memory_limit`` each. The
    dashboard is off unless ``dashboard_address`` is given.
    """
    from distributed import Client, LocalCluster

    if config.scheduler_address:
        logger.info("Connecting to dask scheduler at %s", config.scheduler_address)
        return Client(config.scheduler_address, set_as_default=True)
    cluster = LocalCluster(
        n_workers=config.n_workers,
        threads_per_worker=config.threads_per_worker,
        memory_limit=config.memory_limit,
        dashboard_address=config.dashboard_address,
        processes=True,
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
