"""Parameters of the planted-community generator, validated before anything runs.

The models here are the types of the ``params:data_generation`` node input, so
Kedro validates them before any node runs (nothing is written on a bad value), and
the same models validate a plain ``dict`` in notebooks and scripts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Relations the fake user–note generator knows, with the order of their signal
#: strength in the default parameters (share strongest, follow noisiest).
KNOWN_RELATIONS: tuple[str, ...] = ("follow_note", "comment_note", "share_note")


class RelationConfig(BaseModel):
    """How one relation's edges are drawn.

    Args:
        n_edges: exact number of distinct (user, note) edges to generate.
        p_in_community: probability that an edge goes to a note of the user's own
            community topic (the planted signal); the rest are drawn from global
            note popularity (noise).
        weight_mean: edge weight is ``1 + Poisson(weight_mean)``.
    """

    model_config = ConfigDict(extra="forbid")

    n_edges: int = Field(gt=0)
    p_in_community: float = Field(ge=0.0, le=1.0)
    weight_mean: float = Field(default=0.0, ge=0.0)


class SessionsConfig(BaseModel):
    """Planted session structure of one relation (optional; off by default, so
    the default data is unchanged).

    The relation's clicks of each user come in sessions (geometric lengths of
    mean ``mean_length``, clicks ``click_interval_s`` seconds apart on average).
    A session's first note is drawn as any edge of the relation; each next note
    is, with probability ``p_follow``, the planted successor of the previous one
    (the notes of every topic in a fixed random cyclic order), else a fresh draw.
    A user's repeated (user, note) clicks are dropped (edges stay distinct), so
    the relation has at most ``n_edges`` edges.

    Args:
        relation: the relation drawn as sessions.
        mean_length: mean clicks per session (> 1).
        p_follow: probability that the next note is the planted successor.
        click_interval_s: mean seconds between two clicks of a session.
    """

    model_config = ConfigDict(extra="forbid")

    relation: str = "follow_note"
    mean_length: float = Field(default=6.0, gt=1.0)
    p_follow: float = Field(default=0.8, ge=0.0, le=1.0)
    click_interval_s: float = Field(default=60.0, gt=0.0)


class DaskConfig(BaseModel):
    """Where the dask mode runs: a LocalCluster, or an existing scheduler."""

    model_config = ConfigDict(extra="forbid")

    scheduler_address: str | None = None
    n_workers: int = Field(default=2, gt=0)
    threads_per_worker: int = Field(default=1, gt=0)
    memory_limit: str = "4GiB"
    dashboard_address: str | None = None


class GeneratorConfig(BaseModel):
    """All parameters of the planted-community user–note generator.

    Users are split into ``n_parts`` contiguous blocks; block ``b`` is generated
    from its own seeded random stream, so the output depends on the parameters
    alone (never on the number of dask workers), and local and dask mode with the
    same ``n_parts`` produce identical tables.
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(ge=0)
    mode: Literal["local", "dask"] = "local"
    n_parts: int = Field(default=20, gt=0)
    n_users: int = Field(gt=0)
    n_notes: int = Field(gt=0)
    n_communities: int = Field(gt=0)
    relations: dict[str, RelationConfig]
    user_activity_alpha: float = Field(default=1.5, gt=0.0)
    note_popularity_alpha: float = Field(default=1.2, gt=0.0)
    community_size_concentration: float = Field(default=5.0, gt=0.0)
    max_degree_fraction: float = Field(default=0.25, gt=0.0, le=0.5)
    feature_signal: float = Field(default=0.2, ge=0.0, le=1.0)
    start_time: datetime = datetime(2024, 1, 1)
    end_time: datetime = datetime(2024, 7, 1)
    dask: DaskConfig = DaskConfig()
    sessions: SessionsConfig | None = None

    @field_validator("relations")
    @classmethod
    def _known_relations(
        cls, relations: dict[str, RelationConfig]
    ) -> dict[str, RelationConfig]:
        unknown = sorted(set(relations) - set(KNOWN_RELATIONS))
        if unknown:
            raise ValueError(
                f"unknown relation name(s) {unknown}; allowed: {list(KNOWN_RELATIONS)}"
            )
        missing = [r for r in KNOWN_RELATIONS if r not in relations]
        if missing:
            raise ValueError(
                f"missing relation(s) {missing}; the user–note generator needs all "
                f"of {list(KNOWN_RELATIONS)}"
            )
        return {r: relations[r] for r in KNOWN_RELATIONS}

    @model_validator(mode="after")
    def _consistent(self) -> GeneratorConfig:
        if self.n_communities > self.n_users:
            raise ValueError(
                f"n_communities={self.n_communities} must be <= n_users="
                f"{self.n_users} (allowed range: 1..n_users)"
            )
        if self.n_communities > self.n_notes:
            raise ValueError(
                f"n_communities={self.n_communities} must be <= n_notes="
                f"{self.n_notes} (each community needs a note topic)"
            )
        if self.n_parts > self.n_users:
            raise ValueError(
                f"n_parts={self.n_parts} must be <= n_users={self.n_users} "
                "(allowed range: 1..n_users)"
            )
        if self.sessions is not None and self.sessions.relation not in self.relations:
            raise ValueError(
                f"sessions.relation={self.sessions.relation!r} is not a relation; "
                f"known: {list(self.relations)}"
            )
        if self.end_time <= self.start_time:
            raise ValueError(
                f"end_time={self.end_time} must be after start_time={self.start_time}"
            )
        cap = self.max_degree
        for name, rel in self.relations.items():
            # every block must be able to hold its share at <= cap edges per user
            smallest_block = self.n_users // self.n_parts
            block_edges = -(-rel.n_edges * (smallest_block + 1) // self.n_users)
            if block_edges > smallest_block * cap:
                raise ValueError(
                    f"relations.{name}.n_edges={rel.n_edges} is too large: at most "
                    f"max_degree_fraction*n_notes={cap} distinct notes per user allow "
                    f"about {smallest_block * cap * self.n_users // (smallest_block + 1)}"
                    " edges; raise n_notes or max_degree_fraction, or lower n_edges"
                )
        return self

    @property
    def max_degree(self) -> int:
        """Most distinct notes one user may have in one relation."""
        return max(1, int(self.max_degree_fraction * self.n_notes))
