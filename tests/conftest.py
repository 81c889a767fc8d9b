"""Shared fixtures: tiny configurations and an isolated copy of the Kedro project."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# mlflow (optional extra): no telemetry client (it starts on import unless this is
# set), and its local file store (mlruns/) allowed, as in the Makefile
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

REPO = Path(__file__).resolve().parents[1]


def tiny_generation_params(**overrides: Any) -> dict[str, Any]:
    """A generator configuration that runs in well under a second."""
    params: dict[str, Any] = {
        "seed": 7,
        "mode": "local",
        "n_parts": 4,
        "n_users": 400,
        "n_notes": 600,
        "n_communities": 4,
        "relations": {
            "follow_note": {"n_edges": 4000, "p_in_community": 0.35},
            "comment_note": {
                "n_edges": 2400,
                "p_in_community": 0.55,
                "weight_mean": 1.0,
            },
            "share_note": {"n_edges": 1200, "p_in_community": 0.75, "weight_mean": 0.5},
        },
        "dask": {"n_workers": 1, "threads_per_worker": 1, "memory_limit": "1GiB"},
    }
    params.update(overrides)
    return params


@pytest.fixture
def tiny_params() -> dict[str, Any]:
    return tiny_generation_params()


class KedroProject:
    """A throw-away copy of this project's ``conf/`` with its own ``data/``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def set_params(self, filename: str, key: str, value: Any) -> None:
        path = self.root / "conf" / "base" / filename
        data = yaml.safe_load(path.read_text()) if path.exists() else {}
        data[key] = value
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def run(self, **run_kwargs: Any) -> dict[str, Any]:
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        bootstrap_project(self.root)
        with KedroSession.create(project_path=self.root, env="base") as session:
            return session.run(**run_kwargs)

    def catalog(self):
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        bootstrap_project(self.root)
        with KedroSession.create(project_path=self.root, env="base") as session:
            return session.load_context().catalog

    def files(self, sub: str = "data") -> list[Path]:
        return sorted(p for p in (self.root / sub).rglob("*") if p.is_file())


@pytest.fixture
def kedro_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KedroProject]:
    """An isolated project (conf copied, empty data/) with tiny parameters; the
    working directory is the copy, so relative catalog paths land in it."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "src").mkdir()  # the package itself is installed (editable)
    (root / "data").mkdir()
    monkeypatch.chdir(root)
    project = KedroProject(root)
    project.set_params(
        "parameters_data_generation.yml", "data_generation", tiny_generation_params()
    )
    yield project


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _conf_params(
    project: KedroProject, name: str, file: str | None = None
) -> dict[str, Any] | None:
    path = project.root / "conf" / "base" / f"parameters_{file or name}.yml"
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    return data.get(name)


def configure_tiny_default_run(project: KedroProject) -> KedroProject:
    """Tiny parameters for every pipeline of the default run (the setup of
    ``tests/pipelines/test_evaluation.py``): 400 users, a few TwHIN epochs, three
    HGT steps on one torchrun worker, k = 4 (the planted communities)."""
    hgt = _conf_params(project, "hgt")
    hgt["train"].update(
        {
            "epochs": 1,
            "max_steps": 3,
            "batch_size": 64,
            "full_batch_size": 64,
            "progress": False,
            "val_max_users": 50,
        }
    )
    hgt["launch"].update(
        {"nproc_per_node": 1, "rdzv_endpoint": f"127.0.0.1:{_free_port()}"}
    )
    project.set_params("parameters_hgt.yml", "hgt", hgt)
    joint = _conf_params(project, "hgt_som_joint", "hgt")
    if joint is not None:  # a few fine-tuning steps of the joint HGT + SOM
        joint["train"].update({"max_steps": 3})
        joint["train"]["objectives"]["som"].update(
            {"num_centres": 4, "init_users": 100}
        )
        project.set_params("parameters_hgt.yml", "hgt_som_joint", joint)
    twhin = _conf_params(project, "twhin")
    twhin.update({"epochs": 3, "batch_size": 512, "progress": False})
    project.set_params("parameters_twhin.yml", "twhin", twhin)
    graph = _conf_params(project, "graph")
    graph["partition"].update({"num_parts": 2, "compare": False})
    project.set_params("parameters_graph.yml", "graph", graph)
    clustering = _conf_params(project, "clustering")
    clustering.update({"k": 4})
    project.set_params("parameters_clustering.yml", "clustering", clustering)
    simclusters = _conf_params(project, "simclusters")
    if simclusters is not None:  # 600 notes: fewer consumers per producer, k = 4
        simclusters["similarity"].update({"min_consumers": 3})
        simclusters["knownfor"].update(
            {"k": 4, "penalty": 1.0, "compare_leiden": False}
        )
        project.set_params("parameters_simclusters.yml", "simclusters", simclusters)
    som = _conf_params(project, "som")
    if som is not None:  # SOM clustering (when the pipeline exists)
        som.update({"rows": 4, "cols": 4, "k": 4, "epochs": 5, "progress": False})
        project.set_params("parameters_som.yml", "som", som)
    session = _conf_params(project, "session")
    if session is not None:  # SR-GNN: one small epoch
        session["model"].update({"hidden": 16, "epochs": 1, "batch_size": 256})
        project.set_params("parameters_session.yml", "session", session)
    return project


def _build_tiny_run(root: Path) -> KedroProject:
    root.mkdir(parents=True)
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "src").mkdir()
    (root / "data").mkdir()
    project = KedroProject(root)
    project.set_params(
        "parameters_data_generation.yml", "data_generation", tiny_generation_params()
    )
    configure_tiny_default_run(project)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        project.run()
    return project


@pytest.fixture(scope="session")
def tiny_run_project(tmp_path_factory: pytest.TempPathFactory) -> KedroProject:
    """One tiny default run (``configure_tiny_default_run``) per test session,
    shared by tests that only read its outputs (kedro-viz, the notebook, MLflow):
    copy ``root`` before writing to it.

    Under pytest-xdist (``make test`` runs two workers) the workers share one
    run: the first to take the lock builds it in the session's common temporary
    directory and marks it complete; the others wait for the lock and reuse it.
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return _build_tiny_run(tmp_path_factory.mktemp("tiny_run") / "project")
    shared = tmp_path_factory.getbasetemp().parent / "tiny_run_shared"
    shared.mkdir(exist_ok=True)
    root, done = shared / "project", shared / "complete"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if done.exists():
            return KedroProject(root)
        if root.exists():  # a worker that failed half-way: start again
            shutil.rmtree(root)
        project = _build_tiny_run(root)
        done.touch()
        return project
