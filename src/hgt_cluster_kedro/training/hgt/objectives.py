"""Training objectives of the HGT encoder, registered by name.

An objective is one class: a ``name``, a typed parameter block ``Params`` (with a
``weight``; chosen under ``hgt.train.objectives.<name>`` in
``parameters_hgt.yml``) and ``loss(batch, outputs)``. The trainer sums
``weight * loss`` over the configured objectives, so several combine. Optional
hooks: ``encoder_kwargs`` (what the objective needs in the encoder, e.g. SOM
centres that must travel with its ``state_dict``), ``after_step`` (updates
outside the gradient) and ``validate`` (extra validation metrics).

Adding an objective = one class here (decorated with :func:`register`), its
parameter block in ``parameters_hgt.yml`` and a test on a hand-worked case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from ...models.losses import symmetric_cosine_loss
from ...runtime import derive_seed

logger = logging.getLogger(__name__)

__all__ = [
    "OBJECTIVES",
    "JointSOMObjective",
    "LinkBatch",
    "LinkObjective",
    "Objective",
    "register",
]


@dataclass
class LinkBatch:
    """The positives and negatives of one step, as row indices into the
    encoder's outputs (local rows of a sampled subgraph, or global ids in
    full-graph mode).

    Attributes:
        edge_type: the target relation ``(user type, rel, item type)``.
        src_index: ``[B]`` rows of the positives' users.
        dst_index: ``[B]`` rows of the positives' items.
        src_neg_index: ``[B, K]`` rows of negative users of each item.
        dst_neg_index: ``[B, K]`` rows of negative items of each user.
        src_neg_mask: ``[B, K]`` ``False`` where the negative is a known positive.
        dst_neg_mask: ``[B, K]`` likewise.
    """

    edge_type: tuple[str, str, str]
    src_index: Tensor
    dst_index: Tensor
    src_neg_index: Tensor
    dst_neg_index: Tensor
    src_neg_mask: Tensor
    dst_neg_mask: Tensor

    @classmethod
    def from_data(cls, data: Any) -> LinkBatch:
        """From a sampled ``HeteroData`` of
        :meth:`~hgt_cluster_kedro.graph.sampler.NeighborSampler.sample_links`."""
        return cls(
            tuple(data.input_edge_type),
            data.src_index,
            data.dst_index,
            data.src_neg_index,
            data.dst_neg_index,
            data.src_neg_mask,
            data.dst_neg_mask,
        )

    def to(self, device: torch.device) -> LinkBatch:
        """The same batch with every index on ``device``."""
        if self.src_index.device == device:
            return self
        return LinkBatch(
            self.edge_type,
            *(
                t.to(device)
                for t in (
                    self.src_index,
                    self.dst_index,
                    self.src_neg_index,
                    self.dst_neg_index,
                    self.src_neg_mask,
                    self.dst_neg_mask,
                )
            ),
        )

    def users(self, outputs: dict[str, Tensor]) -> Tensor:
        """``[B, d]`` embeddings of the positives' users."""
        return outputs[self.edge_type[0]].index_select(0, self.src_index)


class ObjectiveParams(BaseModel):
    """Parameters every objective has."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(default=1.0, ge=0.0, description="weight in the sum")


class Objective:
    """Base class: one term of the training loss."""

    name: ClassVar[str]
    Params: ClassVar[type[ObjectiveParams]] = ObjectiveParams

    def __init__(self, params: ObjectiveParams, model: Any = None) -> None:
        self.params = params
        self.model = model

    @classmethod
    def encoder_kwargs(cls, params: ObjectiveParams) -> dict[str, Any]:
        """Keyword arguments the encoder needs for this objective."""
        return {}

    def loss(self, batch: LinkBatch, outputs: dict[str, Tensor]) -> Tensor:
        """The (unweighted) loss of one step."""
        raise NotImplementedError

    def prepare(
        self,
        embed_users: Callable[[Tensor], Tensor],
        *,
        num_users: int,
        seed: int,
        distributed: bool,
    ) -> None:
        """Set-up before the first step (``embed_users(ids)`` embeds users with
        the current model)."""

    def after_step(
        self,
        batch: LinkBatch,
        outputs: dict[str, Tensor],
        reduce: Callable[[Tensor], Tensor] | None,
    ) -> None:
        """Updates after the optimiser step (``reduce`` sums over ranks)."""

    def validate(self, user_emb: Tensor) -> dict[str, float]:
        """Extra validation metrics from the validation users' embeddings."""
        return {}


#: objective name -> class.
OBJECTIVES: dict[str, type[Objective]] = {}


def register(cls: type[Objective]) -> type[Objective]:
    """Class decorator: add ``cls`` to :data:`OBJECTIVES` under ``cls.name``."""
    if cls.name in OBJECTIVES:
        raise ValueError(f"objective {cls.name!r} is registered twice")
    OBJECTIVES[cls.name] = cls
    return cls


class LinkParams(ObjectiveParams):
    scale: float = Field(default=2.0, gt=0.0, description="cosine scale s")


@register
class LinkObjective(Objective):
    """The original system's symmetric cosine link loss
    (:func:`~hgt_cluster_kedro.models.losses.symmetric_cosine_loss`): each
    positive user-item pair against its negative items and negative users."""

    name = "link"
    Params = LinkParams

    def loss(self, batch: LinkBatch, outputs: dict[str, Tensor]) -> Tensor:
        eu, ei = outputs[batch.edge_type[0]], outputs[batch.edge_type[2]]
        return symmetric_cosine_loss(
            eu.index_select(0, batch.src_index),
            ei.index_select(0, batch.dst_index),
            eu[batch.src_neg_index],
            ei[batch.dst_neg_index],
            scale=self.params.scale,  # type: ignore[attr-defined]
            u_neg_mask=batch.src_neg_mask,
            v_neg_mask=batch.dst_neg_mask,
        )


class JointSOMParams(ObjectiveParams):
    weight: float = Field(default=0.3, ge=0.0, description="SOM loss weight")
    num_centres: int = Field(default=10, ge=2, description="SOM centres (clusters)")
    lr: float = Field(default=0.1, gt=0.0, le=1.0, description="initial centre lr")
    radius: float = Field(default=0.5, gt=0.0, description="initial radius")
    decay_steps: float = Field(default=1000.0, gt=0.0, description="decay T")
    init_users: int = Field(default=4096, gt=0, description="users to seed from")


@register
class JointSOMObjective(Objective):
    """The original system's joint HGT + SOM ("improved model 2"): the squared
    distance of each positive's user embedding to its winning SOM centre; the
    centres (:class:`~hgt_cluster_kedro.models.embedding_som.EmbeddingSOM`,
    carried in the encoder's ``state_dict``) move after every step, summed over
    ranks so every rank keeps the same map."""

    name = "som"
    Params = JointSOMParams

    @classmethod
    def encoder_kwargs(cls, params: ObjectiveParams) -> dict[str, Any]:
        p = params
        return {
            "som": {
                "num_centres": p.num_centres,  # type: ignore[attr-defined]
                "lr": p.lr,  # type: ignore[attr-defined]
                "radius": p.radius,  # type: ignore[attr-defined]
                "decay_steps": p.decay_steps,  # type: ignore[attr-defined]
            }
        }

    def prepare(
        self,
        embed_users: Callable[[Tensor], Tensor],
        *,
        num_users: int,
        seed: int,
        distributed: bool,
    ) -> None:
        """Pick the initial centres among embedded users (seeded k-means++;
        rank 0's map is broadcast so every rank starts from the same one)."""
        som = self.model.som
        if bool(som.initialised):
            return
        gen = torch.Generator().manual_seed(derive_seed(seed, 104))
        take = min(num_users, self.params.init_users)  # type: ignore[attr-defined]
        sample = torch.randperm(num_users, generator=gen)[:take]
        z = embed_users(torch.sort(sample).values)
        som.initialise(z.to(som.centres.device), seed=derive_seed(seed, 106))
        if distributed:
            dist.broadcast(som.centres, src=0)
        logger.info(
            "Joint SOM: %d centres initialised from %d embedded users",
            som.num_centres,
            z.shape[0],
        )

    def loss(self, batch: LinkBatch, outputs: dict[str, Tensor]) -> Tensor:
        return self.model.som.loss(batch.users(outputs))

    def after_step(
        self,
        batch: LinkBatch,
        outputs: dict[str, Tensor],
        reduce: Callable[[Tensor], Tensor] | None,
    ) -> None:
        self.model.som.update(batch.users(outputs).detach(), reduce=reduce)

    def validate(self, user_emb: Tensor) -> dict[str, float]:
        som = self.model.som
        device = som.centres.device
        return {"val_som_loss": float(som.loss(user_emb.to(device)))}
