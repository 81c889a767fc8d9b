"""Shared fixtures: tiny configurations and an isolated copy of the Kedro project."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

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
