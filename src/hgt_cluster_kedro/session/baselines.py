"""Session-based baselines as the session literature reports them.

* popularity: train click counts, the same list for every prefix;
* session popularity, S-POP (Hidasi et al., ICLR 2016, the GRU4Rec baselines): the
  items of the prefix itself, most clicked there first, then train popularity. It
  measures how much of a log is re-views of items already in the session: on the
  Diginetica sample the target is in its prefix for about half of the test
  prefixes, which S-POP (and SKNN, whose neighbours hold the prefix's items) gets
  right while item-kNN (no self-similarity) cannot;
* item-kNN (Sarwar et al. 2001, the GRU4Rec / SR-GNN baseline): cosine of two
  items' session-membership vectors; a prefix scores items by their similarity
  to its last click;
* session-kNN, SKNN (Jannach & Ludewig, RecSys 2017): the ``k`` train sessions
  most similar (cosine of binary item sets) to the whole prefix vote for their
  items with their similarity.

The kNN scores add ``1e-6 x`` normalised popularity so items without evidence are
ordered by popularity rather than by id. Items are model ids ``1..n``; score
column ``i`` is item ``i + 1`` (as :class:`~hgt_cluster_kedro.models.srgnn.SRGNN`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .sessions import Sessions

#: weight of the popularity tie-breaker added to kNN scores
TIE_BREAK = 1e-6


def _membership(sessions: Sessions, num_items: int) -> sp.csr_matrix:
    """Binary sessions x items matrix (column ``i`` = item ``i + 1``)."""
    rows = sessions.session_index()
    m = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, sessions.items - 1)),
        shape=(len(sessions), num_items),
    )
    m.data[:] = 1.0  # repeats inside a session count once
    return m


def _rows(seqs: np.ndarray, num_items: int) -> sp.csr_matrix:
    """Binary prefix x items matrix of 0-padded sequences."""
    r, c = np.nonzero(seqs > 0)
    m = sp.csr_matrix(
        (np.ones(len(r), np.float32), (r, seqs[r, c] - 1)),
        shape=(len(seqs), num_items),
    )
    m.data[:] = 1.0
    return m


class Popularity:
    """Most clicked train items first."""

    def __init__(self, train: Sessions, num_items: int) -> None:
        counts = np.bincount(train.items - 1, minlength=num_items).astype(np.float32)
        self.pop = counts / max(float(counts.max()), 1.0)

    def scores(self, seqs: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.pop, (len(seqs), len(self.pop))).copy()


class SessionPopularity:
    """S-POP: items of the prefix by their count there, ties (and the rest) by
    train popularity."""

    def __init__(self, train: Sessions, num_items: int) -> None:
        self.num_items = num_items
        self.tie = TIE_BREAK * Popularity(train, num_items).pop

    def scores(self, seqs: np.ndarray) -> np.ndarray:
        r, c = np.nonzero(seqs > 0)
        counts = sp.csr_matrix(
            (np.ones(len(r), np.float32), (r, seqs[r, c] - 1)),
            shape=(len(seqs), self.num_items),
        )  # duplicates summed: in-prefix click counts
        return counts.toarray() + self.tie


class ItemKNN:
    """Item-to-item cosine over session co-occurrence, scored from the last click."""

    def __init__(self, train: Sessions, num_items: int) -> None:
        x = _membership(train, num_items)
        co = (x.T @ x).tocsr()
        norm = np.sqrt(np.asarray(co.diagonal(), dtype=np.float64))
        norm[norm == 0] = 1.0
        co.setdiag(0)
        co.eliminate_zeros()
        inv = sp.diags(1.0 / norm)
        self.sim = (inv @ co @ inv).astype(np.float32).tocsr()
        self.tie = TIE_BREAK * Popularity(train, num_items).pop

    def scores(self, seqs: np.ndarray) -> np.ndarray:
        lengths = (seqs > 0).sum(1)
        last = seqs[np.arange(len(seqs)), lengths - 1] - 1
        return self.sim[last].toarray() + self.tie


class SessionKNN:
    """SKNN: the ``k`` most similar train sessions vote for their items."""

    def __init__(self, train: Sessions, num_items: int, k: int = 100) -> None:
        if k < 1:
            raise ValueError(f"session.baselines.sknn_k must be >= 1 (got {k})")
        self.k = int(k)
        self.x = _membership(train, num_items)
        self.size = np.sqrt(np.asarray(self.x.sum(1)).ravel())
        self.size[self.size == 0] = 1.0
        self.num_items = num_items
        self.tie = TIE_BREAK * Popularity(train, num_items).pop

    def scores(self, seqs: np.ndarray) -> np.ndarray:
        """Sparse throughout until the final ``(B, n_items)`` scores: only the
        train sessions sharing an item with a prefix have a similarity; each
        prefix keeps its ``k`` most similar, ties to the earlier session."""
        q = _rows(seqs, self.num_items)
        q_size = np.sqrt(np.asarray(q.sum(1)).ravel())
        q_size[q_size == 0] = 1.0
        overlap = (q @ self.x.T).tocsr()
        overlap.sort_indices()
        rows = np.repeat(np.arange(len(seqs)), np.diff(overlap.indptr))
        cols = overlap.indices
        sim = overlap.data / q_size[rows] / self.size[cols]
        order = np.lexsort((cols, -sim, rows))  # rows stay in blocks
        place = np.arange(len(order)) - overlap.indptr[rows[order]]
        keep = order[place < self.k]
        top = sp.csr_matrix(
            (sim[keep].astype(np.float32), (rows[keep], cols[keep])),
            shape=overlap.shape,
        )
        return (top @ self.x).toarray() + self.tie
