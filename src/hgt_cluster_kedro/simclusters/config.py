"""Parameters of the SimClusters pipeline, validated before anything runs.

:class:`SimClustersConfig` checks every number on its own (thresholds in
``[0, 1]``, positive sizes) and :meth:`SimClustersConfig.check_graph` checks it
against the graph (the follow relation exists in the schema and goes from the
users, ``k`` is at most the number of producers), so a bad parameter fails in the
first node with its name in the message, before any output is written.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hgt_cluster_kedro.generation.config import DaskConfig
from hgt_cluster_kedro.graph.schema import GraphSchema


class SimilarityConfig(BaseModel):
    """Producer–producer cosine similarity and its noise removal.

    Args:
        top_n: neighbours kept per producer (the most similar ones).
        threshold: similarities below this are dropped (in ``[0, 1]``).
        min_consumers: producers followed by fewer consumers get no similarity
            edges (too little evidence; they stay without a KnownFor community).
        max_consumer_degree: consumers following more producers are left out of
            the similarity (their pairs cost ``degree²`` and carry little signal);
            ``null`` keeps everyone. InterestedIn still uses all their edges.
        block_producers: producers per block of the sparse product (memory bound).
        kernel: ``numba`` (compiled sparse accumulator) or ``scipy`` (blockwise
            products); identical graphs.
    """

    model_config = ConfigDict(extra="forbid")

    top_n: int = Field(default=50, gt=0)
    threshold: float = Field(default=0.0, ge=0.0, le=1.0)
    min_consumers: int = Field(default=1, gt=0)
    max_consumer_degree: int | None = Field(default=None, gt=0)
    block_producers: int = Field(default=4096, gt=0)
    kernel: Literal["numba", "scipy"] = "numba"


class KnownForConfig(BaseModel):
    """Metropolis–Hastings community detection (see :mod:`.knownfor`).

    Args:
        k: number of communities.
        epochs: sweeps over all producers.
        penalty: cost of a non-similar pair inside a community, in units of the
            graph's mean pair similarity (the paper's ``1 / alpha``).
        inverse_temperature: acceptance ``exp(beta * gain / strength)``; large =
            greedy.
        p_random: probability that a proposal is a uniformly random community
            (or none) instead of a neighbour's community.
        init: ``neighbors`` (``k`` seed producers and their neighbours) or
            ``random`` (uniform labels).
        null_model: cost of a pair inside a community: ``uniform`` (the paper)
            or ``degree`` (modularity's expected similarity; robust to hubs).
        tolerance: stop when fewer than this fraction of producers moved in an
            epoch.
        restarts: independent chains; the highest final objective is kept.
        seed: random seed.
        compare_leiden: also run Leiden on the same graph and put time /
            modularity / agreement in the report: ``true`` (needs the ``bench``
            extra, an error without it), ``auto`` (when ``leidenalg`` is
            installed) or ``false``.
        leiden_resolution: resolution of Leiden's modularity (RBConfiguration).
    """

    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=16, gt=0)
    epochs: int = Field(default=30, gt=0)
    penalty: float = Field(default=1.0, gt=0.0)
    inverse_temperature: float = Field(default=20.0, gt=0.0)
    p_random: float = Field(default=0.05, ge=0.0, le=1.0)
    init: Literal["neighbors", "random"] = "neighbors"
    null_model: Literal["uniform", "degree"] = "uniform"
    tolerance: float = Field(default=0.001, ge=0.0, le=1.0)
    restarts: int = Field(default=1, gt=0)
    seed: int = Field(default=0, ge=0)
    compare_leiden: Literal["auto", "true", "false"] | bool = "auto"
    leiden_resolution: float = Field(default=1.0, gt=0.0)


class InterestedInConfig(BaseModel):
    """InterestedIn ``U = A · V`` and its noise removal.

    Args:
        top_m: communities kept per consumer.
        min_score: entries of the row-normalised ``U`` below this are dropped
            (in ``[0, 1]``).
        norm: row normalisation, ``l1`` (fractions) or ``l2`` (unit rows).
        mode: ``local`` (blocks in this process) or ``dask`` (one task per block
            on the dask cluster); both give identical output.
        block_rows: consumers per block (the unit of work in both modes).
        dask: LocalCluster or scheduler address, as ``data_generation.dask``.
    """

    model_config = ConfigDict(extra="forbid")

    top_m: int = Field(default=5, gt=0)
    min_score: float = Field(default=0.05, ge=0.0, le=1.0)
    norm: Literal["l1", "l2"] = "l2"
    mode: Literal["local", "dask"] = "local"
    block_rows: int = Field(default=65536, gt=0)
    dask: DaskConfig = Field(default_factory=DaskConfig)


class EmbeddingsConfig(BaseModel):
    """Producer and item embeddings.

    Args:
        producer_top_m: communities kept per producer embedding.
        item_top_m: communities kept per item embedding.
        item_min_score: entries of the (L2-normalised) item embedding below this
            are dropped (in ``[0, 1]``).
    """

    model_config = ConfigDict(extra="forbid")

    producer_top_m: int = Field(default=10, gt=0)
    item_top_m: int = Field(default=10, gt=0)
    item_min_score: float = Field(default=0.0, ge=0.0, le=1.0)


class SimClustersConfig(BaseModel):
    """All parameters of pipeline ``simclusters``.

    Args:
        follow_relation: relation (consumer = ``user_type`` -> producer), or a
            list of relations with the same producer type (their union), whose
            bipartite graph defines the communities.
        follow_weights: weight of each follow relation in ``A`` for InterestedIn
            and producer embeddings (``null``: 1 each; the similarity always
            uses the binary union).
        engagement_relations: relations (``user_type`` -> ``item_type``) whose
            engagers' InterestedIn make the item embeddings.
    """

    model_config = ConfigDict(extra="forbid")

    follow_relation: str | list[str]
    follow_weights: dict[str, float] | None = None
    engagement_relations: list[str] = Field(min_length=1)
    similarity: SimilarityConfig = Field(default_factory=SimilarityConfig)
    knownfor: KnownForConfig = Field(default_factory=KnownForConfig)
    interested_in: InterestedInConfig = Field(default_factory=InterestedInConfig)
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig)

    @property
    def follow_relations(self) -> list[str]:
        """``follow_relation`` as a list."""
        fr = self.follow_relation
        return [fr] if isinstance(fr, str) else list(fr)

    @classmethod
    def parse(cls, params: dict[str, Any] | SimClustersConfig) -> SimClustersConfig:
        """Validate ``params``; errors name the parameter (``simclusters.<path>``)."""
        if isinstance(params, cls):
            return params
        try:
            return cls.model_validate(params)
        except ValidationError as err:
            lines = [
                "simclusters."
                + ".".join(str(p) for p in e["loc"])
                + f": {e['msg']} (got {e.get('input')!r})"
                for e in err.errors()
            ]
            raise ValueError("invalid parameters:\n  " + "\n  ".join(lines)) from None

    def check_graph(self, schema: GraphSchema, num_nodes: dict[str, int]) -> str:
        """Check the relations and ``k`` against the graph; return the producer
        node type."""
        producers = set()
        if not self.follow_relations:
            raise ValueError("simclusters.follow_relation: no relation given")
        for name in self.follow_relations:
            rel = schema.relations.get(name)
            if rel is None:
                raise ValueError(
                    f"simclusters.follow_relation={name!r} is not a relation of the "
                    f"graph schema; known: {sorted(schema.relations)}"
                )
            if rel.src != schema.user_type:
                raise ValueError(
                    f"simclusters.follow_relation={name!r} goes {rel.src} -> "
                    f"{rel.dst}; its consumers must be the users ({schema.user_type})"
                )
            producers.add(rel.dst)
        if len(producers) > 1:
            raise ValueError(
                f"simclusters.follow_relation={self.follow_relation!r}: the relations "
                f"go to different producer types {sorted(producers)}"
            )
        producer_type = producers.pop()
        for name, w in (self.follow_weights or {}).items():
            if name not in self.follow_relations:
                raise ValueError(
                    f"simclusters.follow_weights: {name!r} is not one of "
                    f"follow_relation {self.follow_relations}"
                )
            if not w > 0:
                raise ValueError(
                    f"simclusters.follow_weights.{name} must be > 0, got {w}"
                )
        for name in self.engagement_relations:
            eng = schema.relations.get(name)
            if eng is None:
                raise ValueError(
                    f"simclusters.engagement_relations: {name!r} is not a relation "
                    f"of the graph schema; known: {sorted(schema.relations)}"
                )
            if (eng.src, eng.dst) != (schema.user_type, schema.item_type):
                raise ValueError(
                    f"simclusters.engagement_relations: {name!r} goes {eng.src} -> "
                    f"{eng.dst}; engagements must go {schema.user_type} -> "
                    f"{schema.item_type}"
                )
        n_producers = int(num_nodes[producer_type])
        if self.knownfor.k > n_producers:
            raise ValueError(
                f"simclusters.knownfor.k={self.knownfor.k} is larger than the number "
                f"of producers ({n_producers} {producer_type} nodes)"
            )
        return producer_type
