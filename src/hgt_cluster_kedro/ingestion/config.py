"""What to read, from configuration (``parameters_ingestion.yml``).

The *output* columns come from the graph schema (``graph.schema``): node id and
feature columns per node type, source / destination / weight / time columns per
relation. This configuration only says where the data is and how to parse it:
the file, its format, its columns, and which file column holds what.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    """

    model_config = ConfigDict(extra="forbid")

    path: str
    format: Format | None = None
    header: bool | None = None
    sep: str | None = None
    names: list[str] | None = None
    encoding: str = "utf-8"

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


class NodeSource(BaseModel):
    """Where the nodes of one type come from.

    Either a node ``table`` (a file with an ``id`` column and feature columns),
    or nothing: the ids are then implied by the edge lists, ``0 … count-1``
    (``count`` given, or inferred as the largest id seen + 1, or the rows of the
    feature / label files). Feature matrices are joined by row position.

    Args:
        table: the node table file, or ``None`` for implied ids.
        id: column of ``table`` holding the node id (required with ``table``).
        columns: columns of ``table`` kept besides the id (default: all), by
            their (renamed) names.
        count: number of implied nodes (``None``: inferred).
        id_type: ``int`` (ids must parse as integers) or ``str``.
        features: feature matrices joined by row.
    """

    model_config = ConfigDict(extra="forbid")

    table: FileSource | None = None
    id: str | None = None
    columns: list[str] | None = None
    count: int | None = Field(default=None, gt=0)
    id_type: Literal["int", "str"] = "int"
    features: list[FeatureSource] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> NodeSource:
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
        edges: relation of the graph schema -> :class:`EdgeSource` (every
            relation of the schema needs one).
        ground_truth: labels for the evaluation, or ``None``.
    """

    model_config = ConfigDict(extra="forbid")

    root: str = "."
    nodes: dict[str, NodeSource] = Field(default_factory=dict)
    edges: dict[str, EdgeSource] = Field(min_length=1)
    ground_truth: GroundTruthSource | None = None

    def resolve(self, path: str) -> Path:
        """``path`` resolved against ``root`` (absolute paths are kept)."""
        p = Path(path)
        return p if p.is_absolute() else Path(self.root) / p
