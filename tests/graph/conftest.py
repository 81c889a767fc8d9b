"""Fixtures for the graph core tests: tiny random user-note graphs."""

from __future__ import annotations

import pytest
import torch

from hgt_cluster_kedro.graph.csr import HeteroCSR

RELATIONS = ("like", "comment", "create")


def random_user_note_edges(
    num_users: int, num_notes: int, edges_per_relation: int, seed: int
) -> tuple[dict[str, int], dict]:
    """``num_nodes`` and ``{(user, rel, note): (src, dst)}`` with random edges."""
    g = torch.Generator().manual_seed(seed)
    edges = {}
    for rel in RELATIONS:
        src = torch.randint(0, num_users, (edges_per_relation,), generator=g)
        dst = torch.randint(0, num_notes, (edges_per_relation,), generator=g)
        edges[("user", rel, "note")] = (src, dst)
    return {"user": num_users, "note": num_notes}, edges


def edge_set(src: torch.Tensor, dst: torch.Tensor) -> set[tuple[int, int]]:
    return set(zip(src.tolist(), dst.tolist(), strict=True))


@pytest.fixture
def tiny():
    """50 users, 80 notes, 3 relations of 300 random edges (duplicates included)."""
    return random_user_note_edges(50, 80, 300, seed=0)


@pytest.fixture
def tiny_graph(tiny) -> HeteroCSR:
    num_nodes, edges = tiny
    return HeteroCSR.from_coo(num_nodes, edges)


@pytest.fixture
def small_graph() -> HeteroCSR:
    """A larger random graph (500 users, 800 notes) for statistical checks."""
    num_nodes, edges = random_user_note_edges(500, 800, 4000, seed=1)
    return HeteroCSR.from_coo(num_nodes, edges)
