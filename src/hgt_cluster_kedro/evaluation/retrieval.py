"""u2u2i retrieval: user -> most similar users -> the items they engaged with.

:func:`top_m_similar` finds each query user's ``m`` nearest users: exact by a
chunked matmul + ``torch.topk`` (on CPUs with AVX512-BF16 a bf16 matmul screens
``2m`` candidates, re-ranked in float32 and verified against the bf16 error
bound, so the result stays exact), or by a faiss index (``IndexFlatIP``: exact;
HNSW / IVF: approximate). :func:`u2u2i_recommend` scores the neighbours' train
items:

``score(u, i) = sum_{v in N_m(u), (v, i) in train} w(u, v)``, with
``w(u, v) = max(sim(u, v), 0) * (1 + beta * [c(v) == c(u)])``

where ``beta = cluster_boost`` and ``c`` the cluster labels (no boost without
labels; a negative label means "no cluster" and never matches). Negative
similarities are clipped to 0 (``clip_negative=True``): a dissimilar neighbour
does not vote against an item. Items with a score of 0, and (``exclude_train``)
the query user's own train items, are never recommended; rows are padded with
``-1``; ties go to the smaller item id. Scoring is a compiled pass per query
user (:mod:`._u2u2i_kernels`): the neighbours' train items summed into a dense
accumulator, then a bounded heap keeps the top ``k``.

With a popularity prior (``popularity_weight = w > 0``, the practice of blending
a personal channel with a global one) the scores are first divided by the row's
largest score and then mixed with the items' train popularity divided by the
largest: ``(1 - w) * score(u, i) / max_j score(u, j) + w * pop(i) / max_j pop(j)``;
the ``k + |own train items|`` most popular items join the candidates, so no item
outside them can enter the top ``k``. :mod:`.tuning` chooses ``m`` and ``w`` on
the validation split.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

from ..runtime import cpu_has_bf16, match_numba_threads
from .metrics import (
    DEFAULT_KS,
    check_id_range,
    interactions_csr,
    ranking_metrics,
    relevant_csr,
)

METRICS = ("cosine", "dot")
SEARCH_BACKENDS = ("exact", "faiss", "auto")
FAISS_INDEXES = ("flat", "hnsw", "ivf")
#: users from which ``backend="auto"`` searches with faiss: at 100k users faiss's
#: flat index found the same neighbours faster than the exact chunked search
#: (``benchmarks/bench_evaluation.py``, record ``evaluation.json``)
FAISS_THRESHOLD = 100_000
BASELINES = ("popularity", "random")
_SINK = np.float32(1e30)  # subtracted from a user's own train items


class Recommendations(NamedTuple):
    """Top-k items per query user, best first.

    Attributes:
        items: ``int64 [n_query, k]`` item ids, ``-1`` = padding.
        scores: ``float32 [n_query, k]`` their scores, ``-inf`` for padding.
    """

    items: np.ndarray
    scores: np.ndarray


# ------------------------------------------------------------------ validation


def check_embeddings(user_emb: np.ndarray | torch.Tensor) -> np.ndarray:
    """``user_emb`` as a C-contiguous ``float32 [n_users, d]`` array.

    Raises:
        ValueError: not 2-D, empty, or rows with NaN/inf (a few are named).
    """
    if isinstance(user_emb, torch.Tensor):
        user_emb = user_emb.detach().cpu().numpy()
    emb = np.ascontiguousarray(user_emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] == 0:
        raise ValueError(
            f"user_emb must be a non-empty 2-D [n_users, d] array, got shape {emb.shape}"
        )
    finite = np.isfinite(emb).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"user_emb has {bad.size} rows with NaN/inf, e.g. users {bad[:5].tolist()}"
        )
    return emb


def _check_query(
    query_users: np.ndarray | Sequence[int] | None, n_users: int
) -> np.ndarray:
    if query_users is None:
        return np.arange(n_users, dtype=np.int64)
    q = np.asarray(query_users)
    if q.ndim != 1:
        raise ValueError(f"query_users must be 1-D, got shape {q.shape}")
    if q.size and not np.issubdtype(q.dtype, np.integer):
        raise ValueError(f"query_users must hold integer ids, got dtype {q.dtype}")
    q = q.astype(np.int64, copy=False)
    check_id_range(q, n_users, "query_users (n_users from user_emb)")
    return q


def _check_positive(value: int, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
    return int(value)


def _check_pairs(
    pairs: tuple[np.ndarray, np.ndarray], name: str, n_users: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(pairs, (tuple, list)) or len(pairs) != 2:
        raise ValueError(f"{name} must be a (user, item) pair of arrays")
    user = np.asarray(pairs[0]).astype(np.int64, copy=False).ravel()
    item = np.asarray(pairs[1]).astype(np.int64, copy=False).ravel()
    if user.shape != item.shape:
        raise ValueError(
            f"{name}: user and item arrays differ in length ({user.size} != {item.size})"
        )
    check_id_range(user, n_users, f"{name} user (n_users={n_users} from user_emb)")
    check_id_range(item, n_items, f"{name} item (n_items={n_items})")
    return user, item


# --------------------------------------------------------------------- search


def _normalise(emb: np.ndarray, metric: str) -> np.ndarray:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric == "dot":
        return emb
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.maximum(norm, np.float32(1e-12))  # zero rows stay zero


def _drop_self(
    ids: np.ndarray, sims: np.ndarray, query: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """From ``m + 1`` results per row, drop the query itself (or the last one)."""
    n_q = ids.shape[0]
    is_self = ids == query[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), m)
    keep = np.ones(ids.shape, dtype=bool)
    keep[np.arange(n_q), drop] = False
    return ids[keep].reshape(n_q, m), sims[keep].reshape(n_q, m)


_BF16_EPS = 1.01 * (3 * 2.0**-9 + 2.0**-18)  # bf16 inputs and output, per |q||e|


def _search_exact(
    emb: np.ndarray,
    query: np.ndarray,
    m: int,
    *,
    exclude_self: bool,
    chunk_size: int,
    max_chunk_bytes: int,
    bf16: bool,
    overfetch: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Chunked ``Q @ E^T`` + ``topk``; with ``bf16``, screened then verified.

    Screening: a bf16 matmul (2-4x the float32 rate where the CPU has AVX512-BF16)
    picks ``m + overfetch`` candidates, their float32 similarities pick the top
    ``m``. Every similarity's bf16 error is at most
    ``e = eps ||q|| max_j ||e_j||`` (``eps ~ 3 * 2**-9``: rounding of both
    factors and of the product); if the ``m``-th float32 similarity exceeds the
    last candidate's screened score by more than ``e``, no other user can beat
    it and the row is exact. Other rows are recomputed in float32.
    """
    n_users = emb.shape[0]
    e = torch.from_numpy(emb)
    rows = max(1, min(chunk_size, max_chunk_bytes // (4 * n_users)))
    nbr = np.empty((query.size, m), dtype=np.int64)
    sim = np.empty((query.size, m), dtype=np.float32)
    width = min(m + overfetch, n_users - int(exclude_self))
    if bf16 and width > m:
        eb = e.to(torch.bfloat16)
        norms = torch.linalg.vector_norm(e, dim=1)
        eps = _BF16_EPS * float(norms.max())

    def exact_rows(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.mm(e[q], e.T)  # [rows, n_users], never n_users x n_users
        if exclude_self:
            scores[torch.arange(q.numel()), q] = float("-inf")
        top = torch.topk(scores, m, dim=1)
        return top.indices, top.values

    for start in range(0, query.size, rows):
        q = torch.from_numpy(query[start : start + rows])
        stop = start + q.numel()
        if not bf16 or width <= m:
            idx, val = exact_rows(q)
            nbr[start:stop], sim[start:stop] = idx.numpy(), val.numpy()
            continue
        screened = torch.mm(eb[q], eb.T)
        if exclude_self:
            screened[torch.arange(q.numel()), q] = float("-inf")
        cand = torch.topk(screened, width, dim=1)
        del screened
        exact = torch.bmm(e[cand.indices], e[q].unsqueeze(2)).squeeze(2)
        best = torch.topk(exact, m, dim=1)
        idx = torch.gather(cand.indices, 1, best.indices)
        val = best.values
        bound = cand.values[:, -1].float() + eps * norms[q]
        redo = torch.nonzero(~(val[:, -1] > bound)).squeeze(1)
        if redo.numel():
            idx_r, val_r = exact_rows(q[redo])
            idx[redo], val[redo] = idx_r, val_r
        nbr[start:stop], sim[start:stop] = idx.numpy(), val.numpy()
    return nbr, sim


def _faiss_index(emb: np.ndarray, kind: str, seed: int, options: dict[str, Any]) -> Any:
    import faiss

    d = emb.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, options["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = options["ef_construction"]
        index.hnsw.efSearch = options["ef_search"]
    elif kind == "ivf":
        nlist = options["ivf_nlist"] or max(1, int(4 * np.sqrt(emb.shape[0])))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed  # k-means of the coarse quantizer, and its sample
        index.train(emb)
        index.nprobe = options["ivf_nprobe"]
    else:
        raise ValueError(f"faiss_index must be one of {FAISS_INDEXES}, got {kind!r}")
    index.add(emb)
    return index


def _resolve_backend(backend: str, n_users: int, faiss_threshold: int) -> str:
    """``"auto"`` -> faiss from ``faiss_threshold`` users on, else exact."""
    if backend != "auto":
        return backend
    return "faiss" if n_users >= faiss_threshold else "exact"


def top_m_similar(
    user_emb: np.ndarray | torch.Tensor,
    query_users: np.ndarray | Sequence[int] | None,
    m: int,
    *,
    metric: str = "cosine",
    backend: str = "auto",
    faiss_threshold: int = FAISS_THRESHOLD,
    faiss_index: str = "flat",
    chunk_size: int = 4096,
    max_chunk_bytes: int = 1 << 30,
    exclude_self: bool = True,
    precision: str = "auto",
    overfetch: int | None = None,
    seed: int = 0,
    hnsw_m: int = 32,
    ef_construction: int = 80,
    ef_search: int = 128,
    ivf_nlist: int | None = None,
    ivf_nprobe: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` most similar users of each query user.

    Args:
        user_emb: ``float32 [n_users, d]`` embeddings (row = user id).
        query_users: user ids to search for (``None``: all users).
        m: neighbours per query, ``1 <= m <= n_users - exclude_self``.
        metric: ``"cosine"`` (rows L2-normalised first; zero rows stay zero) or
            ``"dot"`` (default ``"cosine"``).
        backend: ``"exact"`` (chunked ``torch`` matmul + ``topk``, never an
            ``n x n`` matrix), ``"faiss"`` (index ``faiss_index``) or ``"auto"``
            (faiss from ``faiss_threshold`` users on; default ``"auto"``).
        faiss_threshold: user count from which ``"auto"`` uses faiss
            (default :data:`FAISS_THRESHOLD`).
        faiss_index: ``"flat"`` (``IndexFlatIP``: exact), ``"hnsw"`` or ``"ivf"``
            (approximate; default ``"flat"``).
        chunk_size: query rows per matmul of the exact backend (default ``4096``).
        max_chunk_bytes: cap on one ``[rows, n_users]`` score block; lowers the
            rows per chunk for many users (default ``1 GiB``).
        exclude_self: never return the query user itself (default ``True``).
        precision: exact backend only: ``"bf16"`` (bf16 screening of
            ``m + overfetch`` candidates, float32 re-ranking, verified against the
            bf16 error bound and recomputed in float32 where it cannot be
            proven: same result as ``"fp32"``), ``"fp32"``, or ``"auto"`` (bf16
            on CPUs with AVX512-BF16/AMX; default ``"auto"``).
        overfetch: extra screened candidates (default ``None``: ``m``).
        seed: seed of the IVF quantizer's k-means (default ``0``). HNSW uses
            faiss's fixed internal level seed; its multi-threaded build may still
            differ slightly between runs.
        hnsw_m: HNSW graph degree (default ``32``).
        ef_construction: HNSW build beam (default ``80``).
        ef_search: HNSW search beam (default ``128``).
        ivf_nlist: IVF lists (default ``None``: ``4 sqrt(n_users)``).
        ivf_nprobe: IVF lists probed per query (default ``16``).

    Returns:
        ``(neighbors int64 [n_query, m], sims float32 [n_query, m])``, most
        similar first. Approximate indexes may return fewer than ``m``: those
        slots hold ``-1`` and ``-inf``.

    Raises:
        ValueError: NaN/inf embeddings, query ids out of range, bad ``m`` or
            options.
    """
    emb = check_embeddings(user_emb)
    n_users = emb.shape[0]
    query = _check_query(query_users, n_users)
    m = _check_positive(m, "m")
    if m > n_users - int(exclude_self):
        raise ValueError(
            f"m={m} neighbours but only {n_users - int(exclude_self)} candidates "
            f"(n_users={n_users}, exclude_self={exclude_self})"
        )
    _check_positive(chunk_size, "chunk_size")
    if backend not in SEARCH_BACKENDS:
        raise ValueError(f"backend must be one of {SEARCH_BACKENDS}, got {backend!r}")
    if faiss_index not in FAISS_INDEXES:
        raise ValueError(
            f"faiss_index must be one of {FAISS_INDEXES}, got {faiss_index!r}"
        )
    backend = _resolve_backend(backend, n_users, faiss_threshold)
    emb = _normalise(emb, metric)
    if query.size == 0:
        return np.zeros((0, m), np.int64), np.zeros((0, m), np.float32)
    if backend == "exact":
        if precision not in ("auto", "bf16", "fp32"):
            raise ValueError(
                f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}"
            )
        bf16 = precision == "bf16" or (precision == "auto" and cpu_has_bf16())
        return _search_exact(
            emb,
            query,
            m,
            exclude_self=exclude_self,
            chunk_size=chunk_size,
            max_chunk_bytes=max_chunk_bytes,
            bf16=bf16,
            overfetch=m if overfetch is None else int(overfetch),
        )
    options = {
        "hnsw_m": hnsw_m,
        "ef_construction": ef_construction,
        "ef_search": ef_search,
        "ivf_nlist": ivf_nlist,
        "ivf_nprobe": ivf_nprobe,
    }
    index = _faiss_index(emb, faiss_index, seed, options)
    extra = int(exclude_self)
    sims, ids = index.search(emb[query], m + extra)
    ids = ids.astype(np.int64, copy=False)
    sims = np.where(ids < 0, np.float32(-np.inf), sims).astype(np.float32)
    if exclude_self:
        ids, sims = _drop_self(ids, sims, query, m)
    return ids, sims


def neighbor_rows(
    searched: tuple[np.ndarray, np.ndarray, np.ndarray],
    query: np.ndarray,
    m: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``m`` neighbours (and similarities) of each ``query`` user,
    taken from one wider search.

    ``searched = (users, nbr, sims)``: :func:`top_m_similar` of the sorted,
    distinct ``users``. Lists are sorted by similarity, so the prefix is the
    top ``m``. It equals a search with ``m`` itself up to exact ties and
    rounding: users with the same similarity may come in another order, and at
    the ``m``-th place another of them may be kept; on CPUs with bf16 screening
    a similarity may differ in its last bit (re-ranked or recomputed in
    float32 depending on the width searched). An approximate index (HNSW)
    searched wider may also find better neighbours than a narrower search.

    Raises:
        ValueError: a query user not among ``users``, fewer than ``m`` columns.
    """
    users, nbr, sims = searched
    pos = np.searchsorted(users, query)
    found = pos < users.size
    found[found] = users[pos[found]] == query[found]
    if not found.all() or m > nbr.shape[1]:
        raise ValueError(
            f"the searched neighbours ({users.size} users, {nbr.shape[1]} each) "
            f"lack {int((~found).sum())} query users or m={m} columns"
        )
    return nbr[pos, :m], sims[pos, :m]


# -------------------------------------------------------------------- scoring


def _topk_rows(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    k: int,
    block_elems: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` entries of each CSR row, via padded ``torch.topk``.

    Rows are grouped by length (sorted) so the padding stays small; each group
    holds at most ``block_elems`` padded entries (or one row).
    """
    n = indptr.size - 1
    items = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    lengths = np.diff(indptr)
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    start = int(np.searchsorted(sorted_len, 1))  # skip empty rows
    while start < n:
        # largest block [start, stop) with (stop - start) * max_len <= block_elems
        span = np.arange(1, n - start + 1) * sorted_len[start:]
        stop = start + max(1, int(np.searchsorted(span, block_elems, side="right")))
        rows = order[start:stop]
        width = int(sorted_len[stop - 1])
        offs = np.arange(width)
        pos = indptr[rows][:, None] + offs
        inside = offs < lengths[rows][:, None]
        pos = np.where(inside, pos, 0)
        vals = np.where(inside, data[pos], np.float32(-np.inf)).astype(np.float32)
        kk = min(k, width)
        top = torch.topk(torch.from_numpy(vals), kk, dim=1)
        sel = top.indices.numpy()
        got = top.values.numpy()
        cols = np.take_along_axis(pos, sel, axis=1)
        ok = np.isfinite(got)
        items[rows, :kk] = np.where(ok, indices[cols], -1)
        scores[rows, :kk] = got
        start = stop
    return items, scores


def recommend_from_neighbors(
    neighbors: np.ndarray,
    sims: np.ndarray,
    query_users: np.ndarray,
    train: sp.csr_matrix,
    k: int,
    *,
    exclude_train: bool = True,
    cluster_labels: np.ndarray | None = None,
    cluster_boost: float = 0.0,
    clip_negative: bool = True,
    popularity_weight: float = 0.0,
    chunk_size: int = 4096,
) -> Recommendations:
    """Score the neighbours' train items (formula in the module docstring).

    Args:
        neighbors: ``int64 [n_query, m]`` neighbour ids (``-1`` = none).
        sims: ``float32 [n_query, m]`` their similarities.
        query_users: ``int64 [n_query]`` the query users.
        train: binary ``[n_users, n_items]`` CSR train matrix
            (:func:`~.metrics.interactions_csr`).
        k: items per query user.
        exclude_train: drop the query user's own train items (default ``True``).
        cluster_labels: ``int [n_users]`` cluster per user, or ``None``.
        cluster_boost: ``beta`` of the same-cluster weight ``1 + beta``
            (default ``0.0``; must be ``>= -1``).
        clip_negative: clip negative similarities to 0 (default ``True``;
            ``False`` lets them subtract).
        popularity_weight: ``w`` of the popularity prior, in ``[0, 1)``
            (default ``0.0``: none; module docstring).
        chunk_size: most query users per parallel task (default ``4096``;
            smaller tasks keep every thread busy).

    Returns:
        :class:`Recommendations`.
    """
    return recommend_from_neighbors_grid(
        neighbors,
        sims,
        query_users,
        train,
        k,
        popularity_weights=[popularity_weight],
        exclude_train=exclude_train,
        cluster_labels=cluster_labels,
        cluster_boost=cluster_boost,
        clip_negative=clip_negative,
        chunk_size=chunk_size,
    )[0]


def recommend_from_neighbors_grid(
    neighbors: np.ndarray,
    sims: np.ndarray,
    query_users: np.ndarray,
    train: sp.csr_matrix,
    k: int,
    *,
    popularity_weights: Sequence[float],
    exclude_train: bool = True,
    cluster_labels: np.ndarray | None = None,
    cluster_boost: float = 0.0,
    clip_negative: bool = True,
    chunk_size: int = 4096,
) -> list[Recommendations]:
    """:func:`recommend_from_neighbors` for several popularity weights at once,
    one :class:`Recommendations` per weight (in order). The neighbours' votes
    are summed once per query user and shared by every weight, so a
    validation grid over the weights costs about one scoring pass.

    Raises:
        ValueError: mismatched shapes, ``cluster_boost < -1``, a weight outside
            ``[0, 1)``, labels not one per user.
    """
    return recommend_from_neighbor_prefixes(
        neighbors,
        sims,
        query_users,
        train,
        k,
        m_grid=neighbors.shape[1:2],  # all the columns (a bad shape is refused)
        popularity_weights=popularity_weights,
        exclude_train=exclude_train,
        cluster_labels=cluster_labels,
        cluster_boost=cluster_boost,
        clip_negative=clip_negative,
        chunk_size=chunk_size,
    )[0]


def recommend_from_neighbor_prefixes(
    neighbors: np.ndarray,
    sims: np.ndarray,
    query_users: np.ndarray,
    train: sp.csr_matrix,
    k: int,
    *,
    m_grid: Sequence[int],
    popularity_weights: Sequence[float],
    exclude_train: bool = True,
    cluster_labels: np.ndarray | None = None,
    cluster_boost: float = 0.0,
    clip_negative: bool = True,
    chunk_size: int = 4096,
) -> list[list[Recommendations]]:
    """:func:`recommend_from_neighbors_grid` for every neighbour count ``m`` of
    ``m_grid`` too: ``out[i][j]`` scores the first ``m_grid[i]`` columns of the
    (sorted) neighbour lists with ``popularity_weights[j]``, exactly as a call
    on ``neighbors[:, :m]`` would. The votes are summed once per query user, in
    column order, and each ``m`` is scored when its prefix is complete: the
    whole ``(m, w)`` grid sums the votes of the largest ``m`` only (each pair
    still ranks its own top ``k``).

    Raises:
        ValueError: mismatched shapes, an ``m`` outside ``[0, n columns]``,
            ``cluster_boost < -1``, a weight outside ``[0, 1)``, labels not one
            per user.
    """
    k = _check_positive(k, "k")
    _check_positive(chunk_size, "chunk_size")
    n_users, n_items = train.shape
    n_q, m = neighbors.shape
    if sims.shape != neighbors.shape or query_users.shape != (n_q,):
        raise ValueError(
            f"neighbors {neighbors.shape}, sims {sims.shape} and query_users "
            f"{query_users.shape} do not match"
        )
    ms = np.asarray(m_grid, dtype=np.int64)
    if ms.size == 0 or ms.min() < 0 or ms.max() > m:
        raise ValueError(
            f"m_grid must list neighbour counts in [0, {m}], got {list(m_grid)}"
        )
    if not cluster_boost >= -1.0:
        raise ValueError(f"cluster_boost must be >= -1, got {cluster_boost}")
    weights = np.asarray([float(w) for w in popularity_weights], dtype=np.float64)
    if weights.size == 0 or not np.all((weights >= 0.0) & (weights < 1.0)):
        raise ValueError(
            f"popularity_weight must be in [0, 1), got {list(popularity_weights)}"
        )
    wts = _neighbor_weights(
        neighbors,
        sims,
        query_users,
        n_users=n_users,
        cluster_labels=cluster_labels,
        cluster_boost=cluster_boost,
        clip_negative=clip_negative,
    )
    stops = np.unique(ms)  # increasing checkpoints of the kernel
    train = train.tocsr()
    pop = np.bincount(train.indices, minlength=n_items).astype(np.float32)
    share = pop / np.float32(max(float(pop.max(initial=0.0)), 1.0))
    shape = (stops.size, weights.size, n_q, k)
    items = np.full(shape, -1, dtype=np.int64)
    scores = np.full(shape, -np.inf, dtype=np.float32)
    if n_q and n_items:
        from . import _u2u2i_kernels

        threads = match_numba_threads()
        # tasks of at most chunk_size rows, enough of them to keep threads busy
        rows = max(1, min(int(chunk_size), -(-n_q // (8 * threads))))
        _u2u2i_kernels.score_topk(
            train.indptr.astype(np.int64, copy=False),
            train.indices.astype(np.int64, copy=False),
            np.ascontiguousarray(neighbors, dtype=np.int64),
            wts,
            np.ascontiguousarray(query_users, dtype=np.int64),
            share,
            np.argsort(-pop, kind="stable").astype(np.int64),
            stops,
            weights,
            bool(exclude_train),
            bool(clip_negative),
            rows,
            items,
            scores,
        )
    return [
        [Recommendations(items[c, j], scores[c, j]) for j in range(weights.size)]
        for c in np.searchsorted(stops, ms)
    ]


def _neighbor_weights(
    neighbors: np.ndarray,
    sims: np.ndarray,
    query_users: np.ndarray,
    *,
    n_users: int,
    cluster_labels: np.ndarray | None,
    cluster_boost: float,
    clip_negative: bool,
) -> np.ndarray:
    """``w(u, v)`` of the module docstring per (query, neighbour); 0 for a
    missing neighbour or a non-finite similarity."""
    w = sims.astype(np.float32, copy=True)
    if clip_negative:
        np.maximum(w, 0.0, out=w)
    if cluster_labels is not None and cluster_boost != 0.0:
        labels = np.asarray(cluster_labels).astype(np.int64, copy=False)
        if labels.shape != (n_users,):
            raise ValueError(
                f"cluster_labels has shape {labels.shape}, expected ({n_users},) "
                "(one label per user of user_emb)"
            )
        own = labels[query_users][:, None]
        same = (labels[np.maximum(neighbors, 0)] == own) & (own >= 0)
        w *= np.float32(1.0) + np.float32(cluster_boost) * same
    w[(neighbors < 0) | ~np.isfinite(w)] = 0.0
    return np.ascontiguousarray(w)


def u2u2i_recommend(
    user_emb: np.ndarray | torch.Tensor,
    train_user: np.ndarray,
    train_item: np.ndarray,
    n_items: int,
    query_users: np.ndarray | Sequence[int] | None = None,
    *,
    m_neighbors: int = 50,
    k: int = 100,
    exclude_train: bool = True,
    cluster_labels: np.ndarray | None = None,
    cluster_boost: float = 0.0,
    clip_negative: bool = True,
    metric: str = "cosine",
    backend: str = "auto",
    chunk_size: int = 4096,
    **search_kwargs: Any,
) -> Recommendations:
    """u2u2i recall: top-``k`` items of the ``m_neighbors`` most similar users.

    ``score(u, i) = sum_{v in N_m(u), (v, i) in train} max(sim(u, v), 0) *
    (1 + cluster_boost * [c(v) == c(u)])``; see the module docstring.

    Args:
        user_emb: ``float32 [n_users, d]`` embeddings (row = user id).
        train_user: user id of every train interaction.
        train_item: item id of every train interaction (in ``[0, n_items)``).
        n_items: number of items.
        query_users: users to recommend for (``None``: all).
        m_neighbors: similar users per query (default ``50``).
        k: items per query (default ``100``).
        exclude_train: never recommend a user's own train items (default
            ``True``).
        cluster_labels: ``int [n_users]`` cluster of every user (default ``None``).
        cluster_boost: ``beta``: a same-cluster neighbour weighs ``1 + beta``
            times its similarity (default ``0.0``).
        clip_negative: clip negative similarities to 0 (default ``True``).
        metric: ``"cosine"`` or ``"dot"`` (default ``"cosine"``).
        backend: neighbour search backend of :func:`top_m_similar`
            (default ``"auto"``).
        chunk_size: query users per matmul / sparse product (default ``4096``).
        **search_kwargs: further options of :func:`top_m_similar`.

    Returns:
        :class:`Recommendations` ``(items int64 [n_q, k], scores float32)``.

    Raises:
        ValueError: NaN/inf embeddings, ids out of range (e.g. train users beyond
            ``n_users`` of ``user_emb``), ``k <= 0``, ``m_neighbors <= 0``.
    """
    emb = check_embeddings(user_emb)
    n_users = emb.shape[0]
    k = _check_positive(k, "k")
    m_neighbors = _check_positive(m_neighbors, "m_neighbors")
    _check_positive(n_items, "n_items")
    tu, ti = _check_pairs((train_user, train_item), "train", n_users, n_items)
    query = _check_query(query_users, n_users)
    train = interactions_csr(tu, ti, n_users, n_items)
    nbr, sims = top_m_similar(
        emb,
        query,
        m_neighbors,
        metric=metric,
        backend=backend,
        chunk_size=chunk_size,
        **search_kwargs,
    )
    return recommend_from_neighbors(
        nbr,
        sims,
        query,
        train,
        k,
        exclude_train=exclude_train,
        cluster_labels=cluster_labels,
        cluster_boost=cluster_boost,
        clip_negative=clip_negative,
        chunk_size=chunk_size,
    )


# ------------------------------------------------------------------ baselines


def _first_k_allowed(
    cand: np.ndarray, banned: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first ``k`` candidates not banned: ``(items, rank)``."""
    allowed = ~banned
    rank = np.cumsum(allowed, axis=1) - 1
    take = allowed & (rank < k)
    r, c = np.nonzero(take)
    out = np.full((cand.shape[0], k), -1, dtype=np.int64)
    out[r, rank[r, c]] = cand[r, c]
    pos = np.full((cand.shape[0], k), -1, dtype=np.int64)
    pos[r, rank[r, c]] = c
    return out, pos


def _blocks(
    rows: np.ndarray, counts: np.ndarray | None, size: int
) -> Iterator[np.ndarray]:
    """``rows`` in blocks of ``size``; with ``counts`` (each row's train items)
    sorted by it first, so that a block's candidate width (``k`` + its largest
    count) is not set by one heavy user among light ones."""
    if counts is not None:
        rows = rows[np.argsort(counts, kind="stable")]
    for start in range(0, rows.size, size):
        yield rows[start : start + size]


def _in_train(train: sp.csr_matrix, q: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """``bool`` like ``cand``: whether ``cand[r, j]`` is a train item of ``q[r]``.

    Every row the same list of distinct items (a broadcast, as popularity and
    c2i pass): the users' train items are looked up in a column table, one
    pass over their train entries. Otherwise a sorted search of row-item keys.
    """
    n_items = train.shape[1]
    own = train[q]
    rows = np.repeat(np.arange(q.size, dtype=np.int64), np.diff(own.indptr))
    shared = cand.ndim == 2 and cand.shape[0] > 1 and cand.strides[0] == 0
    if shared and np.unique(cand[0]).size == cand.shape[1]:
        column = np.full(n_items, -1, dtype=np.int64)
        column[cand[0]] = np.arange(cand.shape[1])
        cols = column[own.indices]
        hit = np.zeros(cand.shape, dtype=bool)
        hit[rows[cols >= 0], cols[cols >= 0]] = True
        return hit
    own_keys = rows * n_items + own.indices
    if own_keys.size == 0:
        return np.zeros(cand.shape, dtype=bool)
    keys = np.arange(q.size, dtype=np.int64)[:, None] * n_items + cand
    pos = np.searchsorted(own_keys, keys).clip(max=own_keys.size - 1)
    return own_keys[pos] == keys


def _baseline_inputs(
    train_user: np.ndarray,
    train_item: np.ndarray,
    n_items: int,
    query_users: np.ndarray | Sequence[int],
    *,
    k: int,
    n_users: int | None,
) -> tuple[sp.csr_matrix, np.ndarray, int]:
    k = _check_positive(k, "k")
    _check_positive(n_items, "n_items")
    tu = np.asarray(train_user).astype(np.int64, copy=False)
    q = np.asarray(query_users).astype(np.int64, copy=False)
    if n_users is None:
        n_users = int(max(tu.max(initial=-1), q.max(initial=-1))) + 1
    tu, ti = _check_pairs((tu, train_item), "train", n_users, n_items)
    q = _check_query(q, n_users)
    return interactions_csr(tu, ti, n_users, n_items), q, k


def popularity_recommend(
    train_user: np.ndarray,
    train_item: np.ndarray,
    n_items: int,
    query_users: np.ndarray | Sequence[int],
    k: int = 100,
    *,
    exclude_train: bool = True,
    n_users: int | None = None,
    chunk_size: int = 4096,
) -> Recommendations:
    """Most popular train items (by distinct users), the user's own excluded.

    Args:
        train_user: user id of every train interaction.
        train_item: item id of every train interaction.
        n_items: number of items.
        query_users: users to recommend for.
        k: items per user (default ``100``).
        exclude_train: skip the user's own train items (default ``True``).
        n_users: number of users (default ``None``: largest id seen + 1).
        chunk_size: query users per block (default ``4096``).

    Returns:
        :class:`Recommendations`; scores are popularity counts, ties broken by
        item id.
    """
    train, q, k = _baseline_inputs(
        train_user, train_item, n_items, query_users, k=k, n_users=n_users
    )
    pop = np.diff(train.tocsc().indptr).astype(np.float32)
    order = np.argsort(-pop, kind="stable")
    items = np.full((q.size, k), -1, dtype=np.int64)
    scores = np.full((q.size, k), -np.inf, dtype=np.float32)
    own_len = np.diff(train.indptr)
    counts = own_len[q] if exclude_train else None
    for rows in _blocks(np.arange(q.size), counts, chunk_size):
        qq = q[rows]
        width = min(
            n_items, k + (int(own_len[qq].max(initial=0)) if exclude_train else 0)
        )
        cand = np.broadcast_to(order[:width], (qq.size, width))
        banned = (
            _in_train(train, qq, cand) if exclude_train else np.zeros(cand.shape, bool)
        )
        it, _ = _first_k_allowed(cand, banned, k)
        items[rows] = it
        scores[rows] = np.where(it >= 0, pop[np.maximum(it, 0)], -np.inf)
    return Recommendations(items, scores)


def random_recommend(
    train_user: np.ndarray,
    train_item: np.ndarray,
    n_items: int,
    query_users: np.ndarray | Sequence[int],
    k: int = 100,
    *,
    exclude_train: bool = True,
    seed: int = 0,
    n_users: int | None = None,
    chunk_size: int = 4096,
    oversample: float = 2.0,
) -> Recommendations:
    """``k`` distinct items per user drawn uniformly (own train items excluded).

    Draws ``oversample * k / (1 - |own train| / n_items)`` items with
    replacement per user (users in blocks of similar ``|own train|``), keeps
    the first ``k`` distinct allowed ones (a uniform sample without
    replacement); users left short are redrawn from a full permutation.

    Args:
        train_user: user id of every train interaction.
        train_item: item id of every train interaction.
        n_items: number of items.
        query_users: users to recommend for.
        k: items per user (default ``100``).
        exclude_train: skip the user's own train items (default ``True``).
        seed: random seed (default ``0``).
        n_users: number of users (default ``None``: largest id seen + 1).
        chunk_size: query users per block (default ``4096``).
        oversample: draws per needed item (default ``2.0``).

    Returns:
        :class:`Recommendations` with scores 0 (``-inf`` for padding).
    """
    train, q, k = _baseline_inputs(
        train_user, train_item, n_items, query_users, k=k, n_users=n_users
    )
    rng = np.random.default_rng(seed)
    items = np.full((q.size, k), -1, dtype=np.int64)
    own_len = np.diff(train.indptr)
    counts = own_len[q] if exclude_train else None
    for rows in _blocks(np.arange(q.size), counts, chunk_size):
        qq = q[rows]
        # a draw is allowed with probability 1 - |own| / n_items: draw
        # oversample x the expected need (the redraw below covers bad luck)
        own_max = int(own_len[qq].max(initial=0)) if exclude_train else 0
        accept = max(1.0 - own_max / n_items, 1.0 / n_items)
        width = max(1, min(int(np.ceil(oversample * k / accept)), 4 * n_items))
        cand = rng.integers(0, n_items, size=(qq.size, width))
        order = np.argsort(cand, axis=1, kind="stable")
        srt = np.take_along_axis(cand, order, axis=1)
        dup = np.zeros(cand.shape, dtype=bool)
        np.put_along_axis(dup, order[:, 1:], srt[:, 1:] == srt[:, :-1], axis=1)
        banned = dup | (_in_train(train, qq, cand) if exclude_train else False)
        it, _ = _first_k_allowed(cand, banned, k)
        short = np.flatnonzero((it < 0).any(axis=1))
        if short.size:  # rare: redraw those users from full permutations
            perm = rng.permuted(np.tile(np.arange(n_items), (short.size, 1)), axis=1)
            banned = _in_train(train, qq[short], perm) if exclude_train else None
            if banned is None:
                banned = np.zeros(perm.shape, dtype=bool)
            it[short], _ = _first_k_allowed(perm, banned, k)
        items[rows] = it
    scores = np.where(items >= 0, np.float32(0.0), np.float32(-np.inf))
    return Recommendations(items, scores.astype(np.float32))


# ----------------------------------------------------------------- evaluation


def outside_train(
    relevant: sp.csr_matrix, train: sp.csr_matrix
) -> tuple[sp.csr_matrix, int]:
    """``relevant`` without the pairs that are also train pairs, and how many
    were dropped (a channel that excludes train items can never hit them)."""
    overlap = relevant.multiply(train).astype(bool)
    n_overlap = int(overlap.nnz)
    if n_overlap:
        relevant = (relevant.astype(np.int8) - overlap.astype(np.int8)).astype(bool)
        relevant.eliminate_zeros()
    return relevant.tocsr(), n_overlap


def _boost_metrics(
    plain: dict[str, Any], boosted: dict[str, float]
) -> dict[str, float]:
    """``<metric>_boost`` and ``<metric>_boost_delta`` (boosted - plain)."""
    out = {}
    for key, val in boosted.items():
        if "@" in key and key in plain:
            out[f"{key}_boost"] = val
            out[f"{key}_boost_delta"] = val - float(plain[key])
    return out


def _channel_search(
    emb: np.ndarray,
    query: np.ndarray,
    train_mat: sp.csr_matrix,
    *,
    m_neighbors: int,
    valid: tuple[np.ndarray, np.ndarray] | None,
    tuning: dict[str, Any] | None,
    search: dict[str, Any],
) -> tuple[
    tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None
]:
    """The one neighbour search of :func:`evaluate_u2u2i` and the checked
    validation pairs: ``((users, nbr, sims), valid)``.

    Without ``tuning``, the ``query`` users with ``m_neighbors`` (``valid`` is
    ``None``). With it, the sorted union of ``query`` and the users of the
    validation pairs with the largest ``m`` of ``m_neighbors`` and the (capped)
    grid: the plain and boosted channels, the validation grid and the tuned
    test scoring take prefixes of these lists (:func:`neighbor_rows`).
    """
    n_users, n_items = train_mat.shape
    if tuning is None:
        return (query, *top_m_similar(emb, query, m_neighbors, **search)), None
    from .tuning import capped_m_grid, check_grid

    if valid is None:
        raise ValueError("tuning needs the validation pairs (valid=None)")
    va_pairs = _check_pairs(valid, "valid", n_users, n_items)
    m_grid, _ = check_grid(
        tuning.get("m_grid", ()), tuning.get("popularity_weights", ())
    )
    m_search = max(m_neighbors, capped_m_grid(m_grid, n_users)[-1])
    # every user with a validation pair: a superset of the validation queries
    # (tuned_u2u2i drops pairs already in train), no relevant matrix built here
    users = np.union1d(query, va_pairs[0])
    return (users, *top_m_similar(emb, users, m_search, **search)), va_pairs


def evaluate_u2u2i(
    user_emb: np.ndarray | torch.Tensor,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    n_items: int,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    m_neighbors: int = 50,
    query_users: np.ndarray | Sequence[int] | None = None,
    cluster_labels: np.ndarray | None = None,
    cluster_boost: float = 0.5,
    metric: str = "cosine",
    backend: str = "auto",
    exclude_train: bool = True,
    clip_negative: bool = True,
    baselines: Sequence[str] = (),
    valid: tuple[np.ndarray, np.ndarray] | None = None,
    tuning: dict[str, Any] | None = None,
    seed: int = 0,
    chunk_size: int = 4096,
    **search_kwargs: Any,
) -> dict[str, float | int | str]:
    """Score an embedding by its u2u2i recall on held-out interactions.

    Recommends ``max(ks)`` items per query user (:func:`u2u2i_recommend`) and
    computes :func:`~.metrics.ranking_metrics` against the test items. With
    ``cluster_labels`` the same neighbours are re-scored with the cluster boost
    and the boosted metrics are reported as ``"<metric>_boost"`` with
    ``"<metric>_boost_delta"`` = boosted - plain. ``baselines`` add
    ``"<name>/<metric>"`` for :func:`popularity_recommend` /
    :func:`random_recommend`.

    Args:
        user_emb: ``float32 [n_users, d]`` embeddings (row = user id).
        train: ``(user, item)`` arrays of the train interactions.
        test: ``(user, item)`` arrays of the held-out interactions.
        n_items: number of items.
        ks: cut-offs (default ``(10, 50, 100)``).
        m_neighbors: similar users per query (default ``50``).
        query_users: users to evaluate (default ``None``: every user with a test
            item).
        cluster_labels: ``int [n_users]`` clusters for the boosted variant.
        cluster_boost: ``beta`` of the boosted variant (default ``0.5``).
        metric: ``"cosine"`` or ``"dot"`` (default ``"cosine"``).
        backend: neighbour search backend (default ``"auto"``).
        exclude_train: never recommend train items; test pairs that are also
            train pairs are then dropped from the relevant sets and counted in
            ``"n_test_in_train"`` (default ``True``).
        clip_negative: clip negative similarities to 0 (default ``True``).
        baselines: any of ``("popularity", "random")`` (default none).
        valid: ``(user, item)`` validation pairs, needed by ``tuning``.
        tuning: ``{"m_grid", "popularity_weights", "select_k"}``: also score the
            channel with ``m`` and a popularity prior chosen on ``valid``
            (:func:`~.tuning.tuned_u2u2i`), reported under ``"tuned"``
            (default ``None``: not done). Neighbours are then searched once,
            for the query and the validation query users and the largest
            ``m`` of ``m_neighbors`` and the grid; every channel takes
            prefixes of those lists (same neighbours as separate searches up
            to exact ties: :func:`neighbor_rows`).
        seed: seed of the random baseline and of seeded faiss indexes
            (default ``0``).
        chunk_size: query users per block (default ``4096``).
        **search_kwargs: further options of :func:`top_m_similar`.

    Returns:
        Metrics plus ``n_query_users``, ``n_test_pairs``, ``n_test_in_train``,
        ``m_neighbors``, ``k``, ``backend`` (resolved) and timings
        ``seconds_search`` (the one search), ``seconds_recommend``,
        ``seconds_metrics``, ``seconds_boost``, ``seconds_baselines``,
        ``seconds_total``.

    Raises:
        ValueError: NaN/inf embeddings, ids beyond ``n_users`` of ``user_emb`` or
            ``n_items``, an empty test set, bad ``ks``/``m_neighbors``/options.
    """
    t_start = time.perf_counter()
    emb = check_embeddings(user_emb)
    n_users = emb.shape[0]
    _check_positive(n_items, "n_items")
    m_neighbors = _check_positive(m_neighbors, "m_neighbors")
    ks = tuple(_check_positive(k, "k in ks") for k in ks)
    if not ks:
        raise ValueError("ks must name at least one cut-off")
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"baselines must be among {BASELINES}, got {sorted(unknown)}")
    tr_u, tr_i = _check_pairs(train, "train", n_users, n_items)
    te_u, te_i = _check_pairs(test, "test", n_users, n_items)
    if te_u.size == 0:
        raise ValueError("test is empty: no held-out interactions to evaluate")
    train_mat = interactions_csr(tr_u, tr_i, n_users, n_items)
    relevant = relevant_csr(te_u, te_i, n_users, n_items)
    n_test_in_train = 0
    if exclude_train:
        relevant, n_test_in_train = outside_train(relevant, train_mat)
    if query_users is None:
        query = np.flatnonzero(np.diff(relevant.indptr) > 0).astype(np.int64)
        if query.size == 0:
            raise ValueError("test: every held-out pair is also a train pair")
    else:
        query = _check_query(query_users, n_users)
    k_top = max(ks)
    rel_q = relevant[query]
    backend = _resolve_backend(
        backend, n_users, search_kwargs.get("faiss_threshold", FAISS_THRESHOLD)
    )
    t0 = time.perf_counter()
    searched, va_pairs = _channel_search(
        emb,
        query,
        train_mat,
        m_neighbors=m_neighbors,
        valid=valid,
        tuning=tuning,
        search={
            "metric": metric,
            "backend": backend,
            "chunk_size": chunk_size,
            "seed": seed,
            **search_kwargs,
        },
    )
    if tuning is None:
        nbr, sims = searched[1], searched[2]
    else:
        nbr, sims = neighbor_rows(searched, query, m_neighbors)
    t1 = time.perf_counter()
    common = {
        "exclude_train": exclude_train,
        "clip_negative": clip_negative,
        "chunk_size": chunk_size,
    }
    recs = recommend_from_neighbors(nbr, sims, query, train_mat, k_top, **common)
    t2 = time.perf_counter()
    out: dict[str, float | int | str] = dict(ranking_metrics(recs.items, rel_q, ks))
    t3 = time.perf_counter()
    out["n_query_users"] = int(query.size)
    out["n_eval_users"] = int(out.pop("n_users"))
    out["n_test_pairs"] = int(relevant.nnz)
    out["n_test_in_train"] = n_test_in_train
    out["m_neighbors"] = m_neighbors
    out["k"] = k_top
    out["backend"] = backend
    out["seconds_search"] = t1 - t0
    out["seconds_recommend"] = t2 - t1
    out["seconds_metrics"] = t3 - t2
    if cluster_labels is not None:
        boosted = recommend_from_neighbors(
            nbr,
            sims,
            query,
            train_mat,
            k_top,
            cluster_labels=cluster_labels,
            cluster_boost=cluster_boost,
            **common,
        )
        out.update(_boost_metrics(out, ranking_metrics(boosted.items, rel_q, ks)))
        out["cluster_boost"] = float(cluster_boost)
    out["seconds_boost"] = time.perf_counter() - t3
    if tuning is not None:
        from .tuning import tuned_u2u2i

        out["tuned"] = tuned_u2u2i(
            emb,
            train_mat,
            va_pairs,
            query,
            rel_q,
            ks=ks,
            metric=metric,
            backend=backend,
            seed=seed,
            chunk_size=chunk_size,
            neighbors=searched,
            **tuning,
            **search_kwargs,
        )
    t4 = time.perf_counter()
    base_opts = {
        "exclude_train": exclude_train,
        "chunk_size": chunk_size,
        "n_users": n_users,
    }
    for name in baselines:
        if name == "popularity":
            base = popularity_recommend(tr_u, tr_i, n_items, query, k_top, **base_opts)
        else:
            base = random_recommend(
                tr_u, tr_i, n_items, query, k_top, seed=seed, **base_opts
            )
        for key, val in ranking_metrics(base.items, rel_q, ks).items():
            if "@" in key:
                out[f"{name}/{key}"] = val
    out["seconds_baselines"] = time.perf_counter() - t4
    out["seconds_total"] = time.perf_counter() - t_start
    return out
