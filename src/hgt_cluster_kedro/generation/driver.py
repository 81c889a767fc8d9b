"""Run the planted generator over all blocks, in memory (local) or on dask.

One generator, two execution modes: :func:`generate_local` runs the blocks one
after another in this process and concatenates them; :func:`generate_dask`
builds lazy dask DataFrames whose partition ``b`` is block ``b``, so writing them
streams block by block on whatever cluster the active ``dask.distributed`` client
points at, and the result never depends on the number of workers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from hgt_cluster_kedro.progress import progress_bar

from .config import GeneratorConfig
from .planted import (
    COMMUNITY_COLUMNS,
    EDGE_COLUMNS,
    NOTE_COLUMNS,
    TOPIC_COLUMNS,
    USER_COLUMNS,
    communities_frame,
    edges_frame,
    notes_frame,
    topics_frame,
    users_frame,
)

logger = logging.getLogger(__name__)


@dataclass
class GeneratedGraph:
    """The generated tables: observable nodes and edges, and ground truth apart.

    ``nodes`` maps node type (``user``, ``note``) and ``edges`` maps relation name
    to a pandas DataFrame (local mode) or a lazy dask DataFrame (dask mode).
    """

    nodes: dict[str, Any]
    edges: dict[str, Any]
    user_communities: Any
    note_topics: Any


def _meta(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def _tables(config: GeneratorConfig):
    """(group, name, block function, columns, number of blocks) of every table."""
    n_note_blocks = min(config.n_parts, config.n_notes)
    yield "nodes", "user", users_frame, USER_COLUMNS, config.n_parts
    yield "nodes", "note", notes_frame, NOTE_COLUMNS, n_note_blocks
    for rel in config.relations:
        fn = partial(_edges_block, relation=rel)
        yield "edges", rel, fn, EDGE_COLUMNS, config.n_parts
    yield (
        "truth",
        "user_communities",
        communities_frame,
        COMMUNITY_COLUMNS,
        config.n_parts,
    )
    yield "truth", "note_topics", topics_frame, TOPIC_COLUMNS, n_note_blocks


def _edges_block(config: GeneratorConfig, block: int, *, relation: str) -> pd.DataFrame:
    return edges_frame(config, relation, block)


def _assemble(
    config: GeneratorConfig, built: dict[tuple[str, str], Any]
) -> GeneratedGraph:
    return GeneratedGraph(
        nodes={"user": built["nodes", "user"], "note": built["nodes", "note"]},
        edges={rel: built["edges", rel] for rel in config.relations},
        user_communities=built["truth", "user_communities"],
        note_topics=built["truth", "note_topics"],
    )


def generate_local(config: GeneratorConfig) -> GeneratedGraph:
    """Generate every table in this process (pandas, in memory)."""
    built: dict[tuple[str, str], Any] = {}
    start = time.perf_counter()
    n_edges = 0
    for group, name, fn, columns, n_blocks in _tables(config):
        parts = [
            fn(config, b)
            for b in progress_bar(
                range(n_blocks), desc=f"generate {name}", unit="block", leave=False
            )
        ]
        frame = pd.concat(parts, ignore_index=True).astype(columns)
        built[group, name] = frame
        if group == "edges":
            n_edges += len(frame)
            logger.info("Generated %s: %d edges", name, len(frame))
    seconds = time.perf_counter() - start
    logger.info(
        "Generated %d users, %d notes, %d edges in %.1f s (%.0f edges/s)",
        len(built["nodes", "user"]),
        len(built["nodes", "note"]),
        n_edges,
        seconds,
        n_edges / max(seconds, 1e-9),
    )
    return _assemble(config, built)


def generate_dask(config: GeneratorConfig) -> GeneratedGraph:
    """Lazy dask DataFrames, one partition per block; nothing is computed here."""
    import dask.dataframe as dd

    built = {
        (group, name): dd.from_map(
            partial(_typed_block, fn=fn, config=config, columns=columns),
            list(range(n_blocks)),
            meta=_meta(columns),
            divisions=[None] * (n_blocks + 1),
            label=f"generate-{name}",
            enforce_metadata=False,
        )
        for group, name, fn, columns, n_blocks in _tables(config)
    }
    logger.info(
        "Planned dask generation: %d blocks per table, %d edges in total",
        config.n_parts,
        sum(r.n_edges for r in config.relations.values()),
    )
    return _assemble(config, built)


def _typed_block(block: int, *, fn, config: GeneratorConfig, columns: dict[str, str]):
    return fn(config, block).astype(columns)


def generate(config: GeneratorConfig) -> GeneratedGraph:
    """Generate in the configured ``mode`` (``local`` or ``dask``)."""
    return generate_dask(config) if config.mode == "dask" else generate_local(config)


def expected_edge_counts(config: GeneratorConfig) -> dict[str, int]:
    """Exact number of edges each relation will have."""
    return {rel: int(np.int64(c.n_edges)) for rel, c in config.relations.items()}
