"""What to read, from configuration (``parameters_ingestion.yml``).

The *output* columns come from the graph schema (``graph.schema``): node id and
feature columns per node type, source / destination / weight / time columns per
relation. This configuration only says where the data is and how to parse it:
the file, its format, its columns, and which file column holds what.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: a configured fill value (parsed like the column's other values)
Scalar = str | int | float | bool

Format = Literal["csv", "tsv", "whitespace", "parquet", "npy", "npz"]
TEXT_FORMATS = ("csv", "tsv", "whitespace")
MATRIX_FORMATS = ("npy", "npz")

#: format of a file by its suffix, when ``format`` is not given
SUFFIX_FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "whitespace",
    ".dat": "whitespace",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".npy": "npy",
    ".npz": "npz",
}


class FileSource(BaseModel):
    """One input file.

    Args:
        path: file path; a relative path is resolved against ``ingestion.root``.
        format: ``csv``, ``tsv``, ``whitespace`` (any run of blanks), ``parquet``,
            ``npy`` (numpy array) or ``npz`` (scipy sparse matrix); ``None``
            infers it from the suffix (``.txt`` = whitespace).
        header: text formats: the first line names the columns (default: yes for
            csv / tsv, no for whitespace).
        sep: text formats: separator overriding the format's (e.g. ``";"``).
        names: column names: of a text file without header (one per field), a
            renaming of the header's columns otherwise; of a matrix's columns
            (npy / npz features).
        encoding: text encoding.
        na_values: column -> strings that mean "missing" in that column (besides
            an empty field, which always does; blanks around a value are
            ignored). Only the columns the ingestion uses are checked: a missing
            value elsewhere is never an error.
        fill: column -> the value replacing a missing value of that column
            (parsed like the column's other values). A missing value left
            unfilled in a used column is an error naming the file, line and
            column.
    """

    model_config = ConfigDict(extra="forbid")

    path: str
    format: Format | None = None
    header: bool | None = None
    sep: str | None = None
    names: list[str] | None = None
    encoding: str = "utf-8"
    na_values: dict[str, list[str]] = Field(default_factory=dict)
    fill: dict[str, Scalar] = Field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The format, given or inferred from the suffix."""
        if self.format:
            return self.format
        suffix = Path(self.path).suffix.lower()
        if suffix not in SUFFIX_FORMATS:
            raise ValueError(
                f"{self.path}: cannot infer the format from suffix {suffix!r}; set "
                f"format to one of {sorted(set(SUFFIX_FORMATS.values()))}"
            )
        return SUFFIX_FORMATS[suffix]

    @property
    def has_header(self) -> bool:
        """Whether a text file starts with a header line."""
        if self.header is not None:
            return self.header
        return self.kind in ("csv", "tsv")

    @model_validator(mode="after")
    def _check(self) -> FileSource:
        kind = self.kind
        if kind not in TEXT_FORMATS and (self.sep is not None or self.header):
            raise ValueError(f"{self.path}: sep / header apply to text files only")
        if kind in TEXT_FORMATS and not self.has_header and not self.names:
            raise ValueError(
                f"{self.path}: a text file without header needs names (one per field)"
            )
        if self.names is not None and len(set(self.names)) != len(self.names):
            raise ValueError(f"{self.path}: names must be unique, got {self.names}")
        if kind in MATRIX_FORMATS and (self.na_values or self.fill):
            raise ValueError(f"{self.path}: na_values / fill apply to tables only")
        try:
            codecs.lookup(self.encoding)
        except LookupError as exc:
            raise ValueError(
                f"{self.path}: unknown encoding {self.encoding!r}"
            ) from exc
        return self


class FeatureSource(FileSource):
    """A feature matrix joined to a node type by row (row i = node at position i).

    Args:
        prefix: feature columns are ``<prefix>0 … <prefix>{d-1}`` unless ``names``
            are given (the graph schema lists the feature columns it uses).
    """

    prefix: str = "f"

    @model_validator(mode="after")
    def _matrix(self) -> FeatureSource:
        if self.kind not in MATRIX_FORMATS:
            raise ValueError(
                f"{self.path}: feature sources are npy / npz matrices; give a node "
                "table (nodes.<type>.table) for features in a table"
            )
        return self


class CategoricalColumn(BaseModel):
    """A categorical column of a node table turned into numbers.

    Args:
        encoding: ``onehot``: one 0/1 column ``<prefix><value>`` per category
            (in vocabulary order) replaces the column; ``index``: the column
            becomes the integer position of its value in the vocabulary (for an
            embedding lookup), the vocabulary recorded in the node table's
            ``attrs["vocabularies"]`` (kept in its parquet metadata) and logged.
        categories: the vocabulary in order; a value outside it is an error
            naming the file, line and column. ``None``: the distinct values
            seen, sorted (numerically when every value is an integer).
        prefix: one-hot column names are ``<prefix><value>`` (default
            ``<column>_``).
    """

    model_config = ConfigDict(extra="forbid")

    encoding: Literal["onehot", "index"] = "onehot"
    categories: list[str] | None = Field(default=None, min_length=1)
    prefix: str | None = None

    @model_validator(mode="after")
    def _check(self) -> CategoricalColumn:
        if self.categories is not None and len(set(self.categories)) != len(
            self.categories
        ):
            raise ValueError(f"categories must be unique, got {self.categories}")
        if self.prefix is not None and self.encoding != "onehot":
            raise ValueError("prefix applies to encoding: onehot")
        return self


class NodeSource(BaseModel):
    """Where the nodes of one type come from.

    Either a node ``table`` (a file with an ``id`` column and feature columns),
    or nothing: the ids are then implied by the edge lists, ``0 … count-1``
    (``count`` given, or inferred from the ids present in the edge lists and the
    rows of the feature / label files). Feature matrices are joined by row
    position.

    Args:
        table: the node table file, or ``None`` for implied ids.
        id: column of ``table`` holding the node id (required with ``table``).
        columns: columns of ``table`` kept besides the id (default: all), by
            their (renamed) names. Only kept columns are validated.
        count: number of implied nodes (``None``: inferred, see ``ids``).
        id_type: ``int`` (ids must parse as integers) or ``str``.
        features: feature matrices joined by row.
        ids: implied ids with ``count: null``, when the distinct ids present do
            not cover ``0 … max``: ``refuse`` (default) stops naming the file
            and line of the largest id and the number of ids missing;
            ``compact`` renumbers the present ids ``0 … n-1`` in increasing
            order, the file's ids kept in column ``original_id_column`` of the
            node table (edges and label tables are renumbered alike); ``dense``
            keeps ``0 … max``, the missing ids becoming nodes without edges.
        original_id_column: ``ids: compact``: the node table column holding the
            file's ids.
        max_id: implied ids: the largest id accepted (``None``: no bound); a
            larger one is an error naming the file, line, column and value.
        max_id_ratio: implied ids: the node count (``count``, or ``max + 1``
            with ``ids: dense``) may be at most this many times the number of
            distinct ids present, so that one absurd id (3,000,000 among 2,000
            rows, 1e10) stops the run instead of allocating its range.
        categorical: column of ``table`` -> :class:`CategoricalColumn` (kept
            even when ``columns`` does not list it).
    """

    model_config = ConfigDict(extra="forbid")

    table: FileSource | None = None
    id: str | None = None
    columns: list[str] | None = None
    count: int | None = Field(default=None, gt=0)
    id_type: Literal["int", "str"] = "int"
    features: list[FeatureSource] = Field(default_factory=list)
    ids: Literal["refuse", "compact", "dense"] = "refuse"
    original_id_column: str = "original_id"
    max_id: int | None = Field(default=None, ge=0)
    max_id_ratio: float = Field(default=10.0, ge=1.0)
    categorical: dict[str, CategoricalColumn] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> NodeSource:
        implied_only = {"ids", "original_id_column", "max_id", "max_id_ratio"}
        if self.table is not None and implied_only & self.model_fields_set:
            raise ValueError(
                f"{sorted(implied_only & self.model_fields_set)} apply to implied "
                "ids (no table)"
            )
        if self.table is None and self.categorical:
            raise ValueError("categorical applies to the columns of a node table")
        if self.count is not None and "ids" in self.model_fields_set:
            raise ValueError(
                f"count: {self.count} declares the ids 0..{self.count - 1}; ids "
                "applies to an inferred count (count: null)"
            )
        if self.table is not None:
            if self.table.kind in MATRIX_FORMATS:
                raise ValueError(
                    f"{self.table.path}: a node table must be csv / tsv / "
                    "whitespace / parquet (matrices go to features)"
                )
            if not self.id:
                raise ValueError(f"{self.table.path}: node table needs id (a column)")
            if self.count is not None:
                raise ValueError("count applies to implied ids only (no table)")
        elif self.id_type != "int":
            raise ValueError("implied node ids are integers 0..n-1 (id_type: int)")
        return self


class EdgeSource(BaseModel):
    """The edge list of one relation: a file and which columns hold what.

    Args:
        file: the edge list.
        src: column holding the source node ids (the relation's ``src`` type).
        dst: column holding the destination node ids.
        weight: column of edge weights (required when the schema's relation
            has a ``weight_column``).
        time: column of timestamps (integers, or dates / datetimes).
    """

    model_config = ConfigDict(extra="forbid")

    file: FileSource
    src: str
    dst: str
    weight: str | None = None
    time: str | None = None

    @model_validator(mode="after")
    def _check(self) -> EdgeSource:
        if self.file.kind in MATRIX_FORMATS:
            raise ValueError(f"{self.file.path}: an edge list must be a table")
        return self


class WideEdgeSource(BaseModel):
    """Edges from a wide table of 0/1 flag columns (e.g. one column per genre).

    Each row holds a node (column ``id``) and one flag per column of
    ``columns``; a 1 makes an edge between the row's node and the node named
    after the column. The flag node type's ids are the column names (strings):
    without a node table of its own, its nodes are exactly those names.

    Args:
        file: the wide table.
        id: column holding the row's node id.
        columns: the flag columns (0 / 1, or booleans in parquet); any other
            value is an error naming the file, line and column.
        row_end: which end of the relation the row's node is (``src``: the
            relation goes row node -> flag node).
    """

    model_config = ConfigDict(extra="forbid")

    file: FileSource
    id: str
    columns: list[str] = Field(min_length=1)
    row_end: Literal["src", "dst"] = "src"

    @model_validator(mode="after")
    def _check(self) -> WideEdgeSource:
        if self.file.kind in MATRIX_FORMATS:
            raise ValueError(f"{self.file.path}: a wide table must be a table")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"{self.file.path}: columns must be unique")
        if self.id in self.columns:
            raise ValueError(f"{self.file.path}: id {self.id!r} is a flag column")
        return self

    @property
    def flag_end(self) -> str:
        return "dst" if self.row_end == "src" else "src"


class GroundTruthSource(BaseModel):
    """Ground-truth labels of one node type (kept apart from training).

    Args:
        file: ``npy`` (1-D, label of the node at position i) or a table.
        node_type: the labelled node type (the schema's user type).
        id: table: column holding the node id.
        label: table: column holding the label.
    """

    model_config = ConfigDict(extra="forbid")

    file: FileSource
    node_type: str
    id: str | None = None
    label: str | None = None

    @model_validator(mode="after")
    def _check(self) -> GroundTruthSource:
        kind = self.file.kind
        if kind == "npz":
            raise ValueError(f"{self.file.path}: labels are npy or a table, not npz")
        if kind != "npy" and not (self.id and self.label):
            raise ValueError(
                f"{self.file.path}: a label table needs id and label (columns)"
            )
        return self


class IngestionConfig(BaseModel):
    """Everything the ``ingestion`` pipeline reads from ``parameters_ingestion.yml``.

    Args:
        root: directory that relative paths are resolved against.
        nodes: node type -> :class:`NodeSource`; a schema node type not listed
            gets implied ids.
        edges: relation of the graph schema -> :class:`EdgeSource`.
        wide_to_edges: relation of the graph schema -> :class:`WideEdgeSource`
            (every relation of the schema needs one source, here or in
            ``edges``).
        ground_truth: labels for the evaluation, or ``None``.
    """

    model_config = ConfigDict(extra="forbid")

    root: str = "."
    nodes: dict[str, NodeSource] = Field(default_factory=dict)
    edges: dict[str, EdgeSource] = Field(default_factory=dict)
    wide_to_edges: dict[str, WideEdgeSource] = Field(default_factory=dict)
    ground_truth: GroundTruthSource | None = None

    @model_validator(mode="after")
    def _check(self) -> IngestionConfig:
        if not self.edges and not self.wide_to_edges:
            raise ValueError("ingestion needs edges (or wide_to_edges)")
        both = sorted(set(self.edges) & set(self.wide_to_edges))
        if both:
            raise ValueError(
                f"relations {both} are in both edges and wide_to_edges; give one "
                "source per relation"
            )
        return self

    def resolve(self, path: str) -> Path:
        """``path`` resolved against ``root`` (absolute paths are kept)."""
        p = Path(path)
        return p if p.is_absolute() else Path(self.root) / p
