"""Classical recommenders and a community oracle, scored like every method.

What a practitioner tries first, next to popularity, and the ceiling of the
planted data:

* **EASE** (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data",
  WWW 2019): item-item weights in closed form,
  ``P = (X^T X + lambda I)^-1``, ``B = I - P diag(1 / diag(P))`` (so
  ``diag(B) = 0``), ``score(u, .) = X_u B``. The inverse is a dense
  ``n x n`` matrix over items, so EASE runs on the ``max_items`` most popular
  train items (30k items are 3.6 GB per fp32 matrix, and the inverse needs three
  of them): the other items are neither inputs nor recommended, and the share
  of train interactions and held-out pairs that fall on kept items is reported.
* **item-kNN** (Sarwar et al., WWW 2001; Deshpande & Karypis, TOIS 2004):
  cosine similarity of the items' train user sets,
  ``s(i, j) = |U_i & U_j| / sqrt(|U_i| |U_j|)``, each item keeping its
  ``neighbors`` most similar items; ``score(u, j) = sum_{i in I_u} s_n(i, j)``.
  The co-engagement counts are computed by blocks of items (sparse products),
  never as a full ``n x n`` matrix.
* **community oracle** (planted data only, an evaluation reference, never a
  training input): each user's true community ``c(u)``; items ranked by the
  number of train users of ``c(u)`` who engaged with them (ties by global
  popularity, then item id); the user's own train items excluded. On the
  planted generator this is the best a recall channel can do from train data.

Hyperparameters (EASE's ``lambda``, item-kNN's ``neighbors``) are chosen by
:func:`choose_on_validation` on the valid split, never on test.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .metrics import ranking_metrics
from .retrieval import (
    _SINK,
    Recommendations,
    _blocks,
    _first_k_allowed,
    _in_train,
    _topk_rows,
)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ------------------------------------------------------------------ helpers


def _check_train(train: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    if not sp.issparse(train) or train.ndim != 2:
        raise ValueError(
            "train must be a 2-D scipy sparse user x item matrix, got "
            f"{type(train).__name__}"
        )
    mat = sp.csr_matrix(train, dtype=np.float32, copy=True)
    mat.sum_duplicates()
    mat.data[:] = 1.0  # binary: a pair counts once
    return mat


def _check_query(query: np.ndarray | Sequence[int], n_users: int) -> np.ndarray:
    q = np.asarray(query)
    if q.ndim != 1 or (q.size and not np.issubdtype(q.dtype, np.integer)):
        raise ValueError(f"query_users must be a 1-D integer array, got {q.dtype}")
    q = q.astype(np.int64, copy=False)
    if q.size and (q.min() < 0 or q.max() >= n_users):
        bad = q[(q < 0) | (q >= n_users)]
        raise ValueError(
            f"query_users has ids outside [0, {n_users}), e.g. {bad[:5].tolist()}"
        )
    return q


def _check_k(k: int) -> int:
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got k={k!r}")
    return int(k)


def item_popularity(train: sp.csr_matrix) -> np.ndarray:
    """Distinct train users per item (``int64 [n_items]``)."""
    return np.bincount(train.indices, minlength=train.shape[1]).astype(np.int64)


def cooccurrence_blocks(
    train: sp.csr_matrix, block_size: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, C[start:stop])`` of the item co-engagement counts
    ``C = X^T X`` (``float32``, dense rows), ``block_size`` items at a time."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    xt = train.T.tocsr()
    n_items = train.shape[1]
    for start in range(0, n_items, block_size):
        stop = min(start + block_size, n_items)
        block = (xt[start:stop] @ train).toarray().astype(np.float32, copy=False)
        yield start, stop, block


def _topk_dense(
    scores: torch.Tensor, k: int, items: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` columns of each row (``-inf`` = banned, padded ``-1``), as
    item ids ``items[column]``."""
    kk = min(k, scores.shape[1])
    top = torch.topk(scores, kk, dim=1)
    cols = top.indices.numpy()
    vals = top.values.numpy().astype(np.float32, copy=False)
    ok = np.isfinite(vals)
    out_items = np.full((scores.shape[0], k), -1, dtype=np.int64)
    out_scores = np.full((scores.shape[0], k), -np.inf, dtype=np.float32)
    out_items[:, :kk] = np.where(ok, items[cols], -1)
    out_scores[:, :kk] = np.where(ok, vals, -np.inf)
    return out_items, out_scores


def _sparse_rows(rows: sp.csr_matrix, dtype: torch.dtype) -> torch.Tensor:
    """``rows`` as a torch CSR tensor (its product with a dense matrix runs on
    every thread, unlike scipy's)."""
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(rows.indptr.astype(np.int64)),
            torch.from_numpy(rows.indices.astype(np.int64)),
            torch.from_numpy(rows.data).to(dtype),
            size=rows.shape,
        )


# --------------------------------------------------------------------- EASE


def ease_weights(gram: torch.Tensor, l2: float) -> torch.Tensor:
    """EASE's ``B = I - P diag(1/diag(P))``, ``P = (G + l2 I)^-1`` (Steck 2019).

    Args:
        gram: ``[n, n]`` item Gram matrix ``X^T X`` (not modified).
        l2: the L2 penalty ``lambda > 0``.

    Returns:
        ``B`` with a zero diagonal, same dtype and device as ``gram``.
    """
    if not l2 > 0:
        raise ValueError(f"EASE l2 (lambda) must be > 0, got {l2}")
    a = gram.clone()
    a.diagonal().add_(float(l2))
    chol, info = torch.linalg.cholesky_ex(a)
    del a
    if int(info) != 0:
        raise ValueError(
            f"EASE: X^T X + {l2} I is not positive definite in "
            f"{gram.dtype} (pivot {int(info)}); use a larger l2 or dtype float64"
        )
    p = torch.cholesky_inverse(chol)
    del chol
    diag = p.diagonal().clone()
    p.div_(-diag)  # column j divided by -P_jj
    p.diagonal().zero_()
    return p


@dataclass
class EASE:
    """EASE (Steck, WWW 2019) on the ``max_items`` most popular train items.

    Attributes:
        l2: the L2 penalty ``lambda``.
        max_items: items kept (most popular first; ``None`` = every item with a
            train interaction).
        dtype: ``"float32"`` or ``"float64"`` for the Gram matrix and inverse.
        block_size: items per block of the sparse Gram product.
        items_: kept item ids, most popular first (after :meth:`fit`).
        weights_: ``B`` over the kept items (after :meth:`fit`).
    """

    l2: float = 500.0
    max_items: int | None = 5_000
    dtype: str = "float32"
    block_size: int = 2048
    items_: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    weights_: torch.Tensor = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(
                f"EASE dtype must be one of {list(DTYPES)}, got {self.dtype!r}"
            )
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(
                f"EASE max_items must be >= 1 or null, got {self.max_items}"
            )

    def gram(self, train: sp.csr_matrix) -> torch.Tensor:
        """Select the kept items (sets ``items_``) and return their Gram matrix."""
        train = _check_train(train)
        pop = item_popularity(train)
        order = np.argsort(-pop, kind="stable")
        keep = order[pop[order] > 0]
        if self.max_items is not None:
            keep = keep[: self.max_items]
        if keep.size == 0:
            raise ValueError("EASE: the train matrix has no interactions")
        self.items_ = keep.astype(np.int64)
        x = train[:, self.items_].tocsr()
        g = torch.empty((keep.size, keep.size), dtype=DTYPES[self.dtype])
        for start, stop, block in cooccurrence_blocks(x, self.block_size):
            g[start:stop] = torch.from_numpy(block)
        return g

    def fit(self, train: sp.csr_matrix, gram: torch.Tensor | None = None) -> EASE:
        """Fit ``B`` (reusing ``gram`` from :meth:`gram` when given)."""
        if gram is None:
            gram = self.gram(train)
        elif self.items_ is None:
            raise ValueError("EASE.fit: pass the gram of this instance's gram()")
        self.weights_ = ease_weights(gram, self.l2)
        return self

    def recommend(
        self,
        train: sp.csr_matrix,
        query_users: np.ndarray | Sequence[int],
        k: int,
        *,
        exclude_train: bool = True,
        chunk_size: int = 2048,
    ) -> Recommendations:
        """Top ``k`` kept items of ``X_u B`` per query user (own train items
        excluded). A user with none of the kept items gets them by popularity."""
        if self.weights_ is None:
            raise ValueError("EASE.recommend before fit")
        train = _check_train(train)
        q = _check_query(query_users, train.shape[0])
        k = _check_k(k)
        x = train[:, self.items_].tocsr()
        w = self.weights_
        by_pop = -torch.arange(self.items_.size, dtype=w.dtype)
        items = np.full((q.size, k), -1, dtype=np.int64)
        scores = np.full((q.size, k), -np.inf, dtype=np.float32)
        for start in range(0, q.size, chunk_size):
            rows = x[q[start : start + chunk_size]]
            s = _sparse_rows(rows, w.dtype) @ w  # nnz(rows) x n_kept
            empty = torch.from_numpy(np.diff(rows.indptr) == 0)
            if bool(empty.any()):
                s[empty] = by_pop
            if exclude_train:
                own = rows.tocoo()
                s[torch.from_numpy(own.row), torch.from_numpy(own.col)] = -torch.inf
            it, sc = _topk_dense(s.float(), k, self.items_)
            items[start : start + it.shape[0]] = it
            scores[start : start + it.shape[0]] = sc
        return Recommendations(items, scores)


# ----------------------------------------------------------------- item-kNN


@dataclass
class ItemKNN:
    """Item-based kNN (Sarwar et al. 2001; Deshpande & Karypis 2004): cosine
    over train co-engagement, ``neighbors`` most similar items kept per item.

    Attributes:
        neighbors: neighbours kept per item.
        block_size: items per block of the sparse co-engagement product.
        neighbor_ids_: ``int64 [n_items, neighbors]`` most similar first
            (``-1`` = none), after :meth:`fit`.
        neighbor_sims_: ``float32`` their cosine similarities.
    """

    neighbors: int = 100
    block_size: int = 1024
    neighbor_ids_: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    neighbor_sims_: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if isinstance(self.neighbors, bool) or int(self.neighbors) < 1:
            raise ValueError(f"item-kNN neighbors must be >= 1, got {self.neighbors!r}")

    def fit(self, train: sp.csr_matrix) -> ItemKNN:
        """Cosine similarities by item block, top ``neighbors`` per item."""
        train = _check_train(train)
        n_items = train.shape[1]
        norm = np.sqrt(item_popularity(train).astype(np.float32))
        inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
        n = min(int(self.neighbors), max(n_items - 1, 1))
        ids = np.full((n_items, n), -1, dtype=np.int64)
        sims = np.zeros((n_items, n), dtype=np.float32)
        for start, stop, counts in cooccurrence_blocks(train, self.block_size):
            cosine = counts * inv[start:stop, None] * inv[None, :]
            rows = np.arange(stop - start)
            cosine[rows, start + rows] = 0.0  # an item is not its own neighbour
            top = torch.topk(torch.from_numpy(cosine), n, dim=1)
            val = top.values.numpy()
            ids[start:stop] = np.where(val > 0, top.indices.numpy(), -1)
            sims[start:stop] = np.where(val > 0, val, 0.0)
        self.neighbor_ids_, self.neighbor_sims_ = ids, sims
        return self

    def truncated(self, neighbors: int) -> ItemKNN:
        """The same fit with only the ``neighbors`` most similar items kept."""
        if self.neighbor_ids_ is None:
            raise ValueError("ItemKNN.truncated before fit")
        if neighbors > self.neighbors:
            raise ValueError(
                f"item-kNN: {neighbors} neighbours asked, fitted with {self.neighbors}"
            )
        out = ItemKNN(neighbors=neighbors, block_size=self.block_size)
        out.neighbor_ids_ = self.neighbor_ids_[:, :neighbors]
        out.neighbor_sims_ = self.neighbor_sims_[:, :neighbors]
        return out

    def similarity(self) -> sp.csr_matrix:
        """The kept similarities as a sparse ``[n_items, n_items]`` matrix."""
        if self.neighbor_ids_ is None:
            raise ValueError("ItemKNN.similarity before fit")
        n_items, n = self.neighbor_ids_.shape
        ok = self.neighbor_ids_ >= 0
        rows = np.repeat(np.arange(n_items), n).reshape(n_items, n)
        return sp.csr_matrix(
            (self.neighbor_sims_[ok], (rows[ok], self.neighbor_ids_[ok])),
            shape=(n_items, n_items),
        )

    def recommend(
        self,
        train: sp.csr_matrix,
        query_users: np.ndarray | Sequence[int],
        k: int,
        *,
        exclude_train: bool = True,
        chunk_size: int = 4096,
        block_elems: int = 1 << 22,
    ) -> Recommendations:
        """Top ``k`` items by summed similarity to the user's train items
        (items with a zero score are not recommended; rows padded ``-1``)."""
        train = _check_train(train)
        if self.neighbor_ids_ is None:
            raise ValueError("ItemKNN.recommend before fit")
        if self.neighbor_ids_.shape[0] != train.shape[1]:
            raise ValueError(
                f"item-kNN was fitted on {self.neighbor_ids_.shape[0]} items, "
                f"train has {train.shape[1]}"
            )
        q = _check_query(query_users, train.shape[0])
        k = _check_k(k)
        sim = self.similarity()
        items = np.full((q.size, k), -1, dtype=np.int64)
        scores = np.full((q.size, k), -np.inf, dtype=np.float32)
        for start in range(0, q.size, chunk_size):
            own = train[q[start : start + chunk_size]]
            cand = own @ sim
            if exclude_train:
                cand = cand - _SINK * own
            cand = sp.csr_matrix(cand)
            vals = cand.data.astype(np.float32, copy=False)
            keep = vals > 0
            c = own.shape[0]
            row = np.repeat(np.arange(c, dtype=np.int64), np.diff(cand.indptr))
            indptr = np.zeros(c + 1, dtype=np.int64)
            np.cumsum(np.bincount(row[keep], minlength=c), out=indptr[1:])
            cols = cand.indices[keep].astype(np.int64)
            it, sc = _topk_rows(indptr, cols, vals[keep], k, block_elems)
            items[start : start + c] = it
            scores[start : start + c] = sc
        return Recommendations(items, scores)


# ------------------------------------------------------------------- oracle


def community_oracle_recommend(
    train: sp.csr_matrix,
    communities: np.ndarray,
    query_users: np.ndarray | Sequence[int],
    k: int,
    *,
    exclude_train: bool = True,
    chunk_size: int = 4096,
) -> Recommendations:
    """Items ranked by their train frequency in the user's true community.

    Args:
        train: binary ``[n_users, n_items]`` train matrix.
        communities: ``int [n_users]`` true community of every user (``-1`` =
            unknown: ranked by global popularity).
        query_users: users to recommend for.
        k: items per user.
        exclude_train: skip the user's own train items (default ``True``).
        chunk_size: query users per block (default ``4096``).

    Returns:
        :class:`Recommendations`; scores are the community counts.
    """
    train = _check_train(train)
    n_users, n_items = train.shape
    labels = np.asarray(communities)
    if labels.shape != (n_users,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"communities must be an integer array of shape ({n_users},), "
            f"got {labels.dtype} {labels.shape}"
        )
    q = _check_query(query_users, n_users)
    k = _check_k(k)
    known = labels >= 0
    codes, inverse = np.unique(labels[known], return_inverse=True)
    group = np.full(n_users, codes.size, dtype=np.int64)  # last row: unknown
    group[known] = inverse
    onehot = sp.csr_matrix(
        (np.ones(n_users, np.float32), (group, np.arange(n_users))),
        shape=(codes.size + 1, n_users),
    )
    counts = (onehot @ train).toarray()
    pop = item_popularity(train)
    counts[-1] = pop  # unknown community: global popularity
    # rank by community count, then global popularity, then item id
    order = np.stack([np.lexsort((np.arange(n_items), -pop, -row)) for row in counts])
    items = np.full((q.size, k), -1, dtype=np.int64)
    scores = np.full((q.size, k), -np.inf, dtype=np.float32)
    own_len = np.diff(train.indptr)
    counts_q = own_len[q] if exclude_train else None
    for rows in _blocks(np.arange(q.size), counts_q, chunk_size):
        qq = q[rows]
        width = min(
            n_items, k + (int(own_len[qq].max(initial=0)) if exclude_train else 0)
        )
        cand = order[group[qq], :width]
        banned = (
            _in_train(train, qq, cand) if exclude_train else np.zeros(cand.shape, bool)
        )
        it, _ = _first_k_allowed(cand, banned, k)
        items[rows] = it
        sc = counts[group[qq][:, None], np.maximum(it, 0)].astype(np.float32)
        scores[rows] = np.where(it >= 0, sc, -np.inf)
    return Recommendations(items, scores)


# ---------------------------------------------------------------- selection


def choose_on_validation(
    candidates: Sequence[Any],
    recommend: Callable[[Any], Recommendations],
    relevant: sp.csr_matrix,
    k: int,
    *,
    snapshot: Callable[[], Any] | None = None,
) -> tuple[Any, dict[str, float], Any]:
    """The candidate with the best validation ``recall@k`` (first on ties).

    Args:
        candidates: hyperparameter values, tried in order.
        recommend: value -> recommendations for the validation query users.
        relevant: their validation items (rows aligned with the query users).
        k: the cut-off of the selection metric.
        snapshot: called right after a candidate becomes the best; its result
            is returned (e.g. the fitted weights, so only the best stay in
            memory).

    Returns:
        ``(best value, {str(value): recall@k}, snapshot of the best or None)``.
    """
    if not candidates:
        raise ValueError("choose_on_validation: no candidate values")
    scores: dict[str, float] = {}
    best, best_score, kept = None, -np.inf, None
    for value in candidates:
        recs = recommend(value)
        score = ranking_metrics(recs.items, relevant, (k,))[f"recall@{k}"]
        scores[str(value)] = float(score)
        if score > best_score:
            best, best_score = value, score
            kept = snapshot() if snapshot is not None else None
    return best, scores, kept


# ------------------------------------------------------------ configuration


class EASEConfig(BaseModel):
    """``evaluation.classical_baselines.ease``."""

    model_config = ConfigDict(extra="forbid")
    l2: list[float] = Field(default=[50.0, 200.0, 500.0, 1000.0, 3000.0], min_length=1)
    max_items: int | None = Field(default=5_000, ge=1)
    dtype: str = "float32"
    block_size: int = Field(default=2048, ge=1)

    @field_validator("l2")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        bad = [v for v in value if not v > 0]
        if bad:
            raise ValueError(f"every l2 (lambda) must be > 0, got {bad}")
        return value

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, value: str) -> str:
        if value not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {value!r}")
        return value


class ItemKNNConfig(BaseModel):
    """``evaluation.classical_baselines.item_knn``."""

    model_config = ConfigDict(extra="forbid")
    neighbors: list[int] = Field(default=[5, 10, 20, 50, 100, 200], min_length=1)
    block_size: int = Field(default=1024, ge=1)

    @field_validator("neighbors")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        bad = [v for v in value if v < 1]
        if bad:
            raise ValueError(f"every neighbors value must be >= 1, got {bad}")
        return value


class ClassicalBaselinesConfig(BaseModel):
    """``evaluation.classical_baselines``: EASE and item-kNN, their
    hyperparameters chosen by validation ``recall@select_k``."""

    model_config = ConfigDict(extra="forbid")
    enabled: list[str] = Field(default=["ease", "item_knn"])
    select_k: int = Field(default=50, ge=1)
    ease: EASEConfig = Field(default_factory=EASEConfig)
    item_knn: ItemKNNConfig = Field(default_factory=ItemKNNConfig)

    @field_validator("enabled")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        bad = sorted(set(value) - {"ease", "item_knn"})
        if bad:
            raise ValueError(
                f"unknown classical baselines {bad}; known: ease, item_knn"
            )
        return value


# --------------------------------------------------------------- evaluation


def _metrics(recs: Recommendations, relevant: sp.csr_matrix, ks: Sequence[int]) -> dict:
    out = ranking_metrics(recs.items, relevant, ks)
    out["n_eval_users"] = out.pop("n_users")
    return out


class _Split:
    """Query users and their held-out items of one split."""

    def __init__(self, mat: sp.csr_matrix | None) -> None:
        has = mat is not None and mat.nnz > 0
        self.query = np.flatnonzero(np.diff(mat.indptr) > 0) if has else None
        self.relevant = mat[self.query] if has else None


def _need_valid(name: str, grid: Sequence[Any], valid: _Split) -> None:
    if len(grid) > 1 and valid.query is None:
        raise ValueError(
            f"evaluation.classical_baselines.{name}: {len(grid)} candidate values "
            "but the interactions have no valid pairs to choose among them "
            "(set graph.split.valid_fraction > 0, or give one value)"
        )


def _evaluate_ease(
    train: sp.csr_matrix,
    valid: _Split,
    test: _Split,
    cfg: EASEConfig,
    *,
    ks: tuple[int, ...],
    k_sel: int,
) -> dict[str, Any]:
    _need_valid("ease.l2", cfg.l2, valid)
    start = time.perf_counter()
    model = EASE(max_items=cfg.max_items, dtype=cfg.dtype, block_size=cfg.block_size)
    gram = model.gram(train)
    chosen, by_value = cfg.l2[0], {}
    if len(cfg.l2) > 1:

        def recs(l2: float) -> Recommendations:
            model.l2 = l2
            model.fit(train, gram)
            return model.recommend(train, valid.query, k_sel)

        chosen, by_value, weights = choose_on_validation(
            cfg.l2, recs, valid.relevant, k_sel, snapshot=lambda: model.weights_
        )
        model.l2, model.weights_ = chosen, weights
    else:
        model.l2 = chosen
        model.fit(train, gram)
    seconds = time.perf_counter() - start
    out = _metrics(model.recommend(train, test.query, max(ks)), test.relevant, ks)
    kept = np.zeros(train.shape[1], dtype=bool)
    kept[model.items_] = True
    out.update(
        {
            "l2": float(chosen),
            f"valid_recall@{k_sel}_by_l2": by_value,
            "n_items_kept": int(model.items_.size),
            "train_coverage": float(kept[train.indices].mean()),
            "test_coverage": float(kept[test.relevant.indices].mean()),
            "train_seconds": seconds,
        }
    )
    return out


def _evaluate_item_knn(
    train: sp.csr_matrix,
    valid: _Split,
    test: _Split,
    cfg: ItemKNNConfig,
    *,
    ks: tuple[int, ...],
    k_sel: int,
) -> dict[str, Any]:
    _need_valid("item_knn.neighbors", cfg.neighbors, valid)
    start = time.perf_counter()
    full = ItemKNN(neighbors=max(cfg.neighbors), block_size=cfg.block_size)
    full.fit(train)
    chosen, by_value = cfg.neighbors[0], {}
    if len(cfg.neighbors) > 1:
        chosen, by_value, _ = choose_on_validation(
            cfg.neighbors,
            lambda n: full.truncated(n).recommend(train, valid.query, k_sel),
            valid.relevant,
            k_sel,
        )
    model = full.truncated(chosen)
    seconds = time.perf_counter() - start
    out = _metrics(model.recommend(train, test.query, max(ks)), test.relevant, ks)
    out.update(
        {
            "neighbors": int(chosen),
            f"valid_recall@{k_sel}_by_neighbors": by_value,
            "train_seconds": seconds,
        }
    )
    return out


def evaluate_classical(
    train: sp.csr_matrix,
    valid: sp.csr_matrix | None,
    test: sp.csr_matrix,
    config: ClassicalBaselinesConfig,
    ks: Sequence[int],
) -> dict[str, dict[str, Any]]:
    """EASE and item-kNN fitted on ``train``, chosen on ``valid``, scored on
    ``test`` (binary ``[n_users, n_items]`` matrices; the query users of a split
    are the rows with a held-out item).

    Returns:
        ``{"ease": metrics, "item_knn": metrics}`` (those in
        ``config.enabled``), each with the chosen value, the validation recall
        of every candidate, ``train_seconds`` (fit and selection) and, for
        EASE, the kept items' coverage of train and test pairs.

    Raises:
        ValueError: several candidates but no validation pairs to choose among
            them, or an empty test matrix.
    """
    ks = tuple(int(k) for k in ks)
    train = _check_train(train)
    test_split = _Split(_check_train(test))
    if test_split.query is None:
        raise ValueError("evaluate_classical: the test matrix is empty")
    valid_split = _Split(None if valid is None else _check_train(valid))
    out: dict[str, dict[str, Any]] = {}
    if "ease" in config.enabled:
        out["ease"] = _evaluate_ease(
            train, valid_split, test_split, config.ease, ks=ks, k_sel=config.select_k
        )
    if "item_knn" in config.enabled:
        out["item_knn"] = _evaluate_item_knn(
            train,
            valid_split,
            test_split,
            config.item_knn,
            ks=ks,
            k_sel=config.select_k,
        )
    return out
