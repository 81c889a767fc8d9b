"""The graph schema, from configuration: node types, relations, roles.

Nothing about users or notes is hard-coded: the fake user–note data is one
schema (``conf/base/parameters_graph.yml``), a bibliographic graph with four node
types is another (``conf/dblp/``), and both run through the same code.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EdgeType = tuple[str, str, str]


class NodeTypeConfig(BaseModel):
    """One node type: the id column of its table and its numeric features.

    Args:
        id_column: column of the node table holding the node id (unique).
        features: numeric columns used as input features (standardised); a type
            without features gets learnable id embeddings in the models.
        log_features: features transformed by ``log1p`` before standardising
            (heavy-tailed counts such as views); must be non-negative.
    """

    model_config = ConfigDict(extra="forbid")

    id_column: str
    features: list[str] = Field(default_factory=list)
    log_features: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _log_subset(self) -> NodeTypeConfig:
        extra = sorted(set(self.log_features) - set(self.features))
        if extra:
            raise ValueError(f"log_features {extra} must also be listed in features")
        return self


class RelationConfig(BaseModel):
    """One relation ``(src, name, dst)`` and the columns of its edge table."""

    model_config = ConfigDict(extra="forbid")

    src: str
    dst: str
    src_column: str
    dst_column: str
    weight_column: str | None = None
    time_column: str | None = None


class GraphSchema(BaseModel):
    """Node types, relations, and the roles the models and evaluation need.

    Args:
        node_types: node type name -> :class:`NodeTypeConfig`.
        relations: relation name -> :class:`RelationConfig` (names are unique).
        user_type: the node type that is embedded and clustered.
        item_type: the node type that is recommended.
        target_relations: relations (user -> item) that are the interactions to
            predict: they are split into train / valid / test.
    """

    model_config = ConfigDict(extra="forbid")

    node_types: dict[str, NodeTypeConfig]
    relations: dict[str, RelationConfig]
    user_type: str
    item_type: str
    target_relations: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> GraphSchema:
        types = set(self.node_types)
        for role in ("user_type", "item_type"):
            value = getattr(self, role)
            if value not in types:
                raise ValueError(
                    f"{role}={value!r} is not a node type; known: {sorted(types)}"
                )
        if self.user_type == self.item_type:
            raise ValueError("user_type and item_type must differ")
        for name, rel in self.relations.items():
            for end in ("src", "dst"):
                if getattr(rel, end) not in types:
                    raise ValueError(
                        f"relations.{name}.{end}={getattr(rel, end)!r} is not a node "
                        f"type; known: {sorted(types)}"
                    )
            if name.startswith("rev_"):
                raise ValueError(
                    f"relation name {name!r} must not start with 'rev_' (reserved for "
                    "the reverse relations added to the graph)"
                )
        for name in self.target_relations:
            rel = self.relations.get(name)
            if rel is None:
                raise ValueError(
                    f"target_relations: {name!r} is not a relation; known: "
                    f"{sorted(self.relations)}"
                )
            if (rel.src, rel.dst) != (self.user_type, self.item_type):
                raise ValueError(
                    f"target relation {name!r} goes {rel.src} -> {rel.dst}; target "
                    f"relations must go user_type -> item_type "
                    f"({self.user_type} -> {self.item_type})"
                )
        return self

    def edge_type(self, relation: str) -> EdgeType:
        """PyG edge type ``(src, relation, dst)`` of ``relation``."""
        rel = self.relations[relation]
        return (rel.src, relation, rel.dst)

    @property
    def edge_types(self) -> list[EdgeType]:
        return [self.edge_type(r) for r in self.relations]


class SplitConfig(BaseModel):
    """How the target interactions are split per user.

    A user with at least ``min_history`` distinct items holds out
    ``max(1, floor(n * test_fraction))`` items for test and as many by
    ``valid_fraction`` for validation: the latest ones (``temporal``) or random
    ones (``random``, seeded). Users with fewer items keep everything in train.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["temporal", "random"] = "temporal"
    valid_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    min_history: int = Field(default=5, ge=2)
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"valid_fraction + test_fraction = "
                f"{self.valid_fraction + self.test_fraction} must be < 1"
            )
        return self


class ValidationPolicy(BaseModel):
    """What to do with problems where a policy is more useful than a stop."""

    model_config = ConfigDict(extra="forbid")

    duplicate_edges: Literal["drop", "error"] = "drop"
    self_loops: Literal["drop", "error", "keep"] = "keep"


class PartitionConfig(BaseModel):
    """Partitioning of the graph for distributed training.

    Args:
        num_parts: number of parts (the original ran 20 graph servers).
        method: ``metis`` (pymetis, minimises edge cut) or ``hash`` (seeded).
        compare: also run the other method and report both side by side.
        hops: halo depth: every node within ``hops`` of an owned node is stored
            with the part, so a worker samples ``hops``-hop neighbourhoods locally.
        seed: seed of the hash partition and of METIS.
    """

    model_config = ConfigDict(extra="forbid")

    num_parts: int = Field(default=20, gt=0)
    method: Literal["metis", "hash"] = "metis"
    compare: bool = True
    hops: int = Field(default=2, ge=0)
    seed: int = Field(default=0, ge=0)


class GraphConfig(BaseModel):
    """Everything the ``graph`` pipeline reads from ``parameters_graph.yml``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    graph_schema: GraphSchema = Field(alias="schema")
    validation: ValidationPolicy = ValidationPolicy()
    split: SplitConfig = SplitConfig()
    partition: PartitionConfig = PartitionConfig()
