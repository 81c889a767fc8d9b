"""The parameter sections of the project and the checks that span sections.

:func:`check_parameters` validates every section a run reads (each with its
model, errors naming ``section.key``), then the rules that need more than one
section: the user count (known before the run from ``data_generation`` or
``ingestion``) against ``clustering.k``, the SOM grid, the joint SOM's centres
and ``graph.partition.num_parts``; the relations named by ``count_profile``,
``twhin`` and ``hgt`` against ``graph.schema``; the joint HGT + SOM's merged
training settings; and the graph schema against the tables the run's source
pipeline writes. Kedro-free: the hook in :mod:`hgt_cluster_kedro.hooks` calls it
before the first node runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from .errors import ParameterError, nearest
from .sections import (
    ClusteringParams,
    CountProfileParams,
    DataGenerationParams,
    EvaluationParams,
    GraphParams,
    HGTParams,
    HGTSomJointParams,
    IngestionParams,
    RunParams,
    SomParams,
    TwhinParams,
)

logger = logging.getLogger(__name__)

#: top-level parameter key -> its model
SECTIONS: dict[str, type[BaseModel]] = {
    "run": RunParams,
    "data_generation": DataGenerationParams,
    "ingestion": IngestionParams,
    "graph": GraphParams,
    "twhin": TwhinParams,
    "hgt": HGTParams,
    "hgt_som_joint": HGTSomJointParams,
    "count_profile": CountProfileParams,
    "clustering": ClusteringParams,
    "som": SomParams,
    "evaluation": EvaluationParams,
}

#: sections checked in every run (they decide what runs)
ALWAYS = ("run",)


def register_section(name: str, model: type[BaseModel]) -> None:
    """Add a section (a new method's parameters) to :data:`SECTIONS`."""
    SECTIONS[name] = model


def validate_section(name: str, raw: Any) -> BaseModel:
    """The validated model of section ``name`` (``raw`` ``None``: defaults)."""
    model = SECTIONS[name]
    return model.model_validate({} if raw is None else raw)


def _unknown_sections(params: Mapping[str, Any]) -> list[str]:
    """A top-level key that is one edit away from a section is a typo; other
    unknown keys (a user's own) are only logged."""
    problems = []
    for key in params:
        if key in SECTIONS:
            continue
        guess = nearest(key, SECTIONS, cutoff=0.8)
        if guess:
            problems.append(
                f"{key}: unknown parameter section; did you mean {guess!r}? "
                f"(sections: {', '.join(sorted(SECTIONS))})"
            )
        else:
            logger.debug("Parameter section %r has no model; not checked", key)
    return problems


def check_parameters(
    params: Mapping[str, Any],
    sections: Iterable[str],
    *,
    source: str | None = None,
) -> dict[str, BaseModel]:
    """Validate the ``sections`` a run reads and the rules across them.

    Args:
        params: the run's parameters (raw dicts or already validated models).
        sections: top-level sections read by the run's nodes.
        source: the pipeline of this run that writes the raw graph tables
            (``data_generation`` / ``ingestion``), ``None`` if none does.

    Returns:
        Section name -> validated model (a missing section gets its defaults).

    Raises:
        ParameterError: every problem found, one line each.
    """
    problems = _unknown_sections(params)
    validated: dict[str, BaseModel] = {}
    wanted = sorted({*sections, *ALWAYS, *([source] if source else [])})
    for name in wanted:
        if name not in SECTIONS:
            logger.debug("Parameter section %r has no model; not checked", name)
            continue
        if name not in params:
            try:
                validated[name] = validate_section(name, None)
            except ParameterError:
                problems.append(
                    f"{name}: section missing; a node of this run reads "
                    f"params:{name} and it has required keys (docs/own_data.md)"
                )
            continue
        try:
            validated[name] = validate_section(name, params[name])
        except ParameterError as exc:
            problems.extend(exc.problems)
    if not problems:
        problems.extend(cross_section_problems(validated, source))
    if problems:
        raise ParameterError(problems)
    return validated


def known_sizes(
    validated: Mapping[str, BaseModel], source: str | None
) -> tuple[int | None, int | None]:
    """``(users, nodes)`` known before the run from its source's parameters."""
    if source == "data_generation" and "data_generation" in validated:
        gen = validated["data_generation"]
        return gen.n_users, gen.n_users + gen.n_notes  # type: ignore[attr-defined]
    if source == "ingestion" and "ingestion" in validated and "graph" in validated:
        nodes = getattr(validated["ingestion"], "nodes", {}) or {}
        schema = validated["graph"].graph_schema  # type: ignore[attr-defined]
        counts = {t: getattr(nodes.get(t), "count", None) for t in schema.node_types}
        users = counts.get(schema.user_type)
        total = None if None in counts.values() else sum(counts.values())
        return users, total
    return None, None


def _schema_rules(validated: Mapping[str, BaseModel]) -> list[str]:
    graph = validated.get("graph")
    if graph is None:
        return []
    schema = graph.graph_schema  # type: ignore[attr-defined]
    relations = set(schema.relations)
    both = relations | {f"rev_{r}" for r in relations}
    out = []
    profile = validated.get("count_profile")
    if profile is not None:
        for step in profile.metapath:  # type: ignore[attr-defined]
            for name in [step] if isinstance(step, str) else step:
                if name not in both:
                    guess = nearest(name, both)
                    hint = f"did you mean {guess!r}? " if guess else ""
                    out.append(
                        f"count_profile.metapath: {name!r} is not a relation of "
                        f"graph.schema (or its rev_ twin); {hint}"
                        f"(relations: {', '.join(sorted(relations))})"
                    )
    twhin = validated.get("twhin")
    for name in getattr(twhin, "relations", None) or []:
        if name not in relations:
            out.append(
                f"twhin.relations: {name!r} is not a relation of graph.schema "
                f"(relations: {', '.join(sorted(relations))})"
            )
    hgt = validated.get("hgt")
    types = getattr(getattr(hgt, "train", None), "id_embedding_types", None)
    if isinstance(types, list):
        for name in set(types) - set(schema.node_types):
            out.append(
                f"hgt.train.id_embedding_types: {name!r} is not a node type of "
                f"graph.schema (node types: {', '.join(sorted(schema.node_types))})"
            )
    return out


def _source_rules(validated: Mapping[str, BaseModel], source: str | None) -> list[str]:
    """The generator writes fixed tables: a schema it cannot fill fails here,
    before the fake tables are written, not later in ``graph``."""
    gen, graph = validated.get("data_generation"), validated.get("graph")
    if source != "data_generation" or gen is None or graph is None:
        return []
    schema = graph.graph_schema  # type: ignore[attr-defined]
    written_types = {"user", "note"}
    written_rels = set(gen.relations)  # type: ignore[attr-defined]
    missing_types = sorted(set(schema.node_types) - written_types)
    missing_rels = sorted(set(schema.relations) - written_rels)
    if not (missing_types or missing_rels):
        return []
    what = []
    if missing_types:
        what.append(f"node types {missing_types}")
    if missing_rels:
        what.append(f"relations {missing_rels}")
    return [
        f"graph.schema: {' and '.join(what)} are not among the tables that "
        f"pipeline 'data_generation' (fake users and notes: node types "
        f"{sorted(written_types)}, relations {sorted(written_rels)}) writes in "
        "this run. To read your own files, add an `ingestion` section to the "
        "environment (then its default run starts with pipeline 'ingestion'; see "
        "docs/own_data.md), or set run.source: ingestion / none."
    ]


def _size_rules(validated: Mapping[str, BaseModel], source: str | None) -> list[str]:
    users, nodes = known_sizes(validated, source)
    out = []
    if users is not None:
        where = f"{users} users (from {source})"
        clustering = validated.get("clustering")
        if clustering is not None and clustering.k > users:  # type: ignore[attr-defined]
            out.append(f"clustering.k={clustering.k} is larger than the {where}")  # type: ignore[attr-defined]
        som = validated.get("som")
        if som is not None and som.rows * som.cols > users:  # type: ignore[attr-defined]
            out.append(
                f"som.rows x som.cols = {som.rows * som.cols} units is more than "  # type: ignore[attr-defined]
                f"the {where}"
            )
        joint = validated.get("hgt_som_joint")
        if joint is not None:
            centres = joint.train.objectives.som.num_centres  # type: ignore[attr-defined]
            if centres > users:
                out.append(
                    f"hgt_som_joint.train.objectives.som.num_centres={centres} is "
                    f"larger than the {where}"
                )
        evaluation = validated.get("evaluation")
        protocol = getattr(evaluation, "label_protocol", None)
        if protocol is not None and protocol.k is not None and protocol.k > users:
            out.append(
                f"evaluation.label_protocol.k={protocol.k} is larger than the {where}"
            )
    graph = validated.get("graph")
    if nodes is not None and graph is not None:
        parts = graph.partition.num_parts  # type: ignore[attr-defined]
        if parts > nodes:
            out.append(
                f"graph.partition.num_parts={parts} is larger than the {nodes} "
                f"nodes of the graph (from {source})"
            )
    return out


def cross_section_problems(
    validated: Mapping[str, BaseModel], source: str | None = None
) -> list[str]:
    """Problems that need more than one section (see the module docstring)."""
    out = _schema_rules(validated) + _source_rules(validated, source)
    out += _size_rules(validated, source)
    joint, hgt = validated.get("hgt_som_joint"), validated.get("hgt")
    if joint is not None and hgt is not None:
        try:
            joint.train_config(hgt)  # type: ignore[attr-defined]
        except ParameterError as exc:
            out.extend(exc.problems)
    return out


def stored_tables_problems(
    graph: BaseModel,
    node_tables: list[str],
    edge_tables: list[str],
    where: str,
    source: str,
) -> list[str]:
    """The raw tables a run will load (written by an earlier run) against
    ``graph.schema``: which pipeline wrote them, and the fix.

    Args:
        graph: the validated ``graph`` section.
        node_tables, edge_tables: table names of the latest ``raw_nodes`` /
            ``raw_edges`` versions.
        where: their location, for the message.
        source: this environment's source pipeline (``run.source`` resolved).
    """
    schema = graph.graph_schema  # type: ignore[attr-defined]
    missing_types = sorted(set(schema.node_types) - set(node_tables))
    missing_rels = sorted(set(schema.relations) - set(edge_tables))
    if not (missing_types or missing_rels):
        return []
    from hgt_cluster_kedro.generation.config import KNOWN_RELATIONS

    generated = set(node_tables) == {"user", "note"} and set(edge_tables) <= set(
        KNOWN_RELATIONS
    )
    writer = (
        "pipeline 'data_generation' (fake users and notes)"
        if generated
        else "pipeline 'ingestion' with another configuration"
    )
    what = [f"node types {missing_types}"] if missing_types else []
    what += [f"relations {missing_rels}"] if missing_rels else []
    if source == "ingestion":
        fix = (
            "This environment's source is pipeline 'ingestion': rerun it (the "
            "default run starts with it, or --pipelines ingestion,graph,...)."
        )
    else:
        fix = (
            f"This environment's source is '{source}' (run.source), which cannot "
            "write this schema: to read your own files add an `ingestion` section "
            "(docs/own_data.md), then run the default run."
        )
    return [
        f"graph.schema: {' and '.join(what)} are not in the stored raw tables "
        f"({where}: node tables {sorted(node_tables)}, edge tables "
        f"{sorted(edge_tables)}), written by {writer}. {fix}"
    ]
