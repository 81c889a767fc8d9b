"""``ingestion`` through a real KedroSession with the ``dblp`` environment on a
tiny DBLP look-alike: the environment's default run, the canonical outputs,
the count-profile method, and bad input stopping the run with nothing written."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from hgt_cluster_kedro.ingestion import IngestionError
from tests.ingestion._dblp import write_tiny_dblp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DblpProject:
    """The ``kedro_project`` copy with tiny DBLP files and ``conf/dblp`` sized
    for them."""

    def __init__(self, project: Any) -> None:
        self.project = project
        self.root: Path = project.root
        self.raw = self.root / "data/01_raw/dblp"
        self.sizes = write_tiny_dblp(self.raw)

    def edit(self, key: str, change, file: str | None = None) -> None:
        """Apply ``change`` to section ``key`` of the conf/dblp file stating it
        (``conf/dblp`` holds only what differs from base: a section it does not
        state is added, and merges softly with base's)."""
        files = sorted((self.root / "conf/dblp").glob("parameters*.yml"))
        path = next(
            (f for f in files if key in (yaml.safe_load(f.read_text()) or {})),
            self.root / "conf/dblp/parameters.yml",
        )
        data = yaml.safe_load(path.read_text())
        change(data.setdefault(key, {}))
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def session(self):
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        bootstrap_project(self.root)
        return KedroSession.create(project_path=self.root, env="dblp")

    def run(self, **kwargs: Any) -> dict[str, Any]:
        with self.session() as session:
            return session.run(**kwargs)

    def catalog(self):
        with self.session() as session:
            return session.load_context().catalog

    def written(self) -> list[Path]:
        return [p for p in self.project.files() if self.raw not in p.parents]


@pytest.fixture
def dblp_project(kedro_project) -> DblpProject:
    project = DblpProject(kedro_project)

    def ingestion(p):
        for ntype in ("author", "paper", "term", "venue"):
            p["nodes"][ntype].pop("count", None)  # inferred from the files

    def graph(p):
        p["schema"]["node_types"]["author"]["features"] = "${numbered:f,6}"
        p["partition"].update({"num_parts": 2, "compare": False})

    project.edit("ingestion", ingestion)
    project.edit("graph", graph)
    project.edit("clustering", lambda p: p.update({"k": 2, "n_init": 2}))
    project.edit(
        "evaluation", lambda p: p["label_protocol"].update({"seeds": 2, "n_init": 2})
    )
    return project


_DEFAULT_NODES = """
import json, sys
from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
bootstrap_project(sys.argv[1])
env = sys.argv[2] or None
with KedroSession.create(project_path=sys.argv[1], env=env) as session:
    session.load_context()
    print(json.dumps([n.name for n in pipelines["__default__"].nodes]))
"""


@pytest.mark.slow
def test_dblp_default_run_in_a_fresh_process(dblp_project):
    """``kedro run --env dblp`` sets no KEDRO_ENV: only the hook tells the registry."""
    out = subprocess.run(
        [sys.executable, "-c", _DEFAULT_NODES, str(dblp_project.root), "dblp"],
        capture_output=True,
        text=True,
        check=True,
        cwd=dblp_project.root,
    )
    names = json.loads(out.stdout.strip().splitlines()[-1])
    assert names[0] == "ingest_tables" and "generate_fake_data" not in names
    assert "build_count_profile" in names
    assert names.index("build_count_profile") < names.index(
        "count_profile_kmeans.cluster_users"
    )


def test_environment_switch_in_one_process_reloads_pipelines(dblp_project):
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession

    from hgt_cluster_kedro.pipeline_registry import current_env

    def default_nodes(env):
        with KedroSession.create(project_path=dblp_project.root, env=env) as s:
            s.load_context()
            return {n.name for n in pipelines["__default__"].nodes}

    dblp_project.session().close()  # bootstrap
    assert "generate_fake_data" in default_nodes(None)
    assert "ingest_tables" in default_nodes("dblp")
    assert current_env() == "dblp"
    assert "generate_fake_data" in default_nodes("local")


@pytest.mark.slow
def test_ingestion_graph_and_count_profile_on_tiny_dblp(dblp_project):
    dblp_project.run(pipeline_names=["ingestion", "graph", "count_profile"])
    dblp_project.run(
        pipeline_names=["clustering", "evaluation"],
        namespaces=["count_profile_kmeans"],
    )
    catalog = dblp_project.catalog()
    nodes, edges = catalog.load("raw_nodes"), catalog.load("raw_edges")
    sizes = dblp_project.sizes
    assert {t: len(f) for t, f in nodes.items()} == {
        t: sizes[t] for t in ("author", "paper", "term", "venue")
    }
    assert list(nodes["author"].columns) == ["author_id"] + [f"f{i}" for i in range(6)]
    assert list(edges["writes"].columns) == ["author_id", "paper_id"]
    assert len(edges["writes"]) == sizes["writes"]
    truth = catalog.load("user_communities")
    assert list(truth.columns) == ["author_id", "area"]
    np.testing.assert_array_equal(
        truth["area"], np.load(dblp_project.raw / "labels.npy")
    )
    emb = catalog.load("count_profile_user_embeddings")
    assert list(emb.columns) == ["id", "e0", "e1", "e2", "e3"]  # 4 venues
    summary = catalog.load("count_profile_training")
    assert summary["metapath"] == "author -> paper -> venue"
    metrics = catalog.load("count_profile_kmeans.metrics")
    # venues are planted per area: the profile recovers the areas
    assert metrics["nmi_k2_mean"] > 0.9 and metrics["ari_k2_std"] >= 0.0
    assert metrics["recall@50"] >= 0.0


def _expected_tiny_dblp(raw: Path) -> dict[str, pd.DataFrame]:
    """The canonical tables of the tiny DBLP files, read independently (numpy)."""

    def pairs(name: str) -> np.ndarray:
        return np.loadtxt(raw / name, dtype=np.int64, ndmin=2)

    pa, pc, pt = pairs("pa.txt"), pairs("pc.txt"), pairs("pt.txt")
    feats = sp.load_npz(raw / "a_feat.npz").toarray().astype(np.float32)
    author = pd.DataFrame({"author_id": np.arange(len(feats), dtype=np.int64)})
    author = pd.concat(
        [author, pd.DataFrame(feats, columns=[f"f{i}" for i in range(6)])], axis=1
    )

    def ids(column: str, n: int) -> pd.DataFrame:
        return pd.DataFrame({column: np.arange(n, dtype=np.int64)})

    return {
        "author": author,
        "paper": ids("paper_id", int(pa[:, 0].max()) + 1),
        "term": ids("term_id", int(pt[:, 1].max()) + 1),
        "venue": ids("venue_id", int(pc[:, 1].max()) + 1),
        "writes": pd.DataFrame({"author_id": pa[:, 1], "paper_id": pa[:, 0]}),
        "has_term": pd.DataFrame({"paper_id": pt[:, 0], "term_id": pt[:, 1]}),
        "in_venue": pd.DataFrame({"paper_id": pc[:, 0], "venue_id": pc[:, 1]}),
        "truth": pd.DataFrame(
            {
                "author_id": np.arange(len(feats), dtype=np.int64),
                "area": np.load(raw / "labels.npy").astype(np.int32),
            }
        ),
    }


@pytest.mark.parametrize("counts", ["declared", "inferred"])
def test_dblp_ingestion_tables_are_exactly_the_files(dblp_project, counts):
    """``conf/dblp`` as shipped (declared counts, resized to the tiny files) and
    with inferred counts (every id 0..n-1 present: ``ids: refuse`` passes) give
    the same tables, value for value and dtype for dtype, as the files read
    with numpy."""
    expected = _expected_tiny_dblp(dblp_project.raw)
    if counts == "declared":

        def declare(p):
            for ntype in ("author", "paper", "term", "venue"):
                p["nodes"][ntype]["count"] = len(expected[ntype])

        dblp_project.edit("ingestion", declare)
    dblp_project.run(pipeline_names=["ingestion"])
    catalog = dblp_project.catalog()
    nodes, edges = catalog.load("raw_nodes"), catalog.load("raw_edges")
    for name, frame in {**nodes, **edges}.items():
        pd.testing.assert_frame_equal(frame, expected[name], check_exact=True)
    pd.testing.assert_frame_equal(
        catalog.load("user_communities"), expected["truth"], check_exact=True
    )


def test_bad_input_stops_the_run_with_nothing_written(dblp_project):
    lines = (dblp_project.raw / "pa.txt").read_text().splitlines()
    lines[6] = "12 oops"
    (dblp_project.raw / "pa.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(IngestionError, match=r"pa\.txt, line 7, column 'author_id'"):
        dblp_project.run(pipeline_names=["ingestion", "graph"])
    assert dblp_project.written() == []


@pytest.mark.slow
def test_dblp_default_run_end_to_end(dblp_project):
    def hgt(p):
        p["train"].update(
            {"epochs": 1, "max_steps": 3, "batch_size": 64, "val_max_users": 20}
        )
        p.setdefault("launch", {}).update({"nproc_per_node": 1})

    def joint(p):
        p["train"].update({"max_steps": 2})
        p["train"]["objectives"]["som"].update({"num_centres": 2, "init_users": 60})

    dblp_project.edit("hgt", hgt)
    dblp_project.edit("hgt_som_joint", joint, file="hgt")
    dblp_project.edit("som", lambda p: p.update({"rows": 3, "cols": 3, "k": 2}))
    base = dblp_project.root / "conf/base/parameters_twhin.yml"
    twhin = yaml.safe_load(base.read_text())["twhin"]
    twhin.update({"epochs": 2, "batch_size": 512, "checkpoint_dir": None})
    dblp_project.project.set_params("parameters_twhin.yml", "twhin", twhin)
    dblp_project.run()
    comparison = dblp_project.catalog().load("comparison")
    records = {r["method"]: r for r in comparison}
    for method in ("twhin_kmeans", "hgt_kmeans", "count_profile_kmeans"):
        assert "nmi_k2_mean" in records[method], method
    assert "nmi_k2_mean" not in records["popularity"]
    # one data root per environment: data/dblp/
    table = (dblp_project.root / "data/dblp/08_reporting/comparison.md").read_text()
    assert "nmi_k2" in table.splitlines()[0]
    assert pd.Series([r["recall@50"] for r in comparison]).notna().all()
