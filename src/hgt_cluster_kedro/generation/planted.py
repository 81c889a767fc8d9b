"""Planted-community generator for the user–note interaction graph.

Users belong to one of ``K`` communities and notes to one of ``K`` topics (topic
``k`` is community ``k``'s). Every relation draws each edge either from the
user's own topic (probability ``p_in_community``, the planted signal) or from the
global popularity of notes (noise). User activity and note popularity are
power-law (Pareto) distributed. Each user's degree per relation is fixed before
sampling and met exactly with *distinct* notes, so there are no duplicate
(user, note, relation) edges and no dropped remainders.

Users are split into ``n_parts`` contiguous, non-overlapping blocks; each block is
generated from its own ``numpy.random.SeedSequence`` stream keyed by
``(seed, stream, block)``. Output depends on the parameters alone: running the
blocks in one process (local mode) or on any number of dask workers gives the
same tables. Notes are generated in blocks too; every edge block needs the global
note topics and popularities, which it recomputes deterministically (cached per
process).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from .config import GeneratorConfig

logger = logging.getLogger(__name__)

_STREAM_GLOBAL = 0
_STREAM_USERS = 1
_STREAM_NOTES = 2
_STREAM_EDGES = 3
_STREAM_SESSIONS = 4
_MIXTURE_ROUNDS = 4

USER_COLUMNS = {
    "user_id": "int64",
    "age": "int16",
    "gender": "int8",
    "signup_time": "datetime64[ms]",
}
NOTE_COLUMNS = {
    "note_id": "int64",
    "views": "int64",
    "length": "int32",
    "created_time": "datetime64[ms]",
}
EDGE_COLUMNS = {
    "user_id": "int64",
    "note_id": "int64",
    "weight": "float32",
    "timestamp": "datetime64[ms]",
}
COMMUNITY_COLUMNS = {"user_id": "int64", "community": "int32"}
TOPIC_COLUMNS = {"note_id": "int64", "topic": "int32"}


def _rng(config: GeneratorConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=key))


def block_bounds(n: int, n_parts: int) -> np.ndarray:
    """Start offsets of ``n_parts`` contiguous blocks covering ``range(n)``.

    Returns ``n_parts + 1`` offsets; the first ``n % n_parts`` blocks are one
    longer, so nothing is dropped and blocks never overlap.
    """
    sizes = np.full(n_parts, n // n_parts, dtype=np.int64)
    sizes[: n % n_parts] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def allocate(total: int, sizes: np.ndarray) -> np.ndarray:
    """Split ``total`` into integer shares proportional to ``sizes`` (largest
    remainder), summing exactly to ``total``."""
    sizes = np.asarray(sizes, dtype=np.float64)
    quota = total * sizes / sizes.sum()
    shares = np.floor(quota).astype(np.int64)
    left = int(total - shares.sum())
    if left:
        order = np.lexsort((np.arange(len(sizes)), -(quota - shares)))
        shares[order[:left]] += 1
    return shares


@dataclass(frozen=True)
class _Globals:
    community_p: np.ndarray  # (K,)
    age_offset: np.ndarray  # (K,)
    length_offset: np.ndarray  # (K,)


def _globals(config: GeneratorConfig) -> _Globals:
    rng = _rng(config, _STREAM_GLOBAL)
    k = config.n_communities
    p = rng.dirichlet(np.full(k, config.community_size_concentration))
    return _Globals(
        community_p=p,
        age_offset=rng.permutation(np.linspace(-12.0, 12.0, k)),
        length_offset=rng.permutation(np.linspace(-1.0, 1.0, k)),
    )


def _times(config: GeneratorConfig) -> tuple[int, int]:
    start = int(pd.Timestamp(config.start_time).value // 1_000_000)
    end = int(pd.Timestamp(config.end_time).value // 1_000_000)
    return start, end


@dataclass(frozen=True)
class UserBlock:
    """Latent and observed attributes of one block of users."""

    user_id: np.ndarray
    community: np.ndarray
    activity: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    signup_ms: np.ndarray


def user_block(config: GeneratorConfig, block: int) -> UserBlock:
    """Generate the users of ``block`` (deterministic in parameters and block)."""
    bounds = block_bounds(config.n_users, config.n_parts)
    lo, hi = int(bounds[block]), int(bounds[block + 1])
    n = hi - lo
    g = _globals(config)
    rng = _rng(config, _STREAM_USERS, block)
    community = rng.choice(config.n_communities, size=n, p=g.community_p)
    activity = rng.pareto(config.user_activity_alpha, size=n) + 1.0
    age = 32.0 + config.feature_signal * g.age_offset[community]
    age = np.clip(np.rint(age + rng.normal(0.0, 8.0, size=n)), 16, 70)
    gender = rng.integers(0, 2, size=n)
    start, end = _times(config)
    # users sign up in the first half of the window, so everyone has a history
    signup = rng.integers(start, start + (end - start) // 2, size=n)
    return UserBlock(
        user_id=np.arange(lo, hi, dtype=np.int64),
        community=community.astype(np.int32),
        activity=activity,
        age=age.astype(np.int16),
        gender=gender.astype(np.int8),
        signup_ms=signup.astype(np.int64),
    )


def users_frame(config: GeneratorConfig, block: int) -> pd.DataFrame:
    """Observable user table of one block (no ground truth in it)."""
    ub = user_block(config, block)
    return pd.DataFrame(
        {
            "user_id": ub.user_id,
            "age": ub.age,
            "gender": ub.gender,
            "signup_time": ub.signup_ms.astype("datetime64[ms]"),
        }
    )


def communities_frame(config: GeneratorConfig, block: int) -> pd.DataFrame:
    """Planted ground truth of one block: the community of each user."""
    ub = user_block(config, block)
    return pd.DataFrame({"user_id": ub.user_id, "community": ub.community})


@dataclass(frozen=True)
class NoteBlock:
    note_id: np.ndarray
    topic: np.ndarray
    popularity: np.ndarray
    views: np.ndarray
    length: np.ndarray
    created_ms: np.ndarray


def note_block(config: GeneratorConfig, block: int) -> NoteBlock:
    """Generate the notes of ``block`` (notes are split in ``n_parts`` blocks too)."""
    n_parts = min(config.n_parts, config.n_notes)
    bounds = block_bounds(config.n_notes, n_parts)
    if block >= n_parts:
        empty = np.empty(0, dtype=np.int64)
        return NoteBlock(empty, empty, empty.astype(float), empty, empty, empty)
    lo, hi = int(bounds[block]), int(bounds[block + 1])
    n = hi - lo
    g = _globals(config)
    rng = _rng(config, _STREAM_NOTES, block)
    topic = rng.choice(config.n_communities, size=n, p=g.community_p)
    popularity = rng.pareto(config.note_popularity_alpha, size=n) + 1.0
    views = rng.poisson(20.0 * popularity * rng.lognormal(0.0, 0.5, size=n))
    length = 5.0 + config.feature_signal * g.length_offset[topic]
    length = np.exp(length + rng.normal(0.0, 0.6, size=n))
    start, end = _times(config)
    created = rng.integers(start, start + (end - start) * 9 // 10, size=n)
    return NoteBlock(
        note_id=np.arange(lo, hi, dtype=np.int64),
        topic=topic.astype(np.int32),
        popularity=popularity,
        views=views.astype(np.int64),
        length=np.maximum(length, 1).astype(np.int32),
        created_ms=created.astype(np.int64),
    )


def notes_frame(config: GeneratorConfig, block: int) -> pd.DataFrame:
    """Observable note table of one block."""
    nb = note_block(config, block)
    return pd.DataFrame(
        {
            "note_id": nb.note_id,
            "views": nb.views,
            "length": nb.length,
            "created_time": nb.created_ms.astype("datetime64[ms]"),
        }
    )


def topics_frame(config: GeneratorConfig, block: int) -> pd.DataFrame:
    """Planted ground truth of one note block: the topic of each note."""
    nb = note_block(config, block)
    return pd.DataFrame({"note_id": nb.note_id, "topic": nb.topic})


@dataclass(frozen=True)
class NoteSampler:
    """Inverse-CDF samplers over notes: within one topic, and over all notes,
    both proportional to note popularity."""

    order: np.ndarray  # note ids sorted by topic
    topic_cdf: np.ndarray  # topic + within-topic cumulative share, in (t, t+1]
    seg_start: np.ndarray  # (K,) first index of each topic in ``order``
    seg_end: np.ndarray  # (K,) one past the last index
    global_cdf: np.ndarray  # cumulative popularity share over all notes
    created_ms: np.ndarray  # (n_notes,)

    def in_topic(self, topics: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One note per entry of ``topics``; entries of empty topics get noise."""
        idx = np.searchsorted(self.topic_cdf, topics + rng.random(len(topics)))
        lo, hi = self.seg_start[topics], self.seg_end[topics]
        empty = hi <= lo
        idx = np.clip(idx, lo, np.maximum(hi - 1, lo))
        notes = self.order[np.minimum(idx, len(self.order) - 1)]
        if empty.any():
            notes[empty] = self.popular(int(empty.sum()), rng)
        return notes

    def popular(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` notes drawn by global popularity."""
        idx = np.searchsorted(self.global_cdf, rng.random(n), side="right")
        return np.minimum(idx, len(self.global_cdf) - 1).astype(np.int64)


@lru_cache(maxsize=4)
def _note_sampler_cached(config_json: str) -> NoteSampler:
    config = GeneratorConfig.model_validate_json(config_json)
    blocks = [note_block(config, b) for b in range(min(config.n_parts, config.n_notes))]
    topic = np.concatenate([b.topic for b in blocks])
    pop = np.concatenate([b.popularity for b in blocks])
    created = np.concatenate([b.created_ms for b in blocks])
    k = config.n_communities
    order = np.argsort(topic, kind="stable")
    topic_sorted = topic[order]
    pop_sorted = pop[order]
    totals = np.bincount(topic, weights=pop, minlength=k)
    seg_start = np.searchsorted(topic_sorted, np.arange(k), side="left")
    seg_end = np.searchsorted(topic_sorted, np.arange(k), side="right")
    before = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
    within = (np.cumsum(pop_sorted) - before[topic_sorted]) / totals[topic_sorted]
    global_cdf = np.cumsum(pop)
    global_cdf /= global_cdf[-1]
    return NoteSampler(
        order=order.astype(np.int64),
        topic_cdf=topic_sorted + within,
        seg_start=seg_start,
        seg_end=seg_end,
        global_cdf=global_cdf,
        created_ms=created,
    )


def note_sampler(config: GeneratorConfig) -> NoteSampler:
    """Samplers over all notes (computed once per process and parameters)."""
    return _note_sampler_cached(config.model_dump_json())


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort + adjacent compare; faster than np.unique's
    hash path for large int64 arrays)."""
    values = np.sort(values)
    if len(values) == 0:
        return values
    return values[np.r_[True, values[1:] != values[:-1]]]


def _degrees(
    total: int, activity: np.ndarray, cap: int, rng: np.random.Generator
) -> np.ndarray:
    """Per-user degrees summing to ``total``, proportional to activity, each
    at most ``cap`` (excess re-drawn among the users below the cap)."""
    deg = rng.multinomial(total, activity / activity.sum())
    while True:
        excess = int(np.maximum(deg - cap, 0).sum())
        if excess == 0:
            return deg
        deg = np.minimum(deg, cap)
        room = (deg < cap) * activity
        if room.sum() <= 0:
            raise ValueError(
                f"cannot place {excess} more edges: every user of the block is at "
                f"the degree cap {cap}; raise n_notes or max_degree_fraction"
            )
        deg = deg + rng.multinomial(excess, room / room.sum())


@lru_cache(maxsize=4)
def _successors_cached(config_json: str) -> np.ndarray:
    config = GeneratorConfig.model_validate_json(config_json)
    ns = note_sampler(config)
    rng = _rng(config, _STREAM_SESSIONS)
    succ = np.empty(config.n_notes, dtype=np.int64)
    for t in range(config.n_communities):
        notes = rng.permutation(ns.order[ns.seg_start[t] : ns.seg_end[t]])
        succ[notes] = np.roll(notes, -1)
    return succ


def planted_successors(config: GeneratorConfig) -> np.ndarray:
    """``succ[note]``: the planted next note of ``note`` (its topic's notes in a
    fixed random cyclic order); the transition oracle of ``sessions``."""
    return _successors_cached(config.model_dump_json())


def _session_edges(
    config: GeneratorConfig,
    rel_index: int,
    deg: np.ndarray,
    ub: UserBlock,
    block: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clicks of ``sessions.relation``: ``(user_local, note, time_ms)``, each
    user's ``deg`` clicks in sessions that follow the planted successors; repeated
    (user, note) clicks dropped (the first kept)."""
    sc = config.sessions
    rel = config.relations[sc.relation]
    ns = note_sampler(config)
    succ = planted_successors(config)
    rng = _rng(config, _STREAM_SESSIONS, rel_index, block)
    user = np.repeat(np.arange(len(deg)), deg)
    starts = np.r_[0, np.cumsum(deg)[:-1]]
    first_of_user = np.zeros(len(user), bool)
    first_of_user[starts[deg > 0]] = True
    new = first_of_user | (rng.random(len(user)) < 1.0 / sc.mean_length)
    session = np.cumsum(new) - 1
    position = np.arange(len(user)) - np.flatnonzero(new)[session]
    note = np.empty(len(user), dtype=np.int64)
    follow = rng.random(len(user)) < sc.p_follow
    inside = rng.random(len(user)) < rel.p_in_community
    for pos in range(int(position.max(initial=-1)) + 1):
        at = np.flatnonzero(position == pos)
        fresh = at if pos == 0 else at[~follow[at]]
        ins = fresh[inside[fresh]]
        note[ins] = ns.in_topic(ub.community[user[ins]], rng)
        out = fresh[~inside[fresh]]
        note[out] = ns.popular(len(out), rng)
        if pos:
            chained = at[follow[at]]
            note[chained] = succ[note[chained - 1]]
    _, end = _times(config)
    n_sessions = int(session[-1]) + 1 if len(session) else 0
    span = 86_400_000  # sessions start at least a day before the end
    lo = ub.signup_ms[user[new]]
    begin = lo + (rng.random(n_sessions) * np.maximum(end - span - lo, 1)).astype(
        np.int64
    )
    step = rng.exponential(sc.click_interval_s * 1000.0, len(user)).astype(np.int64)
    step[new] = 0
    within = np.cumsum(step) - np.cumsum(step)[np.flatnonzero(new)][session]
    time = begin[session] + within
    key = user.astype(np.int64) * config.n_notes + note
    order = np.lexsort((time, key))
    keep = np.zeros(len(key), bool)
    ks = key[order]
    keep[order[np.r_[True, ks[1:] != ks[:-1]]] if len(ks) else order] = True
    return user[keep], note[keep], time[keep]


def edges_frame(config: GeneratorConfig, relation: str, block: int) -> pd.DataFrame:
    """Edges of ``relation`` whose user lies in ``block``.

    Every user gets exactly its drawn degree of distinct notes: candidates are
    drawn, de-duplicated, and the deficit is re-drawn (from global popularity
    only after a few rounds, so users whose topic is smaller than their degree
    still finish).
    """
    rel_index = list(config.relations).index(relation)
    rel = config.relations[relation]
    bounds = block_bounds(config.n_users, config.n_parts)
    block_total = int(allocate(rel.n_edges, np.diff(bounds))[block])
    ub = user_block(config, block)
    ns = note_sampler(config)
    rng = _rng(config, _STREAM_EDGES, rel_index, block)
    n_notes = config.n_notes
    deg = _degrees(block_total, ub.activity, config.max_degree, rng)
    if config.sessions is not None and config.sessions.relation == relation:
        user_local, note, ts = _session_edges(config, rel_index, deg, ub, block)
        weight = 1.0 + rng.poisson(rel.weight_mean, size=len(note))
        order = np.lexsort((note, user_local))
        return pd.DataFrame(
            {
                "user_id": ub.user_id[user_local[order]],
                "note_id": note[order],
                "weight": weight.astype(np.float32),
                "timestamp": ts[order].astype("datetime64[ms]"),
            }
        )

    local = np.arange(len(ub.user_id))
    keys = np.empty(0, dtype=np.int64)
    deficit = deg
    rounds = 0
    while deficit.any():
        slots = np.repeat(local, deficit)
        notes = np.empty(len(slots), dtype=np.int64)
        if rounds < _MIXTURE_ROUNDS:
            inside = rng.random(len(slots)) < rel.p_in_community
            notes[inside] = ns.in_topic(ub.community[slots[inside]], rng)
            notes[~inside] = ns.popular(int((~inside).sum()), rng)
        else:  # the few users still short finish with uniform draws
            notes = rng.integers(0, n_notes, size=len(slots))
        fresh = _sorted_unique(slots.astype(np.int64) * n_notes + notes)
        if len(keys):
            pos = np.minimum(np.searchsorted(keys, fresh), len(keys) - 1)
            fresh = fresh[keys[pos] != fresh]
        # two sorted runs: the stable sort (timsort) merges them in linear time
        keys = np.sort(np.concatenate([keys, fresh]), kind="stable")
        deficit = deficit - np.bincount(fresh // n_notes, minlength=len(local))
        rounds += 1

    user_local = keys // n_notes
    note = keys % n_notes
    weight = 1.0 + rng.poisson(rel.weight_mean, size=len(keys))
    _, end = _times(config)
    lower = np.maximum(ns.created_ms[note], ub.signup_ms[user_local])
    ts = lower + (rng.random(len(keys)) * (end - lower)).astype(np.int64)
    return pd.DataFrame(
        {
            "user_id": ub.user_id[user_local],
            "note_id": note,
            "weight": weight.astype(np.float32),
            "timestamp": ts.astype("datetime64[ms]"),
        }
    )
