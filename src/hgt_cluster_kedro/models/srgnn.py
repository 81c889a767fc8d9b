"""SR-GNN: session-based recommendation with a gated graph neural network.

Wu, Tang, Zhu, Wang, Xie, Tan, "Session-based Recommendation with Graph Neural
Networks", AAAI 2019. Each session is a small directed graph over its distinct
items (an edge per consecutive click pair); ``step`` gated (GRU) propagation
steps over the row-normalised incoming and outgoing adjacency give every item a
vector; a soft-attention readout over the clicks (global preference) is combined
with the last click (local interest) into the session vector ``s``; the scores
of all items are ``s · e_i`` (trained with cross-entropy over all items).

The parameterisation follows the authors' PyTorch code (``pytorch_code/model.py``):
``alpha = w3ᵀ σ(W1 h_last + W2 h_i)`` (no softmax), ``s = W3 [s_g; h_last]``, and
every weight initialised uniform in ``±1/sqrt(hidden)``. Unlike that code, a batch
is built and read out with tensor operations only (:func:`session_graph_batch`),
never a Python loop per session.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class SessionGraphBatch(NamedTuple):
    """Padded dense session graphs of one batch.

    Attributes:
        nodes: ``(B, N)`` item of each graph node (0 = padding node).
        adj_in: ``(B, N, N)`` incoming adjacency, row-normalised by in-degree
            (``adj_in[v, u] = 1 / indeg(v)`` for an edge ``u -> v``).
        adj_out: ``(B, N, N)`` outgoing adjacency, row-normalised by out-degree.
        alias: ``(B, L)`` graph node of each click (0 at padding).
        mask: ``(B, L)`` true at real clicks (left-aligned).
    """

    nodes: Tensor
    adj_in: Tensor
    adj_out: Tensor
    alias: Tensor
    mask: Tensor


def session_graph_batch(seqs: Tensor) -> SessionGraphBatch:
    """Session graphs of left-aligned, 0-padded click sequences ``(B, L)``.

    Distinct items of a row become its nodes (in increasing item order, as the
    authors' ``np.unique``); repeated edges count once. Vectorised over the batch.
    """
    if seqs.dim() != 2:
        raise ValueError(f"seqs must be (batch, length), got shape {tuple(seqs.shape)}")
    b, length = seqs.shape
    mask = seqs > 0
    if not bool(mask[:, 0].all()):
        raise ValueError("every sequence needs at least one click at position 0")
    big = torch.iinfo(seqs.dtype).max
    vals, order = seqs.masked_fill(~mask, big).sort(dim=1)
    new = torch.ones_like(mask)
    new[:, 1:] = vals[:, 1:] != vals[:, :-1]
    rank = new.long().cumsum(1) - 1
    real = vals != big
    n_nodes = (new & real).sum(1)
    width = int(n_nodes.max())
    alias = torch.empty_like(rank).scatter_(1, order, rank)
    alias = alias.masked_fill(~mask, 0)
    nodes = torch.zeros(b, width, dtype=seqs.dtype, device=seqs.device)
    keep = new & real
    rows = torch.arange(b, device=seqs.device)[:, None].expand(-1, length)
    nodes[rows[keep], rank[keep]] = vals[keep]
    adj = torch.zeros(b, width, width, device=seqs.device)
    if length > 1:
        edge = mask[:, 1:]  # left-aligned: click i + 1 real implies click i real
        src, dst = alias[:, :-1][edge], alias[:, 1:][edge]
        adj[rows[:, 1:][edge], src, dst] = 1.0
    in_deg = adj.sum(1).clamp(min=1.0)  # (B, N): column sums
    out_deg = adj.sum(2).clamp(min=1.0)
    adj_in = adj.transpose(1, 2) / in_deg[:, :, None]
    adj_out = adj / out_deg[:, :, None]
    return SessionGraphBatch(nodes, adj_in, adj_out, alias, mask)


class GatedSessionGNN(nn.Module):
    """The gated graph layer of SR-GNN (Eq. 1-5 of the paper)."""

    def __init__(self, hidden: int, step: int = 1) -> None:
        super().__init__()
        if step < 1:
            raise ValueError(f"step must be >= 1 (got {step})")
        self.hidden, self.step = hidden, step
        self.w_ih = nn.Parameter(torch.empty(3 * hidden, 2 * hidden))
        self.w_hh = nn.Parameter(torch.empty(3 * hidden, hidden))
        self.b_ih = nn.Parameter(torch.empty(3 * hidden))
        self.b_hh = nn.Parameter(torch.empty(3 * hidden))
        self.b_iah = nn.Parameter(torch.empty(hidden))
        self.b_oah = nn.Parameter(torch.empty(hidden))
        self.edge_in = nn.Linear(hidden, hidden)
        self.edge_out = nn.Linear(hidden, hidden)

    def cell(self, adj_in: Tensor, adj_out: Tensor, h: Tensor) -> Tensor:
        a_in = torch.bmm(adj_in, self.edge_in(h)) + self.b_iah
        a_out = torch.bmm(adj_out, self.edge_out(h)) + self.b_oah
        gi = F.linear(torch.cat([a_in, a_out], 2), self.w_ih, self.b_ih)
        gh = F.linear(h, self.w_hh, self.b_hh)
        i_r, i_i, i_n = gi.chunk(3, 2)
        h_r, h_i, h_n = gh.chunk(3, 2)
        reset = torch.sigmoid(i_r + h_r)
        update = torch.sigmoid(i_i + h_i)
        new = torch.tanh(i_n + reset * h_n)
        return new + update * (h - new)

    def forward(self, adj_in: Tensor, adj_out: Tensor, h: Tensor) -> Tensor:
        for _ in range(self.step):
            h = self.cell(adj_in, adj_out, h)
        return h


class SRGNN(nn.Module):
    """SR-GNN over ``num_items`` items (model ids ``1..num_items``; 0 pads).

    Args:
        num_items: number of items scored.
        hidden: embedding and hidden size (the paper: 100).
        step: gated propagation steps (the paper: 1).
        hybrid: combine the attention readout with the last click (``False``:
            the paper's SR-GNN-NGC-like global-only readout).
    """

    def __init__(
        self, num_items: int, hidden: int = 100, step: int = 1, hybrid: bool = True
    ) -> None:
        super().__init__()
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1 (got {num_items})")
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1 (got {hidden})")
        self.num_items, self.hidden, self.hybrid = num_items, hidden, hybrid
        # row 0 pads: it never reaches a score, so it stays exactly 0 (no
        # gradient, and weight decay of 0 is 0)
        self.embedding = nn.Embedding(num_items + 1, hidden, padding_idx=0)
        self.gnn = GatedSessionGNN(hidden, step)
        self.linear_one = nn.Linear(hidden, hidden)
        self.linear_two = nn.Linear(hidden, hidden)
        self.linear_three = nn.Linear(hidden, 1, bias=False)
        self.linear_transform = nn.Linear(2 * hidden, hidden)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Every weight uniform in ``±1/sqrt(hidden)`` (the authors' init), the
        padding row of the embedding then set to 0.

        The authors' padding row is drawn like the others and left to weight
        decay, which takes it, and Adam's moments, into subnormal floats within
        a few epochs; every padded graph node then carries subnormals through
        the GNN's matrix products, which run about 10x slower on x86 CPUs. The
        padding row never reaches a score (padded nodes send no messages and
        are masked in the readout), so zeroing it changes no output.
        """
        bound = 1.0 / math.sqrt(self.hidden)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.rand(p.shape, generator=generator) * 2 * bound - bound)
            self.embedding.weight[0].zero_()

    def readout(self, seq_hidden: Tensor, mask: Tensor) -> Tensor:
        """Session vectors ``(B, H)`` from the click vectors ``(B, L, H)``:
        soft attention over the real clicks, hybrid with the last click."""
        lengths = mask.sum(1)
        last = seq_hidden[torch.arange(len(lengths), device=mask.device), lengths - 1]
        q = torch.sigmoid(
            self.linear_one(last)[:, None, :] + self.linear_two(seq_hidden)
        )
        alpha = self.linear_three(q)  # (B, L, 1)
        s_g = (alpha * seq_hidden * mask[:, :, None].to(seq_hidden.dtype)).sum(1)
        if not self.hybrid:
            return s_g
        return self.linear_transform(torch.cat([s_g, last], 1))

    def session_vectors(self, batch: SessionGraphBatch) -> Tensor:
        """Session vectors of a :class:`SessionGraphBatch`."""
        h = self.gnn(batch.adj_in, batch.adj_out, self.embedding(batch.nodes))
        seq_hidden = h.gather(1, batch.alias[:, :, None].expand(-1, -1, self.hidden))
        return self.readout(seq_hidden, batch.mask)

    def item_embeddings(self) -> Tensor:
        """``(num_items, H)`` embeddings of items ``1..num_items``."""
        return self.embedding.weight[1:]

    def forward(self, seqs: Tensor) -> Tensor:
        """Scores ``(B, num_items)`` of every item (column ``i`` = item ``i + 1``)
        after the 0-padded click sequences ``seqs``."""
        s = self.session_vectors(session_graph_batch(seqs))
        return s @ self.item_embeddings().T
