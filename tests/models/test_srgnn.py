"""SR-GNN: session graphs, shapes, padding, the readout by hand, training resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hgt_cluster_kedro.models.srgnn import SRGNN, session_graph_batch
from hgt_cluster_kedro.session import cut_sessions, prefixes
from hgt_cluster_kedro.training.srgnn_trainer import train_srgnn


def test_session_graph_matches_authors_normalisation():
    b = session_graph_batch(torch.tensor([[3, 1, 3, 2], [5, 5, 0, 0]]))
    assert b.nodes.tolist() == [[1, 2, 3], [5, 0, 0]]
    assert b.alias.tolist() == [[2, 0, 2, 1], [0, 0, 0, 0]]
    # edges 3->1, 1->3, 3->2: node 3 has two out-edges (1/2 each)
    out = b.adj_out[0].tolist()
    assert out == [[0, 0, 1], [0, 0, 0], [0.5, 0.5, 0]]
    assert b.adj_in[0].tolist() == [[0, 0, 1], [0, 0, 1], [1, 0, 0]]
    # a repeated click is a self-loop, counted once
    assert b.adj_out[1].tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert b.mask.tolist() == [[True] * 4, [True, True, False, False]]


def test_shapes_and_padding_does_not_change_scores():
    torch.manual_seed(0)
    model = SRGNN(num_items=9, hidden=8, step=2)
    model.reset_parameters(torch.Generator().manual_seed(0))
    model.eval()
    short = torch.tensor([[4, 2, 4]])
    padded = torch.tensor([[4, 2, 4, 0, 0], [1, 2, 3, 5, 6]])
    with torch.no_grad():
        a = model(short)
        b = model(padded)
    assert a.shape == (1, 9) and b.shape == (2, 9)
    torch.testing.assert_close(a[0], b[0], atol=1e-6, rtol=1e-5)


def test_padding_row_stays_zero_and_never_reaches_a_score():
    """The padding embedding is 0 after the authors' init and after training with
    weight decay (a decayed nonzero row turns subnormal, 10x slower matmuls), and
    its value changes no score."""
    model = SRGNN(num_items=9, hidden=8)
    model.reset_parameters(torch.Generator().manual_seed(0))
    assert model.embedding.weight[0].abs().max().item() == 0.0
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.1)
    seqs = torch.tensor([[4, 2, 4, 0], [1, 2, 3, 5], [7, 0, 0, 0]])
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(seqs), torch.tensor([1, 5, 8]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.embedding.weight[0].abs().max().item() == 0.0
    model.eval()
    with torch.no_grad():
        before = model(seqs)
        model.embedding.weight[0] = torch.randn(8)
        after = model(seqs)
    assert torch.equal(before, after)


def test_readout_against_hand_computation():
    model = SRGNN(num_items=3, hidden=2)
    with torch.no_grad():
        model.linear_one.weight.copy_(torch.eye(2))
        model.linear_one.bias.zero_()
        model.linear_two.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        model.linear_two.bias.copy_(torch.tensor([0.5, 0.0]))
        model.linear_three.weight.copy_(torch.tensor([[1.0, -1.0]]))
        model.linear_transform.weight.copy_(
            torch.tensor([[1.0, 0, 0, 1], [0, 1, 1, 0]])
        )
        model.linear_transform.bias.zero_()
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]])  # third = padding
    mask = torch.tensor([[True, True, False]])
    s = model.readout(h, mask)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    last = np.array([0.0, 1.0])
    alphas = []
    for hi in (np.array([1.0, 0.0]), np.array([0.0, 1.0])):
        q = sig(last + np.array([hi[0] + 0.5, 2 * hi[1]]))
        alphas.append(q[0] - q[1])
    s_g = alphas[0] * np.array([1.0, 0.0]) + alphas[1] * np.array([0.0, 1.0])
    expected = np.array([s_g[0] + last[1], s_g[1] + last[0]])
    np.testing.assert_allclose(s[0].detach().numpy(), expected, rtol=1e-5)
    model.hybrid = False
    np.testing.assert_allclose(
        model.readout(h, mask)[0].detach().numpy(), s_g, rtol=1e-5
    )


def _data():
    rng = np.random.default_rng(0)
    n = 600
    owner = rng.integers(0, 60, n)
    item = rng.integers(1, 40, n)
    # planted: item i is mostly followed by i + 1
    time = np.arange(n)
    s = cut_sessions(owner, item, time, gap=10**9, max_length=6)
    return prefixes(s), prefixes(s)


def test_resume_equals_uninterrupted(tmp_path):
    train, valid = _data()
    kw = dict(hidden=8, batch_size=32, seed=3, lr_dc_step=1, keep_checkpoints=0)
    full, h_full = train_srgnn(train, valid, 40, epochs=3, **kw)
    part_dir = tmp_path / "ck"
    train_srgnn(train, valid, 40, epochs=2, checkpoint_dir=part_dir, **kw)
    resumed, h_res = train_srgnn(
        train, valid, 40, epochs=3, checkpoint_dir=part_dir, **kw
    )
    assert h_res["loss"] == pytest.approx(h_full["loss"], rel=1e-6)
    assert h_res["best_epoch"] == h_full["best_epoch"]
    for (k, a), b in zip(
        full.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=k)
    with pytest.raises(ValueError, match="another configuration"):
        train_srgnn(
            train, valid, 40, epochs=3, checkpoint_dir=part_dir, **{**kw, "hidden": 4}
        )


def test_learns_a_planted_transition():
    seqs = np.array(
        [[i % 20 + 1, (i + 1) % 20 + 1, (i + 2) % 20 + 1] for i in range(200)]
    )
    s = cut_sessions(
        np.repeat(np.arange(200), 3), seqs.ravel(), np.tile([0, 1, 2], 200), gap=10
    )
    ex = prefixes(s)
    model, hist = train_srgnn(
        ex, ex, 20, hidden=16, epochs=8, lr=0.01, lr_dc_step=10, batch_size=50, top_k=1
    )
    assert hist["valid_hitrate"][-1] > 0.5 and hist["loss"][-1] < hist["loss"][0]


def test_bad_parameters():
    train, _ = _data()
    with pytest.raises(ValueError, match="session.model.hidden must be >= 1"):
        train_srgnn(train, None, 40, hidden=0)
    with pytest.raises(ValueError, match="select_metric"):
        train_srgnn(train, None, 40, select_metric="auc")
