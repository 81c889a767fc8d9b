"""Dask generation: the output never depends on the number of workers (1 vs 2
worker processes, each writing its own parts), and no dashboard unless asked."""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request

import pandas as pd
import psutil
import pytest
from distributed import get_task_stream

from hgt_cluster_kedro.datasets import ParquetTableSetDataset
from hgt_cluster_kedro.generation import (
    DaskConfig,
    GeneratorConfig,
    generate_dask,
    generate_local,
    start_client,
    stop_client,
)
from tests.conftest import tiny_generation_params

from ._launch import listening


def _client(n_workers: int, **kwargs):
    return start_client(
        DaskConfig(
            n_workers=n_workers, threads_per_worker=1, memory_limit="1GiB", **kwargs
        )
    )


@pytest.mark.slow
def test_dask_output_does_not_depend_on_the_number_of_workers(tmp_path):
    config = GeneratorConfig.model_validate(tiny_generation_params(mode="dask"))
    local = generate_local(config).edges
    written = {}
    for n_workers in (1, 2):
        client = _client(n_workers)
        try:
            with get_task_stream(client) as stream:
                dataset = ParquetTableSetDataset(
                    filepath=str(tmp_path / f"w{n_workers}")
                )
                dataset.save(generate_dask(config).edges)
            workers = {t["worker"] for t in stream.data}
            assert len(workers) == n_workers  # every worker wrote parts
        finally:
            stop_client(client)
        written[n_workers] = dataset.load()
    for relation, frame in local.items():
        pd.testing.assert_frame_equal(written[1][relation], frame)
        pd.testing.assert_frame_equal(written[2][relation], frame)


@pytest.mark.slow
def test_no_dashboard_when_dashboard_address_is_null():
    client = _client(1)
    try:
        me = psutil.Process(os.getpid())
        sockets = listening([me, *me.children(recursive=True)])
        assert sockets and {a for _, a, _ in sockets} == {"127.0.0.1"}
        assert 8787 not in {p for _, _, p in sockets}
        statuses = set()
        for _, _, port in sockets:  # no HTTP route answers (dashboard, /health)
            for path in ("/status", "/health"):
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}{path}", timeout=2
                    ) as reply:
                        status = reply.status
                except urllib.error.HTTPError as exc:
                    status = exc.code
                except (urllib.error.URLError, OSError, http.client.HTTPException):
                    status = None  # not an HTTP server (dask's comms)
                statuses.add(status)
        # dask's HTTP server is there (it always starts) but serves nothing
        assert 404 in statuses and 200 not in statuses, statuses
    finally:
        stop_client(client)
