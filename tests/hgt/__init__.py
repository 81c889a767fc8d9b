"""Tests of the HGT encoder, its loss, trainer and torchrun launcher.

Shared helper: :func:`planted_artifact`, a tiny user–item graph with planted
communities (built directly as a :class:`GraphArtifact`, in milliseconds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from hgt_cluster_kedro.graph import GraphArtifact, GraphSchema, HeteroCSR


def planted_artifact(
    *,
    n_users: int = 120,
    n_items: int = 160,
    n_comm: int = 4,
    per_user: int = 8,
    p_in: float = 0.9,
    seed: int = 0,
) -> tuple[GraphArtifact, tuple[np.ndarray, np.ndarray], np.ndarray]:
    """A user–item graph whose users mostly interact with their community's items.

    Users have two uninformative features (so they are embedded from their
    neighbourhoods); items have none (id embeddings). Relations ``click`` and
    ``like`` (a 30 % subset of clicks) are both target relations. One click per
    user is held out (not in the graph) as validation pair.

    Returns:
        ``(artifact, (val_users, val_items), user_community)``.
    """
    rng = np.random.default_rng(seed)
    user_comm = rng.permutation(np.arange(n_users) % n_comm)
    item_comm = np.arange(n_items) % n_comm
    users, items = [], []
    for u in range(n_users):
        own = np.flatnonzero(item_comm == user_comm[u])
        n_in = rng.binomial(per_user, p_in)
        chosen = set(rng.choice(own, n_in, replace=False).tolist())
        while len(chosen) < per_user:
            chosen.add(int(rng.integers(n_items)))
        for i in chosen:
            users.append(u)
            items.append(i)
    users, items = np.array(users), np.array(items)
    # Hold out one in-community click per user for validation.
    order = rng.permutation(len(users))
    val_mask = np.zeros(len(users), dtype=bool)
    seen: set[int] = set()
    for k in order:
        u = int(users[k])
        if u not in seen and item_comm[items[k]] == user_comm[u]:
            seen.add(u)
            val_mask[k] = True
    train_u, train_i = users[~val_mask], items[~val_mask]
    like = rng.random(len(train_u)) < 0.3
    csr = HeteroCSR.from_coo(
        {"user": n_users, "item": n_items},
        {
            ("user", "click", "item"): (
                torch.from_numpy(train_u),
                torch.from_numpy(train_i),
            ),
            ("user", "like", "item"): (
                torch.from_numpy(train_u[like]),
                torch.from_numpy(train_i[like]),
            ),
        },
    )
    rel = {"src": "user", "dst": "item", "src_column": "u", "dst_column": "i"}
    schema = GraphSchema.model_validate(
        {
            "node_types": {
                "user": {"id_column": "u", "features": ["f0", "f1"]},
                "item": {"id_column": "i"},
            },
            "relations": {"click": dict(rel), "like": dict(rel)},
            "user_type": "user",
            "item_type": "item",
            "target_relations": ["click", "like"],
        }
    )
    g = torch.Generator().manual_seed(seed)
    features = {"user": torch.randn(n_users, 2, generator=g)}
    ids = {"user": pd.Index(np.arange(n_users)), "item": pd.Index(np.arange(n_items))}
    artifact = GraphArtifact(schema, csr, ids, features)
    return artifact, (users[val_mask], items[val_mask]), user_comm


def nmi_of_kmeans(emb: np.ndarray, labels: np.ndarray, k: int, seed: int = 0) -> float:
    """NMI between KMeans clusters of ``emb`` and the planted ``labels``."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    pred = KMeans(k, n_init=5, random_state=seed).fit_predict(emb)
    return float(normalized_mutual_info_score(labels, pred))
