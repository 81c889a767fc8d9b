"""One typed model per parameter section (``conf/base/parameters_<section>.yml``).

Each model is the single place of its section's defaults (``extra="forbid"``; the
YAML may restate them, ``tests/config`` checks that it restates them exactly).
Sections whose domain package already has a model reuse it: ``data_generation``
(:class:`~hgt_cluster_kedro.generation.GeneratorConfig`), ``graph``
(:class:`~hgt_cluster_kedro.graph.GraphConfig`), ``ingestion``
(:class:`~hgt_cluster_kedro.ingestion.IngestionConfig`) and ``hgt.train``
(:class:`~hgt_cluster_kedro.training.hgt.HGTTrainConfig`, with the
project's defaults). Kedro-free: notebooks and scripts validate a plain ``dict``
with ``Model.model_validate``.

Every model here validates through :meth:`Section.model_validate`, which raises a
:class:`~hgt_cluster_kedro.config.errors.ParameterError` naming the full key
(``hgt.train.epochs``) and, for an unknown key, the nearest valid name.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hgt_cluster_kedro.evaluation.tuning import check_grid
from hgt_cluster_kedro.generation import GeneratorConfig
from hgt_cluster_kedro.graph import GraphConfig
from hgt_cluster_kedro.ingestion import IngestionConfig
from hgt_cluster_kedro.training.hgt import HGTTrainConfig
from hgt_cluster_kedro.training.hgt.config import ObjectivesConfig

from .errors import ParameterError, describe, unknown_key, validate_model

#: pipelines that write the raw graph tables (``raw_nodes`` / ``raw_edges``)
SOURCES = ("data_generation", "ingestion")
#: what the default run does after its source, in data order
DEFAULT_RUN = (
    "graph",
    "twhin",
    "hgt",
    "count_profile",
    "simclusters",
    "clustering",
    "som",
    "session",
    "evaluation",
)


class Section:
    """Mixin of the section models: ``section`` names the top-level key, and
    ``model_validate`` raises a ``ParameterError`` naming ``section.key``
    (nested models are validated by pydantic-core, not through this method)."""

    section: ClassVar[str] = ""

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:  # noqa: D102
        if isinstance(obj, cls):
            return obj
        if isinstance(obj, BaseModel):  # e.g. the domain model, not the section
            obj = obj.model_dump(by_alias=True)
        try:
            return super().model_validate(  # type: ignore[misc]
                {} if obj is None else obj, **kwargs
            )
        except ValidationError as exc:
            raise ParameterError(describe(cls.section, cls, exc)) from None  # type: ignore[arg-type]


_STRICT = ConfigDict(extra="forbid")


# ----------------------------------------------------------------- run


class RunParams(Section, BaseModel):
    """``run``: what ``kedro run`` without ``--pipelines`` runs in an environment.

    Args:
        source: the pipeline that writes the raw graph tables: ``auto`` =
            ``ingestion`` when the environment has an ``ingestion`` section, else
            ``data_generation`` (fake data); ``none`` = use the tables already in
            the environment's data root.
        pipelines: the pipelines after the source, in data order.
    """

    section: ClassVar[str] = "run"
    model_config = _STRICT

    source: Literal["auto", "data_generation", "ingestion", "none"] = "auto"
    pipelines: list[str] = Field(default_factory=lambda: list(DEFAULT_RUN))

    def default_pipelines(self, has_ingestion: bool) -> tuple[str, ...]:
        """Source (resolved) and the pipelines after it."""
        source = self.source
        if source == "auto":
            source = "ingestion" if has_ingestion else "data_generation"
        head = () if source == "none" else (source,)
        return (*head, *(p for p in self.pipelines if p not in head))


# -------------------------------------------------------- sections reused


class DataGenerationParams(Section, GeneratorConfig):
    """``data_generation`` (:class:`~hgt_cluster_kedro.generation.GeneratorConfig`)."""

    section: ClassVar[str] = "data_generation"


class GraphParams(Section, GraphConfig):
    """``graph`` (:class:`~hgt_cluster_kedro.graph.GraphConfig`)."""

    section: ClassVar[str] = "graph"


class IngestionParams(Section, IngestionConfig):
    """``ingestion`` (:class:`~hgt_cluster_kedro.ingestion.IngestionConfig`)."""

    section: ClassVar[str] = "ingestion"


# ------------------------------------------------------------ clustering


class ClusteringParams(Section, BaseModel):
    """``clustering``: KMeans on every method's user embeddings
    (:func:`~hgt_cluster_kedro.clustering.fit_clusters`)."""

    section: ClassVar[str] = "clustering"
    model_config = _STRICT

    k: int = Field(default=16, gt=0)
    backend: Literal["auto", "torch", "sklearn", "sklearn_minibatch"] = "auto"
    minibatch_threshold: int = Field(default=2_000_000, gt=0)
    n_init: int = Field(default=4, ge=1)
    max_iter: int = Field(default=100, ge=1)
    normalize: bool = True
    seed: int = Field(default=0, ge=0)


class CountProfileParams(Section, BaseModel):
    """``count_profile``: the metapath count-profile baseline
    (:func:`~hgt_cluster_kedro.models.count_profile.count_profile`)."""

    section: ClassVar[str] = "count_profile"
    model_config = _STRICT

    metapath: list[str | list[str]] = Field(
        default_factory=lambda: ["share_note", "rev_share_note"], min_length=1
    )
    max_dim: int = Field(default=64, gt=0)
    seed: int = Field(default=0, ge=0)


class SomParams(Section, BaseModel):
    """``som``: post-hoc SOM (:func:`~hgt_cluster_kedro.clustering.fit_som`)."""

    section: ClassVar[str] = "som"
    model_config = _STRICT

    rows: int = Field(default=10, gt=0)
    cols: int = Field(default=10, gt=0)
    k: int | None = Field(default=16, gt=0)
    sigma: float | None = Field(default=5.0, gt=0.0)
    sigma_final: float = Field(default=0.5, gt=0.0)
    decay: Literal["exponential", "linear"] = "exponential"
    convergence_fraction: float = Field(default=0.3, ge=0.0, lt=1.0)
    learning_rate: float = Field(default=0.5, gt=0.0)
    learning_rate_final: float = Field(default=0.01, gt=0.0)
    epochs: int | None = Field(default=30, gt=0)
    iterations: int | None = Field(default=None, gt=0)
    init: Literal["pca", "random"] = "pca"
    backend: Literal["batch", "minisom"] = "batch"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int | None = Field(default=None, gt=0)
    n_threads: int | None = Field(default=None, gt=0)
    normalize: bool = True
    seed: int = Field(default=0, ge=0)
    progress: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> SomParams:
        if self.sigma is not None and self.sigma_final > self.sigma:
            raise ValueError(
                f"sigma_final={self.sigma_final} must be <= sigma={self.sigma}"
            )
        if self.k is not None and self.k > self.rows * self.cols:
            raise ValueError(
                f"k={self.k} clusters from {self.rows}x{self.cols}="
                f"{self.rows * self.cols} units: k must be <= rows * cols"
            )
        return self

    def fit_kwargs(self) -> dict[str, Any]:
        """Arguments of :func:`~hgt_cluster_kedro.clustering.fit_som`."""
        return self.model_dump(exclude={"normalize"})


# ------------------------------------------------------------ evaluation


class GroundTruthParams(BaseModel):
    """Columns of the ground-truth table (``user_communities``)."""

    model_config = _STRICT

    id_column: str = "user_id"
    label_column: str = "community"


class LabelProtocolParams(BaseModel):
    """NMI / ARI of seeded KMeans with k = the label classes
    (:func:`~hgt_cluster_kedro.evaluation.clusters.label_protocol`)."""

    model_config = _STRICT

    k: int | None = Field(default=None, gt=1)
    seeds: int = Field(default=10, ge=1)
    n_init: int = Field(default=1, ge=1)
    normalize: bool = True
    seed: int = Field(default=0, ge=0)


class EaseParams(BaseModel):
    """``evaluation.classical_baselines.ease``: EASE (Steck 2019)."""

    model_config = _STRICT

    l2: list[float] = Field(default_factory=lambda: [50, 200, 500, 1000, 3000])
    max_items: int | None = Field(default=5000, gt=0)
    dtype: Literal["float32", "float64"] = "float32"
    block_size: int = Field(default=2048, gt=0)


class ItemKnnParams(BaseModel):
    """``evaluation.classical_baselines.item_knn``: cosine item-kNN."""

    model_config = _STRICT

    neighbors: list[int] = Field(default_factory=lambda: [5, 10, 20, 50, 100, 200])
    block_size: int = Field(default=1024, gt=0)


class ClassicalBaselinesParams(BaseModel):
    """``evaluation.classical_baselines``: EASE and item-kNN, hyperparameters
    chosen on the validation split by Recall@``select_k``."""

    model_config = _STRICT

    enabled: list[Literal["ease", "item_knn"]] = Field(
        default_factory=lambda: ["ease", "item_knn"]
    )
    select_k: int = Field(default=50, gt=0)
    ease: EaseParams = Field(default_factory=EaseParams)
    item_knn: ItemKnnParams = Field(default_factory=ItemKnnParams)


class OracleParams(BaseModel):
    """``evaluation.oracle``: the community oracle (planted data only)."""

    model_config = _STRICT

    enabled: bool = True


class U2U2ITuningParams(BaseModel):
    """``evaluation.u2u2i_tuning``: each embedding's u2u2i channel again with
    the neighbour count and a popularity prior chosen on the validation split
    (row ``<method>_tuned``; :mod:`hgt_cluster_kedro.evaluation.tuning`)."""

    model_config = _STRICT

    m_grid: list[int] = Field(default_factory=lambda: [10, 30, 100, 300], min_length=1)
    popularity_weights: list[float] = Field(
        default_factory=lambda: [0.0, 0.1, 0.3, 0.5, 0.7], min_length=1
    )
    select_k: int = Field(default=50, gt=0)

    @model_validator(mode="after")
    def _grids(self) -> U2U2ITuningParams:
        check_grid(self.m_grid, self.popularity_weights)  # the one rule
        return self


class EvaluationParams(Section, BaseModel):
    """``evaluation``: the harness every method is scored with."""

    section: ClassVar[str] = "evaluation"
    model_config = _STRICT

    split: Literal["test", "valid"] = "test"
    ks: list[int] = Field(default_factory=lambda: [10, 50, 100], min_length=1)
    m_neighbors: int = Field(default=50, gt=0)
    metric: Literal["cosine", "dot"] = "cosine"
    backend: Literal["exact", "faiss", "auto"] = "auto"
    faiss_threshold: int = Field(default=100_000, gt=0)
    cluster_boost: float = Field(default=0.5, ge=0.0)
    silhouette_sample: int = Field(default=10_000, gt=0)
    seed: int = Field(default=0, ge=0)
    ground_truth: GroundTruthParams | None = Field(default_factory=GroundTruthParams)
    label_protocol: LabelProtocolParams | None = Field(
        default_factory=LabelProtocolParams
    )
    classical_baselines: ClassicalBaselinesParams | None = Field(
        default_factory=ClassicalBaselinesParams
    )
    oracle: OracleParams | None = Field(default_factory=OracleParams)
    u2u2i_tuning: U2U2ITuningParams | None = Field(default_factory=U2U2ITuningParams)

    @field_validator("ks")
    @classmethod
    def _positive(cls, ks: list[int]) -> list[int]:
        if any(k <= 0 for k in ks):
            raise ValueError(f"cut-offs must be positive (got {ks})")
        return ks


# ----------------------------------------------------------------- twhin


class TwhinParams(Section, BaseModel):
    """``twhin``: the TwHIN baseline
    (:func:`~hgt_cluster_kedro.training.twhin_trainer.train_twhin`)."""

    section: ClassVar[str] = "twhin"
    model_config = _STRICT

    relations: list[str] | None = None
    dim: int = Field(default=64, gt=0)
    epochs: int = Field(default=10, gt=0)
    batch_size: int = Field(default=8192, gt=0)
    lr: float = Field(default=0.1, gt=0.0)
    in_batch_neg: bool = True
    chunk_size: int = Field(default=64, gt=1)
    num_uniform_neg: int = Field(default=4, ge=0)
    balanced_loss: bool = True
    init_std: float = Field(default=0.1, gt=0.0)
    seed: int = Field(default=0, ge=0)
    checkpoint_dir: str | None = "data/06_models/checkpoints"
    resume: bool = True
    keep_checkpoints: int = Field(default=2, ge=0)
    #: another run holds checkpoint_dir: fail at once (0), wait this many
    #: seconds, or None = wait without limit
    lock_wait_s: float | None = Field(default=0.0, ge=0.0)
    device: str = "cpu"
    num_threads: int | None = Field(default=None, gt=0)
    log_every: int = Field(default=200, ge=0)
    progress: bool = True

    @model_validator(mode="after")
    def _negatives(self) -> TwhinParams:
        if not self.in_batch_neg and self.num_uniform_neg == 0:
            raise ValueError(
                "no negatives: in_batch_neg is false and num_uniform_neg is 0"
            )
        if self.in_batch_neg and self.chunk_size > self.batch_size:
            raise ValueError(
                f"chunk_size={self.chunk_size} (in-batch negatives + 1) must be "
                f"<= batch_size={self.batch_size}"
            )
        return self

    def train_kwargs(self) -> dict[str, Any]:
        """Arguments of ``train_twhin`` (all but ``checkpoint_dir``)."""
        return self.model_dump(exclude={"checkpoint_dir"})


# ------------------------------------------------------------------- hgt


#: ``hgt.train.checkpoint_dir`` placeholder for the run's own directory
RUN_DIR = "<run dir>"


class HGTTrainParams(HGTTrainConfig):
    """``hgt.train``: :class:`HGTTrainConfig` (the engine's defaults) with the
    project run's own: checkpoints in the run directory, one thread per
    torchrun worker, the default run's budget and validation sample."""

    epochs: int = Field(default=1, gt=0)
    #: with the TwHIN warm start (docs/hgt.md: chosen by validation u2u2i recall)
    max_steps: int | None = Field(default=150, gt=0)
    lr: float = Field(default=0.003, gt=0.0)
    num_threads: int | None = Field(default=1, gt=0)
    checkpoint_every: int = Field(default=200, ge=0)
    #: ``<run dir>``: ``checkpoints/`` in the run's directory under ``hgt.run_dir``
    checkpoint_dir: str | None = RUN_DIR
    patience: int | None = Field(default=2, ge=1)
    val_max_users: int | None = Field(default=2000, gt=0)
    #: the sampled engine (docs/hgt.md: full graph lost on the default data)
    mode: Literal["auto", "full", "sampled"] = "sampled"
    remove_targets: bool = True


class LaunchParams(BaseModel):
    """``hgt.launch``: torchrun settings
    (:func:`~hgt_cluster_kedro.training.distributed.launch`)."""

    model_config = _STRICT

    nproc_per_node: int = Field(default=2, gt=0)
    nnodes: int = Field(default=1, gt=0)
    node_rank: int = Field(default=0, ge=0)
    #: None: one machine, a private file rendezvous and loopback stores;
    #: HOST:PORT of machine 0 when nnodes > 1
    rdzv_endpoint: str | None = None
    rdzv_backend: str = "c10d"
    max_restarts: int = Field(default=3, ge=0)
    threads_per_worker: int = Field(default=1, gt=0)
    run_id: str = "hgt"
    local_addr: str | None = None
    #: another run holds the run directory: fail at once (0), wait this many
    #: seconds, or None = wait without limit
    lock_wait_s: float | None = Field(default=0.0, ge=0.0)
    monitor_interval: float = Field(default=0.5, gt=0.0)
    rdzv_timeout: int = Field(default=900, gt=0)

    @model_validator(mode="after")
    def _rank(self) -> LaunchParams:
        if self.node_rank >= self.nnodes:
            raise ValueError(
                f"node_rank={self.node_rank} must be < nnodes={self.nnodes}"
            )
        return self

    def kwargs(self) -> dict[str, Any]:
        """Arguments of :func:`~hgt_cluster_kedro.training.distributed.launch`."""
        return self.model_dump()


class InferenceParams(BaseModel):
    """``hgt.inference``: embedding every user and item after training."""

    model_config = _STRICT

    batch_size: int = Field(default=1024, gt=0)
    #: ``"full"``: one exact full-graph pass; a list samples per hop;
    #: ``None``: every neighbour by sampling
    fanouts: Literal["full"] | list[int] | dict[str, list[int]] | None = Field(
        default_factory=lambda: [8, 4]
    )
    seed: int = Field(default=0, ge=0)


class HGTParams(Section, BaseModel):
    """``hgt``: the self-supervised HGT, trained by torchrun workers."""

    section: ClassVar[str] = "hgt"
    model_config = _STRICT

    run_dir: str = "data/06_models/hgt_runs"
    use_partitions: bool = True
    #: ``twhin``: id embeddings start from the TwHIN run's tables (twhin.dim
    #: must equal train.hidden); None: random initialisation
    warm_start: Literal["twhin"] | None = "twhin"
    train: HGTTrainParams = Field(default_factory=HGTTrainParams)
    launch: LaunchParams = Field(default_factory=LaunchParams)
    inference: InferenceParams = Field(default_factory=InferenceParams)


class JointTrainParams(BaseModel):
    """``hgt_som_joint.train``: only what differs from ``hgt.train`` (any of its
    keys); its ``objectives`` must include the joint SOM (``som``)."""

    model_config = ConfigDict(extra="allow")

    objectives: ObjectivesConfig  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        if isinstance(data, dict):
            valid = set(HGTTrainConfig.model_fields)
            bad = [str(k) for k in data if k not in valid]
            if bad:
                raise ValueError(
                    "; ".join(
                        unknown_key(f"unknown parameter {k!r}", k, valid).replace(
                            ": unknown parameter;", ":", 1
                        )
                        for k in bad
                    )
                )
        return data

    @model_validator(mode="after")
    def _som(self) -> JointTrainParams:
        if self.objectives.som is None:  # type: ignore[attr-defined]
            raise ValueError(
                "objectives must include the joint SOM objective 'som' (got "
                f"{sorted(self.objectives.model_dump(exclude_none=True))})"  # type: ignore[attr-defined]
            )
        return self


class HGTSomJointParams(Section, BaseModel):
    """``hgt_som_joint``: the joint HGT + SOM fine-tuning of the trained HGT
    (same launcher, run_dir and inference as ``hgt``)."""

    section: ClassVar[str] = "hgt_som_joint"
    model_config = _STRICT

    train: JointTrainParams = Field(
        default_factory=lambda: JointTrainParams(
            epochs=1,
            max_steps=100,
            lr=0.0005,
            objectives={"link": {}, "som": {"num_centres": 16}},
        )
    )

    def train_config(self, hgt: HGTParams) -> HGTTrainParams:
        """``hgt.train`` overridden by ``train``, validated as a whole (errors
        name ``hgt_som_joint.train.<key>``)."""
        merged = {**hgt.train.model_dump(), **self.train.model_dump()}
        return validate_model("hgt_som_joint.train", HGTTrainParams, merged)
