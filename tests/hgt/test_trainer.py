"""train_hgt in one process: learning, resume, early stopping, inference."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hgt_cluster_kedro.evaluation.metrics import ranking_metrics
from hgt_cluster_kedro.training.hgt import (
    FAIL_ENV,
    HGTTrainConfig,
    data,
    embed_all,
    latest_hgt_checkpoint,
    load_hgt,
    loop,
    save_hgt,
    train_hgt,
)
from hgt_cluster_kedro.training.hgt.validate import top_k_items
from tests.hgt import nmi_of_kmeans, planted_artifact

# sampled mode with the original system's negatives (2 uniform per side)
FAST = {
    "mode": "sampled",
    "neg_mode": "uniform",
    "num_neg": 2,
    "use_features": True,  # the planted users' features carry their community
    "id_embedding_types": None,
    "remove_targets": False,
    "hidden": 16,
    "heads": 2,
    "dropout": 0.1,
    "batch_size": 64,
    "lr": 0.01,
    "val_k": 10,
    "progress": False,
    "num_threads": 1,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def planted():
    return planted_artifact()


# full-graph mode with in-batch negatives (the defaults' kind of run)
FULL = {
    **FAST,
    "mode": "full",
    "neg_mode": "in_batch",
    "num_neg": 15,
    "full_batch_size": 128,
    "remove_targets": True,
}


@pytest.mark.parametrize("mode", ["sampled", "full"])
def test_loss_decreases_and_communities_are_recovered(planted, mode):
    graph, val, communities = planted
    cfg = {
        **(FAST if mode == "sampled" else FULL),
        "hidden": 32,
        "batch_size": 128,
        "epochs": 10,
        "patience": None,
        "eval_fanouts": [-1, -1],
    }
    model, history = train_hgt(graph, val, cfg)
    loss = history["train_loss"]
    assert history["mode"] == mode
    assert len(loss) == 10 and history["stop_reason"] == "epochs"
    assert loss[-1] < 0.7 * loss[0]
    assert history["val_loss"][-1] < history["val_loss"][0]
    # Measured: train loss 0.63 -> 0.27, val Recall@10 0.12 -> 0.37 (best epoch
    # restored), NMI 1.0; random Recall@10 ~0.07, random NMI ~0.02.
    assert history["best_val_recall"] > 0.2
    assert history["best_val_recall"] == max(history["val_recall"])
    emb = embed_all(model, graph, "user", progress=False)
    assert emb.shape == (120, 32) and emb.dtype == np.float32
    assert nmi_of_kmeans(emb, communities, 4) > 0.6
    for key in ("seconds", "seeds_per_s", "sample_s", "compute_s", "peak_rss_mb"):
        assert len(history[key]) == 10 and all(v >= 0 for v in history[key])


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mode", ["sampled", "full"])
def test_resume_equals_uninterrupted(planted, tmp_path, mode):
    graph, val, _ = planted
    base = FAST if mode == "sampled" else {**FULL, "full_batch_size": 64}
    cfg = {**base, "epochs": 3, "patience": None, "checkpoint_every": 4}
    full, h_full = train_hgt(graph, val, {**cfg, "checkpoint_dir": str(tmp_path / "a")})
    steps = h_full["total_steps"]
    assert steps == 3 * 19
    # Interrupted run: stops after 25 steps (mid epoch 2), then resumes.
    part_dir = str(tmp_path / "b")
    _, h_part = train_hgt(
        graph, val, {**cfg, "checkpoint_dir": part_dir, "max_steps": 25}
    )
    assert h_part["stop_reason"] == "max_steps"
    # the partial epoch 2 (6 of 19 steps) is validated and reported too
    assert h_part["epoch"] == [1, 2]
    assert h_part["epoch_fraction"] == pytest.approx([1.0, 6 / 19])
    assert h_part["val_recall"][1] is not None
    assert h_part["steps"] == [19, 25]
    assert latest_hgt_checkpoint(part_dir)[0] == 25
    resumed, h_res = train_hgt(graph, val, {**cfg, "checkpoint_dir": part_dir})
    assert h_res["resumed_from_step"] == [25]
    assert h_res["total_steps"] == steps
    assert h_res["epoch"] == [1, 2, 3] and h_res["epoch_fraction"] == [1.0] * 3
    assert h_res["train_loss"] == pytest.approx(h_full["train_loss"], rel=1e-5)
    assert h_res["val_recall"] == pytest.approx(h_full["val_recall"], abs=1e-6)
    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    with pytest.raises(ValueError, match="other settings"):
        train_hgt(graph, val, {**cfg, "checkpoint_dir": part_dir, "lr": 0.02})
    # resume=False deletes the old checkpoints and starts over.
    _, h_new = train_hgt(
        graph,
        val,
        {**cfg, "checkpoint_dir": part_dir, "resume": False, "max_steps": 2},
    )
    assert h_new["resumed_from_step"] == [] and h_new["total_steps"] == 2
    assert latest_hgt_checkpoint(part_dir)[0] == 2


def test_early_stopping_and_best_epoch(planted):
    graph, val, _ = planted
    cfg = {**FAST, "epochs": 6, "lr": 1e-9, "patience": 2}
    _, history = train_hgt(graph, val, cfg)
    # A learning rate of 1e-9 never improves Recall@K after the first epoch.
    assert history["stop_reason"] == "early_stopping"
    assert history["epoch"] == [1, 2, 3]
    assert history["best_epoch"] == 1


def test_in_batch_negatives_and_per_relation_fanouts(planted):
    graph, _, _ = planted
    cfg = {
        **FAST,
        "epochs": 1,
        "neg_mode": "in_batch",
        "num_neg": 3,
        "fanouts": {"click": [3, 2], "rev_click": [3, 2], "user__like__item": [1, 0]},
    }
    _, history = train_hgt(graph, None, cfg)
    assert history["val_recall"] == [None] and np.isfinite(history["train_loss"][0])


def test_sharded_ranks_cover_the_edges(planted):
    graph, _, _ = planted
    edges = data.target_edges(graph)
    shards = [
        data.shard(edges, rank=r, world_size=3, seed=0, seed_users=None)
        for r in range(3)
    ]
    for i, (_, src, _) in enumerate(edges):
        assert sum(s[i][1].numel() for s in shards) == src.numel()
    users = torch.arange(10)
    own = data.shard(edges, rank=0, world_size=2, seed=0, seed_users=users)
    assert all(bool((s < 10).all()) for _, s, _ in own)
    plan = data.epoch_plan(
        shards[0], batch_size=50, steps=9, seed=0, epoch=0, rank=0, min_batch=1
    )
    assert len(plan) == 9 and all(idx.numel() <= 50 for _, idx in plan)


def test_embed_all_save_load_round_trip(planted, tmp_path):
    graph, _, _ = planted
    model, _ = train_hgt(graph, None, {**FAST, "epochs": 1})
    full = embed_all(model, graph, "item", batch_size=50, progress=False)
    assert full.shape == (160, 16)
    assert np.allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-5)
    subset = embed_all(model, graph, "item", nodes=[5, 7], progress=False)
    assert np.allclose(subset, full[[5, 7]], atol=1e-5)
    path = save_hgt(model, tmp_path / "m.safetensors", extra={"note": "x"})
    again = embed_all(load_hgt(path), graph, "item", batch_size=64, progress=False)
    assert np.allclose(again, full, atol=1e-5)
    sampled = embed_all(model, graph, "user", fanouts=[2, 2], progress=False)
    assert sampled.shape == (120, 16)


def test_top_k_items_and_recall_by_hand():
    user_emb = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    item_emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    users = torch.tensor([3, 8])  # row 0 = user 3, row 1 = user 8
    relevant = [[1, 2], [3]]  # held-out items of users 3 and 8
    top = top_k_items(user_emb, item_emb, users, 1)
    # Top-1: user 3 -> item 0 (no hit, 0/2); user 8 -> item 2 (miss, 0/1).
    assert top.tolist() == [[0], [2]]
    assert ranking_metrics(top, relevant, ks=(1,))["recall@1"] == 0.0
    # Excluding train item 0 of user 3 and item 2 of user 8: both hit.
    indptr = torch.zeros(10, dtype=torch.long)
    indptr[4:] = 1
    indptr[9:] = 2
    indices = torch.tensor([0, 2], dtype=torch.int32)
    top = top_k_items(user_emb, item_emb, users, 1, exclude=[(indptr, indices)])
    assert top.tolist() == [[1], [3]]
    got = ranking_metrics(top, relevant, ks=(1,))["recall@1"]
    assert got == pytest.approx((1 / 2 + 1 / 1) / 2)


def test_config_and_argument_errors(planted, tmp_path):
    graph, val, _ = planted
    with pytest.raises(ValueError, match="divisible"):
        HGTTrainConfig(hidden=10, heads=3)
    with pytest.raises(ValueError, match="checkpoint_every=5 needs a checkpoint_dir"):
        HGTTrainConfig(checkpoint_every=5)
    with pytest.raises(ValueError, match="too small for num_neg=63"):
        HGTTrainConfig(batch_size=32, num_neg=63, neg_mode="in_batch")
    with pytest.raises(ValueError, match=r"objectives\.linc"):
        HGTTrainConfig(objectives={"linc": {}})
    with pytest.raises(ValueError, match="scale"):
        HGTTrainConfig(objectives={"link": {"scale": -1.0}})
    with pytest.raises(ValueError, match="not a negative sampler"):
        HGTTrainConfig(neg_mode="hard")
    with pytest.raises(ValueError, match="extra"):
        HGTTrainConfig(hiden=3)
    with pytest.raises(ValueError, match="relation 'nope' is unknown"):
        train_hgt(graph, None, {**FAST, "fanouts": {"nope": [1]}})
    with pytest.raises(ValueError, match="val_pairs items out of range"):
        train_hgt(graph, (np.array([0]), np.array([999])), FAST)
    with pytest.raises(ValueError, match="initialised torch.distributed"):
        train_hgt(graph, val, FAST, rank=1, world_size=2)
    with pytest.raises(ValueError, match="rank must be in"):
        train_hgt(graph, val, FAST, rank=2, world_size=2)


def test_fail_hook_fires_once(tmp_path, monkeypatch):
    calls = []

    def fake_exit(code):
        calls.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setenv(FAIL_ENV, "3")
    with pytest.raises(ValueError, match=f"{FAIL_ENV}=3 needs config.checkpoint_dir"):
        loop._fail_at(HGTTrainConfig())
    cfg = HGTTrainConfig(checkpoint_dir=str(tmp_path))
    assert loop._fail_at(cfg) == 3

    def run(rank: int) -> SimpleNamespace:
        return SimpleNamespace(fail_at=3, world_size=2, rank=rank, cfg=cfg)

    loop._maybe_fail(run(1), 2)  # another step: nothing
    loop._maybe_fail(run(0), 3)  # not the failing rank (the last, 1): nothing
    with pytest.raises(SystemExit):
        loop._maybe_fail(run(1), 3)
    loop._maybe_fail(run(1), 3)  # marker exists: only once
    assert calls == [1]


def test_use_features_false_trains_on_ids_only(planted):
    graph, val, _ = planted
    assert graph.features  # the planted users have features
    model, history = train_hgt(
        graph, val, {**FAST, "epochs": 1, "patience": None, "use_features": False}
    )
    assert model.feature_dims == {} and set(model.id_embedding_types) == set(
        graph.csr.node_types
    )
    emb = embed_all(model, graph, "user", progress=False)
    assert np.isfinite(emb).all() and len(history["train_loss"]) == 1


def test_val_mode_full_validates_a_sampled_run_exactly(planted):
    """``val_mode: full`` changes how validation embeds, never the training; its
    figures are those of one exact full-graph pass of the final model."""
    from hgt_cluster_kedro.models.hgt_attention import FullGraph
    from hgt_cluster_kedro.training.hgt import HGTTrainConfig
    from hgt_cluster_kedro.training.hgt.objectives import OBJECTIVES
    from hgt_cluster_kedro.training.hgt.validate import validate

    graph, val, _ = planted
    cfg = {**FAST, "epochs": 1, "restore_best": False}
    runs = {
        mode: train_hgt(graph, val, {**cfg, "val_mode": mode})
        for mode in ("full", "sampled")
    }
    (full_model, full_h), (sampled_model, sampled_h) = runs["full"], runs["sampled"]
    assert full_h["train_loss"] == sampled_h["train_loss"]
    torch.testing.assert_close(full_model.state_dict(), sampled_model.state_dict())
    assert full_h["val_recall"] != sampled_h["val_recall"]  # another embedding
    config = HGTTrainConfig.model_validate({**cfg, "val_mode": "full"})
    objectives = {
        name: OBJECTIVES[name](params, full_model, graph)
        for name, params in config.objective_params().items()
    }
    exact = validate(
        full_model,
        graph,
        graph.features,
        tuple(torch.as_tensor(v) for v in val),
        cfg=config,
        objectives=objectives,
        fanouts=None,
        eval_fanouts=None,
        device=torch.device("cpu"),
        full=FullGraph.from_csr(graph.csr, full_model.edge_types),
    )
    assert full_h["val_recall"][0] == pytest.approx(exact["val_recall"])
    assert full_h["val_loss"][0] == pytest.approx(exact["val_loss"], rel=1e-5)
