"""Parameters of the SimClusters pipeline, validated before anything runs.

:class:`SimClustersConfig` checks every number on its own (thresholds in
``[0, 1]``, positive sizes) and :meth:`SimClustersConfig.check_graph` checks it
against the graph (each follow relation or metapath exists in the schema, starts
at the users and chains type to type, ``k`` is at most the number of producers),
so a bad parameter fails in the first node with its name in the message, before
any output is written.

``follow_relation`` is one entry or a list of entries (their union, all ending at
the same producer type). An entry is a relation name (``writes``) or a metapath:
relations chained type to type, written dotted (``writes.in_venue``) or as a
list (``[writes, in_venue]``, so a list of entries reads
``[[writes, in_venue]]``). A hop may be a ``rev_`` twin (``writes.rev_writes``:
co-authors). A name that is itself a relation of the schema is that relation,
never split at its dots.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hgt_cluster_kedro.generation.config import DaskConfig
from hgt_cluster_kedro.graph.csr import REV_PREFIX, EdgeType, reverse_edge_type
from hgt_cluster_kedro.graph.schema import GraphSchema

#: one entry of ``follow_relation``: a relation, a dotted metapath
#: (``"writes.in_venue"``) or a metapath as a list of relations
FollowEntry = str | list[str]


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
        follow_relation: relation or metapath (consumer = ``user_type`` ->
            producer; see the module docstring), or a list of them with the same
            producer type (their union), whose bipartite graph defines the
            communities. A metapath's follow matrix is the sparse product of its
            hops' train adjacencies.
        follow_weights: weight of each follow entry (keyed by its name: the
            relation, or the dotted metapath ``writes.in_venue``) in ``A`` for
            InterestedIn and producer embeddings (``null``: 1 each, entries
            united by their element-wise maximum; the similarity always uses the
            binary union).
        metapath_weighting: value of a metapath's ``A[u, p]``: ``count`` (the
            number of paths ``u -> … -> p``, e.g. an author's papers in a
            venue) or ``binary`` (1 when there is any). Single relations are
            binary either way.
        engagement_relations: relations (``user_type`` -> ``item_type``) whose
            engagers' InterestedIn make the item embeddings (single relations:
            an item's embedding sums the users who engaged with it).
    """

    model_config = ConfigDict(extra="forbid")

    follow_relation: str | list[FollowEntry]
    follow_weights: dict[str, float] | None = None
    metapath_weighting: Literal["count", "binary"] = "count"
    engagement_relations: list[str] = Field(min_length=1)
    similarity: SimilarityConfig = Field(default_factory=SimilarityConfig)
    knownfor: KnownForConfig = Field(default_factory=KnownForConfig)
    interested_in: InterestedInConfig = Field(default_factory=InterestedInConfig)
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig)

    @property
    def follow_entries(self) -> list[FollowEntry]:
        """``follow_relation`` as a list of entries (as written)."""
        fr = self.follow_relation
        return [fr] if isinstance(fr, str) else list(fr)

    @property
    def follow_relations(self) -> list[str]:
        """Name of each follow entry: the relation, or the dotted metapath."""
        return [e if isinstance(e, str) else ".".join(e) for e in self.follow_entries]

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

    def follow_paths(self, schema: GraphSchema) -> list[list[EdgeType]]:
        """The edge types (hops) of every follow entry, checked against
        ``schema``: known relations (or ``rev_`` twins), the first hop from the
        users, each next hop from the node type the previous one ends at, and all
        entries ending at the same producer type.

        Raises:
            ValueError: naming ``simclusters.follow_relation`` and the value.
        """
        entries = self.follow_entries
        if not entries:
            raise ValueError("simclusters.follow_relation: no relation given")
        paths = [_entry_path(entry, schema) for entry in entries]
        hint = ""
        if isinstance(self.follow_relation, list) and len(entries) > 1:
            hint = (
                " (a list of entries is their union; a metapath is one entry, "
                "dotted 'a.b' or a nested list [[a, b]])"
            )
        for entry, path in zip(entries, paths, strict=True):
            _check_chain(entry, path, schema, hint)
        producers = {path[-1][2] for path in paths}
        if len(producers) > 1:
            raise ValueError(
                f"simclusters.follow_relation={self.follow_relation!r}: the entries "
                f"go to different producer types {sorted(producers)}"
            )
        return paths

    def check_graph(self, schema: GraphSchema, num_nodes: dict[str, int]) -> str:
        """Check the relations and ``k`` against the graph; return the producer
        node type."""
        producer_type = self.follow_paths(schema)[0][-1][2]
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


def _entry_path(entry: FollowEntry, schema: GraphSchema) -> list[EdgeType]:
    """Edge types of one follow entry (unchained; see :func:`_check_chain`)."""
    if isinstance(entry, str):
        if entry in schema.relations:
            return [schema.edge_type(entry)]
        hops = entry.split(".")
        if len(hops) == 1:
            raise ValueError(
                f"simclusters.follow_relation={entry!r} is not a relation of the "
                f"graph schema; known: {sorted(schema.relations)}"
            )
    else:
        hops = list(entry)
        if not hops:
            raise ValueError(
                f"simclusters.follow_relation={entry!r}: a metapath needs at least "
                "one relation"
            )
    path = []
    for hop in hops:
        if hop in schema.relations:
            path.append(schema.edge_type(hop))
        elif hop.startswith(REV_PREFIX) and hop[len(REV_PREFIX) :] in schema.relations:
            path.append(reverse_edge_type(schema.edge_type(hop[len(REV_PREFIX) :])))
        else:
            raise ValueError(
                f"simclusters.follow_relation={entry!r}: {hop!r} is not a relation "
                f"of the graph schema (nor a rev_ twin); known: "
                f"{sorted(schema.relations)}"
            )
    return path


def _check_chain(
    entry: FollowEntry, path: list[EdgeType], schema: GraphSchema, hint: str = ""
) -> None:
    """The first hop leaves the users, each next one leaves where the last ended."""
    src, _, dst = path[0]
    if src != schema.user_type:
        raise ValueError(
            f"simclusters.follow_relation={entry!r} goes {src} -> {dst}; its "
            f"consumers must be the users ({schema.user_type}){hint}"
        )
    for i in range(1, len(path)):
        prev, et = path[i - 1], path[i]
        if et[0] == prev[2]:
            continue
        here = sorted(
            [r for r, rel in schema.relations.items() if rel.src == prev[2]]
            + [
                REV_PREFIX + r
                for r, rel in schema.relations.items()
                if rel.dst == prev[2]
            ]
        )
        raise ValueError(
            f"simclusters.follow_relation={entry!r}: hop {i + 1} {et[1]!r} goes "
            f"{et[0]} -> {et[2]}, but the path is at {prev[2]!r} after hop {i} "
            f"{prev[1]!r}; hops must chain type to type (relations from "
            f"{prev[2]!r}: {here})"
        )
