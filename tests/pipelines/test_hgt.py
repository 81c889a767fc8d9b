"""``hgt`` through a real KedroSession: torchrun workers, embeddings, summary."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import yaml

from hgt_cluster_kedro.embeddings import from_frame


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_hgt_pipeline_trains_through_torchrun(kedro_project):
    params = yaml.safe_load(
        (kedro_project.root / "conf/base/parameters_hgt.yml").read_text()
    )
    hgt = params["hgt"]
    hgt["train"].update(
        {
            "epochs": 1,
            "max_steps": 4,
            "batch_size": 64,
            "full_batch_size": 64,
            "progress": False,
            "val_max_users": 50,
            "checkpoint_every": 2,
        }
    )
    hgt["launch"].update(
        {"nproc_per_node": 1, "rdzv_endpoint": f"127.0.0.1:{_free_port()}"}
    )
    kedro_project.set_params("parameters_hgt.yml", "hgt", hgt)
    joint = params["hgt_som_joint"]
    joint["train"].update({"max_steps": 3})
    joint["train"]["objectives"]["som"].update({"num_centres": 4, "init_users": 100})
    kedro_project.set_params("parameters_hgt.yml", "hgt_som_joint", joint)
    kedro_project.set_params(
        "parameters_graph.yml",
        "graph",
        {
            **yaml.safe_load(
                (kedro_project.root / "conf/base/parameters_graph.yml").read_text()
            )["graph"],
            "partition": {"num_parts": 2, "compare": False},
        },
    )
    kedro_project.run(pipeline_names=["data_generation", "graph", "twhin", "hgt"])
    catalog = kedro_project.catalog()
    graph = catalog.load("graph")
    users = from_frame(catalog.load("hgt_user_embeddings"), graph.ids["user"], dim=64)
    assert users.shape == (400, 64) and np.isfinite(users).all()
    np.testing.assert_allclose(np.linalg.norm(users, axis=1), 1.0, atol=1e-4)
    summary = catalog.load("hgt_training")
    assert summary["train_seconds"] > 0 and summary["peak_memory_mb"] > 0
    # max_steps stops inside the epoch: that partial epoch is validated too
    history = summary["history"]
    assert history["stop_reason"] == "max_steps" and history["steps"] == [4]
    assert history["mode"] == "sampled"  # the default engine
    assert 0 < history["epoch_fraction"][0] < 1
    assert history["val_recall"][0] is not None
    # the default warm start: id embeddings from the TwHIN run's tables
    assert summary["params"]["init_embeddings"].endswith("init_embeddings.safetensors")
    model = catalog.load("hgt_model")
    assert model["metadata"]["hidden"] == 64
    runs = sorted((kedro_project.root / "data/06_models/hgt_runs").iterdir())
    assert [r.name.split("-")[0] for r in runs] == ["hgt", "hgt_som_joint"]
    assert all((r / "hgt_model.safetensors").is_file() for r in runs)
    # the joint HGT + SOM fine-tunes the self-supervised model
    joint_model = catalog.load("hgt_som_joint_model")
    assert joint_model["metadata"]["som"]["num_centres"] == 4
    assert "som.centres" in joint_model["tensors"]
    clusters = catalog.load("hgt_som_joint.user_clusters")
    assert len(clusters) == 400 and clusters["cluster"].between(0, 3).all()
    centres = catalog.load("hgt_som_joint.cluster_centroids")
    assert centres["size"].sum() == 400
    # a rerun resumes the finished runs: no training, but the recorded training
    # time is still that of the epochs in the checkpoints
    kedro_project.run(pipeline_names=["hgt"])
    again = kedro_project.catalog().load("hgt_training")
    assert again["history"]["resumed_from_step"] == [4]
    assert again["history"]["train_seconds"] == summary["history"]["train_seconds"]
    assert again["train_seconds"] >= summary["history"]["train_seconds"] > 0
    joint_summary = catalog.load("hgt_som_joint_training")
    assert joint_summary["params"]["init_model"].endswith("init_model.safetensors")
    assert joint_summary["som"]["num_centres"] == 4
