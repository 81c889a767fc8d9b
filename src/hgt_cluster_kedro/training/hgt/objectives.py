"""Training objectives of the HGT encoder, registered by name.

An objective is one class: a ``name``, a typed parameter block ``Params`` (with a
``weight``; chosen under ``hgt.train.objectives.<name>`` in
``parameters_hgt.yml``) and ``loss(batch, outputs)``. The trainer sums
``weight * loss`` over the configured objectives, so several combine. Optional
hooks: ``encoder_kwargs`` (what the objective needs in the encoder, e.g. SOM
centres that must travel with its ``state_dict``), ``after_step`` (updates
outside the gradient) and ``validate`` (extra validation metrics). Two hooks
shape the full-graph mode's message passing (the loop calls them only there):
``message_keep`` may remove more edges from the step's encoder pass (edges an
objective must reconstruct) and ``extra_views`` asks for further passes over
other edge sets (contrastive views); the loop runs those in the same forward
call (one DDP forward) and hands their outputs back in ``batch.views[name]``.

Adding an objective = one class here (decorated with :func:`register`), its
parameter block in ``parameters_hgt.yml`` and a test on a hand-worked case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from ...models.hgt_attention import FullGraph
from ...models.losses import cosine_pair_loss, symmetric_cosine_loss
from ...models.prototypes import swapped_prediction_loss
from ...runtime import derive_seed

logger = logging.getLogger(__name__)

#: ``uint8`` keep flags of the full graph's edges per destination type (0 = absent)
Keep = dict[str, Tensor]

__all__ = [
    "OBJECTIVES",
    "CoEngagementObjective",
    "JointSOMObjective",
    "LinkBatch",
    "LinkObjective",
    "MaskedEdgeObjective",
    "MultiRelationLinkObjective",
    "Objective",
    "PrototypeObjective",
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
    #: seed of the step (objectives that draw their own pairs seed from it)
    seed: int = 0
    #: full-graph mode: outputs of the extra encoder passes an objective asked
    #: for (:meth:`Objective.extra_views`), by objective name, in its order
    views: dict[str, list[dict[str, Tensor]]] = field(default_factory=dict)

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
        moved = LinkBatch(
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
        moved.seed = self.seed
        moved.views = self.views
        return moved

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
    #: the loss reads embeddings of nodes beyond the batch's (full-graph mode)
    needs_full_graph: ClassVar[bool] = False

    def __init__(
        self, params: ObjectiveParams, model: Any = None, graph: Any = None
    ) -> None:
        self.params = params
        self.model = model
        self.graph = graph

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

    def message_keep(
        self, batch: LinkBatch, keep: Keep | None, full: FullGraph
    ) -> Keep | None:
        """Full-graph mode: the keep flags of the step's encoder pass (``uint8``
        per destination type of ``full``, 0 = edge absent; ``None``: every
        edge), given those so far (the targets removed, earlier objectives'
        masks). An objective may remove more edges; it must not add any back.
        Default: unchanged."""
        return keep

    def extra_views(
        self, batch: LinkBatch, keep: Keep | None, full: FullGraph
    ) -> list[Keep | None]:
        """Full-graph mode: keep flags of further encoder passes this step needs
        (``keep``: the step's flags before any objective's ``message_keep``).
        Their outputs arrive in ``batch.views[self.name]``, in this order.
        Default: none."""
        return []


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
        # normalise the tables once, then gather unit rows ([B, K, d] gathers
        # are the large tensors of the step)
        eu = F.normalize(outputs[batch.edge_type[0]], dim=-1)
        ei = F.normalize(outputs[batch.edge_type[2]], dim=-1)
        return symmetric_cosine_loss(
            eu.index_select(0, batch.src_index),
            ei.index_select(0, batch.dst_index),
            eu[batch.src_neg_index],
            ei[batch.dst_neg_index],
            scale=self.params.scale,  # type: ignore[attr-defined]
            u_neg_mask=batch.src_neg_mask,
            v_neg_mask=batch.dst_neg_mask,
            normalized=True,
        )


class JointSOMParams(ObjectiveParams):
    weight: float = Field(default=0.3, ge=0.0, description="SOM loss weight")
    num_centres: int = Field(default=10, ge=2, description="SOM centres (clusters)")
    lr: float = Field(default=0.1, gt=0.0, le=1.0, description="initial centre lr")
    radius: float = Field(
        default=0.5,
        gt=0.0,
        description="initial radius (embedding distance; grid cells for grid)",
    )
    decay_steps: float = Field(default=1000.0, gt=0.0, description="decay T")
    init_users: int = Field(default=4096, gt=0, description="users to seed from")
    init_kmeans_iters: int = Field(
        default=50,
        ge=0,
        description="Lloyd iterations after the k-means++ seeds (0: seeds only)",
    )
    neighbourhood: Literal["centres", "grid"] = Field(
        default="centres",
        description="centres: the original's neighbours-toward-winner rule; "
        "grid: Kohonen's neighbours-toward-sample on a grid",
    )
    spherical: bool = Field(
        default=True, description="keep the centres on the unit sphere"
    )
    reseed_after: int = Field(
        default=10,
        ge=0,
        description="re-seed a centre starved this many updates in a row (0: off)",
    )
    min_share: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="starved: wins < min_share / num_centres of an update",
    )


@register
class JointSOMObjective(Objective):
    """The original system's joint HGT + SOM ("improved model 2"): the squared
    distance of each positive's user embedding to its winning SOM centre; the
    centres (:class:`~hgt_cluster_kedro.models.embedding_som.EmbeddingSOM`,
    carried in the encoder's ``state_dict``) move after every step, summed over
    ranks so every rank keeps the same map.

    The defaults are the original's rule; ``spherical``, ``init_kmeans_iters``,
    ``neighbourhood: grid`` and ``reseed_after`` are the repairs of its dead and
    giant centres (the module docstring of ``embedding_som`` says why they
    occur; ``parameters_hgt.yml`` turns the measured ones on)."""

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
                "neighbourhood": p.neighbourhood,  # type: ignore[attr-defined]
                "reseed_after": p.reseed_after,  # type: ignore[attr-defined]
                "min_share": p.min_share,  # type: ignore[attr-defined]
                "spherical": p.spherical,  # type: ignore[attr-defined]
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
        som.initialise(
            z.to(som.centres.device),
            seed=derive_seed(seed, 106),
            kmeans_iters=self.params.init_kmeans_iters,  # type: ignore[attr-defined]
        )
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


class PrototypeParams(ObjectiveParams):
    weight: float = Field(default=0.1, ge=0.0, description="weight in the sum")
    num_prototypes: int = Field(default=16, ge=2, description="prototypes K")
    temperature: float = Field(default=0.1, gt=0.0, description="softmax temperature")
    epsilon: float = Field(default=0.05, gt=0.0, description="Sinkhorn epsilon")
    sinkhorn_iters: int = Field(default=3, ge=1, description="Sinkhorn iterations")


@register
class PrototypeObjective(Objective):
    """Clustering-consistent term: SwAV's swapped prediction (Caron et al.,
    *Unsupervised Learning of Visual Features by Contrasting Cluster
    Assignments*, NeurIPS 2020; :mod:`~hgt_cluster_kedro.models.prototypes`).

    The two views are the step's positive pairs: user ``u`` and its positive
    item ``v``. Their scores against ``num_prototypes`` learnable, L2-normalised
    prototypes (carried in the encoder's ``state_dict``, attribute
    ``prototypes``) give Sinkhorn-balanced codes for one view that the other's
    softmax must predict, both ways. The equipartition of the codes keeps every
    prototype in use, and the embedding is trained to fall into
    well-separated groups: the term is what the original's "TwHIN's objective is
    not consistent with downstream KMeans" asks for. Reads only the batch's
    rows, so it works in sampled and full-graph mode.

    Under DDP the prototypes are left out of DDP's gradient reduction (they are
    used outside the encoder's forward) and averaged over ranks after every
    step instead: each rank's AdamW step uses its own gradient, then the ranks'
    prototypes are averaged (exact for SGD, an approximation for AdamW).
    """

    name = "prototype"
    Params = PrototypeParams

    @classmethod
    def encoder_kwargs(cls, params: ObjectiveParams) -> dict[str, Any]:
        return {"prototypes": {"num_prototypes": params.num_prototypes}}  # type: ignore[attr-defined]

    def prepare(
        self,
        embed_users: Callable[[Tensor], Tensor],
        *,
        num_users: int,
        seed: int,
        distributed: bool,
    ) -> None:
        """Under DDP: keep the prototypes out of DDP (before it wraps the
        encoder) and start every rank from rank 0's."""
        if not distributed:
            return
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            self.model, ["prototypes.weight"]
        )
        with torch.no_grad():
            dist.broadcast(self.model.prototypes.weight.data, src=0)

    def loss(self, batch: LinkBatch, outputs: dict[str, Tensor]) -> Tensor:
        p = self.params
        return swapped_prediction_loss(
            batch.users(outputs),
            outputs[batch.edge_type[2]].index_select(0, batch.dst_index),
            self.model.prototypes.weight,
            temperature=p.temperature,  # type: ignore[attr-defined]
            epsilon=p.epsilon,  # type: ignore[attr-defined]
            iters=p.sinkhorn_iters,  # type: ignore[attr-defined]
        )

    def after_step(
        self,
        batch: LinkBatch,
        outputs: dict[str, Tensor],
        reduce: Callable[[Tensor], Tensor] | None,
    ) -> None:
        """Average the prototypes over ranks (DDP), then back to unit rows."""
        protos = self.model.prototypes
        if reduce is not None:
            with torch.no_grad():
                w = protos.weight
                w.copy_(reduce(w.detach().clone()) / dist.get_world_size())
        protos.normalise_()


def _in_batch(b: int, k: int, gen: torch.Generator) -> Tensor:
    """``[b, k]`` rows of in-batch negatives: row ``i`` holds ``(i + s) % b`` for
    ``k`` distinct random shifts ``s`` in ``[1, b)`` (never ``i`` itself)."""
    shifts = torch.randperm(b - 1, generator=gen)[:k] + 1
    return (torch.arange(b).unsqueeze(1) + shifts) % b


def _edge_negatives(
    csr: Any, et: tuple[str, str, str], src: Tensor, dst: Tensor, *, k: int, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """In-batch negatives of the positive edges ``(src[i], dst[i])`` of ``et``:
    ``(neg, src_mask, dst_mask)``, ``[B, K]`` positions of other positives
    (``K = min(k, B - 1)``; the negatives of ``dst[i]`` are ``src[neg[i]]``,
    those of ``src[i]`` are ``dst[neg[i]]``) and the masks (``False``: equal to
    the positive's endpoint, or joined to the anchor by an edge of ``et`` in
    ``csr``)."""
    b = src.numel()
    gen = torch.Generator().manual_seed(derive_seed(seed, 302))
    neg = _in_batch(b, min(k, b - 1), gen)
    s_neg, d_neg = src[neg], dst[neg]
    s_rep = src.unsqueeze(1).expand_as(neg)
    d_rep = dst.unsqueeze(1).expand_as(neg)
    src_mask = (s_neg != s_rep) & ~csr.has_edges(
        et, s_neg.reshape(-1), d_rep.reshape(-1)
    ).view_as(neg)
    dst_mask = (d_neg != d_rep) & ~csr.has_edges(
        et, s_rep.reshape(-1), d_neg.reshape(-1)
    ).view_as(neg)
    return neg, src_mask, dst_mask


#: a relation's CSR (indptr, indices) and, for exclusion, its sorted row keys
_Rel = tuple[Tensor, Tensor, Tensor | None]


class CoEngagementParams(ObjectiveParams):
    weight: float = Field(default=1.0, ge=0.0, description="weight in the sum")
    batch_size: int = Field(default=4096, gt=1, description="anchor users per step")
    num_neg: int = Field(default=63, ge=1, description="in-batch negatives")
    scale: float = Field(default=2.0, gt=0.0, description="cosine scale s")
    relations: list[str] | None = Field(
        default=None,
        description="user -> item relations of the user-item-user walk "
        "(None: the schema's target relations)",
    )


@register
class CoEngagementObjective(Objective):
    """User-user contrast on co-engagement (HeCo-style metapath positives, Wang
    et al., *Self-supervised Heterogeneous Graph Neural Network with
    Co-contrastive Learning*, KDD 2021): for ``batch_size`` random users ``u``
    a walk ``u -> item -> u'`` along the target relations (uniform over the
    union of their edges, so pairs that share more items are drawn more often)
    gives the positive ``(u, u')``; the other walks' ends are the in-batch
    negatives; loss: the symmetric cosine loss of the link objective between
    user embeddings. What a u2u2i channel needs: users who engage with the same
    items close together. Needs the full-graph mode (any user may be drawn)."""

    name = "coengagement"
    Params = CoEngagementParams
    needs_full_graph = True

    def _relations(
        self,
    ) -> tuple[list[tuple[Tensor, Tensor]], list[tuple[Tensor, Tensor]]]:
        schema, csr = self.graph.schema, self.graph.csr
        names = self.params.relations or list(schema.target_relations)  # type: ignore[attr-defined]
        fwd, rev = [], []
        for name in names:
            et = schema.edge_type(name)
            if (et[0], et[2]) != (schema.user_type, schema.item_type):
                raise ValueError(
                    f"coengagement.relations: {name!r} is not a {schema.user_type} "
                    f"-> {schema.item_type} relation"
                )
            rev_et = (et[2], f"rev_{et[1]}", et[0])
            fwd.append((csr.indptr[et], csr.indices[et], None))
            ip, ix = csr.indptr[rev_et], csr.indices[rev_et]
            rows = torch.repeat_interleave(torch.arange(ip.numel() - 1), ip.diff())
            n_users = csr.num_nodes[schema.user_type]
            rev.append((ip, ix, rows * n_users + ix.long()))  # sorted row keys
        return fwd, rev

    @staticmethod
    def _hop(
        nodes: Tensor,
        rels: list[_Rel],
        gen: torch.Generator,
        exclude: Tensor | None = None,
        n_cols: int = 0,
    ) -> Tensor:
        """One uniform step over the union of ``rels``' edges, never to
        ``exclude[i]`` (rows keyed ``row * n_cols + col``; -1: no such edge)."""
        degs, skips = [], []
        for ip, _, keys in rels:
            deg = ip[nodes + 1] - ip[nodes]
            skip = torch.full_like(deg, -1)  # position of exclude[i] in the row
            if exclude is not None and keys is not None and keys.numel():
                want = nodes * n_cols + exclude
                at = torch.searchsorted(keys, want).clamp(max=keys.numel() - 1)
                found = keys[at] == want
                skip = torch.where(found, at - ip[nodes], skip)
                deg = deg - found.long()
            degs.append(deg)
            skips.append(skip)
        total = torch.stack(degs).sum(0)
        pick = (torch.rand(nodes.numel(), generator=gen) * total).long()
        pick = torch.minimum(pick, (total - 1).clamp(min=0))
        out = torch.full_like(nodes, -1)
        before = torch.zeros_like(total)
        for (ip, ix, _), deg, skip in zip(rels, degs, skips, strict=True):
            inside = (pick >= before) & (pick < before + deg) & (total > 0)
            local = pick[inside] - before[inside]
            sk = skip[inside]
            local = local + ((sk >= 0) & (local >= sk)).long()
            out[inside] = ix[ip[nodes[inside]] + local].long()
            before = before + deg
        return out

    def pairs(self, seed: int) -> tuple[Tensor, Tensor]:
        """``(u, u')``: the step's anchor users and the ends of their walks."""
        if not hasattr(self, "_rels"):
            self._rels = self._relations()
        fwd, rev = self._rels
        n_users = self.graph.csr.num_nodes[self.graph.schema.user_type]
        gen = torch.Generator().manual_seed(int(seed) % (2**63 - 1))
        take = min(n_users, self.params.batch_size)  # type: ignore[attr-defined]
        users = torch.randperm(n_users, generator=gen)[:take]
        items = self._hop(users, fwd, gen)
        ok = items >= 0
        users, items = users[ok], items[ok]
        ends = self._hop(items, rev, gen, exclude=users, n_cols=n_users)
        ok = ends >= 0
        return users[ok], ends[ok]

    def loss(self, batch: LinkBatch, outputs: dict[str, Tensor]) -> Tensor:
        users, ends = self.pairs(batch.seed)
        b = users.numel()
        k = min(self.params.num_neg, b - 1)  # type: ignore[attr-defined]
        emb = outputs[self.graph.schema.user_type]
        if k < 1:
            return emb.sum() * 0.0
        device = emb.device
        gen = torch.Generator().manual_seed(int(batch.seed) % (2**63 - 1) + 1)
        neg = _in_batch(b, k, gen)  # other walks' ends
        mask = ends[neg] != users.unsqueeze(1)
        anchor = emb.index_select(0, users.to(device))
        positive = emb.index_select(0, ends.to(device))
        scale = self.params.scale  # type: ignore[attr-defined]
        return 0.5 * cosine_pair_loss(
            anchor,
            positive,
            positive[neg.to(device)],
            scale=scale,
            mask=mask.to(device),
        ) + 0.5 * cosine_pair_loss(
            positive, anchor, anchor[neg.to(device)], scale=scale, mask=mask.to(device)
        )


class MultiRelationParams(ObjectiveParams):
    weight: float = Field(default=1.0, ge=0.0, description="weight in the sum")
    batch_size: int = Field(
        default=1024, gt=1, description="positive edges per relation and step"
    )
    num_neg: int = Field(default=63, ge=1, description="in-batch negatives per side")
    scale: float = Field(default=2.0, gt=0.0, description="cosine scale s")
    relation_weights: dict[str, float] | None = Field(
        default=None,
        description="relation name -> weight (>= 0; 0 switches it off; None: "
        "every relation 1; relations not named: 1)",
    )
    include_targets: bool = Field(
        default=False,
        description="also score the target relations (the link objective already does)",
    )


#: one relation of the multi-relation objective: edge type, weight, train edges
_RelEdges = tuple[tuple[str, str, str], float, Tensor, Tensor]


@register
class MultiRelationLinkObjective(Objective):
    """Every relation of the schema as a link-prediction task, as TwHIN does
    (El-Kishky et al., *TwHIN: Embedding the Twitter Heterogeneous Information
    Network for Personalized Recommendation*, KDD 2022): each step, for every
    forward relation ``r`` of ``graph.schema`` with weight ``w_r > 0`` (the
    ``rev_*`` relations carry the same pairs and are skipped; the target
    relations only with ``include_targets``), ``batch_size`` positive edges
    drawn uniformly from ``r``'s message-passing edges in ``graph.csr`` (for
    relations between the user and item types these are train pairs only:
    :func:`~hgt_cluster_kedro.graph.split.train_edges` removed the held-out
    ones), scored by the symmetric cosine loss of the link objective against
    ``num_neg`` in-batch negatives per side (the same relation's other
    positives' endpoints; a negative equal to the positive's endpoint, or
    joined to the anchor by an edge of ``r``, is masked). Loss: the
    ``w_r``-weighted mean over relations, so ``weight`` keeps the scale of one
    link loss. What ties users of one community together through item-side
    relations (papers through venues and terms on DBLP). Needs the full-graph
    mode (any node may be drawn)."""

    name = "relations"
    Params = MultiRelationParams
    needs_full_graph = True

    _KEY = "hgt.train.objectives.relations.relation_weights"

    def __init__(
        self, params: ObjectiveParams, model: Any = None, graph: Any = None
    ) -> None:
        super().__init__(params, model, graph)
        if graph is not None:
            self._rels  # noqa: B018 (checked at construction: errors before a step)

    @cached_property
    def _rels(self) -> list[_RelEdges]:
        """``(edge type, weight, src, dst)`` of every scored relation, checked
        against the schema (``ValueError`` naming the offending key)."""
        p = self.params
        schema, csr = self.graph.schema, self.graph.csr
        weights = dict(p.relation_weights or {})  # type: ignore[attr-defined]
        targets = set(schema.target_relations)
        include = bool(p.include_targets)  # type: ignore[attr-defined]
        for name, w in weights.items():
            if name not in schema.relations:
                raise ValueError(
                    f"{self._KEY}: {name!r} is not a relation of the schema; "
                    f"known: {sorted(schema.relations)} (reverse 'rev_*' "
                    "relations carry the same pairs and are not listed)"
                )
            if not (w >= 0 and w < float("inf")):
                raise ValueError(f"{self._KEY}.{name} must be >= 0 (got {w!r})")
            if name in targets and not include and w > 0:
                raise ValueError(
                    f"{self._KEY}: {name!r} is a target relation, scored only "
                    "with hgt.train.objectives.relations.include_targets: true"
                )
        out: list[_RelEdges] = []
        for name in schema.relations:
            w = float(weights.get(name, 1.0))
            if w <= 0 or (name in targets and not include):
                continue
            et = schema.edge_type(name)
            src, dst = csr.to_coo(et)
            if src.numel() < 2:
                logger.warning(
                    "relations objective: relation %r has %d edges; skipped",
                    name,
                    src.numel(),
                )
                continue
            out.append((et, w, src, dst))
        if not out:
            raise ValueError(
                f"hgt.train.objectives.relations: no relation to score (weights "
                f"{weights or 'all 1'}, include_targets={include}, target "
                f"relations {sorted(targets)}, relations {sorted(schema.relations)})"
            )
        return out

    def relations(self) -> list[tuple[str, str, str]]:
        """The edge types this objective scores."""
        return [et for et, _, _, _ in self._rels]

    def pairs(self, seed: int) -> list[tuple[tuple[str, str, str], Tensor, Tensor]]:
        """``(edge type, src, dst)`` positives of every scored relation for the
        step seeded ``seed``: ``batch_size`` edges drawn uniformly (without
        replacement when the relation has at most ``batch_size`` edges: all)."""
        b = self.params.batch_size  # type: ignore[attr-defined]
        out = []
        for r, (et, _, src, dst) in enumerate(self._rels):
            gen = torch.Generator().manual_seed(derive_seed(seed, 301, r))
            n = src.numel()
            if n <= b:
                pick = torch.randperm(n, generator=gen)
            else:
                pick = torch.randint(n, (b,), generator=gen)
            out.append((et, src[pick], dst[pick]))
        return out

    def negatives(
        self, et: tuple[str, str, str], src: Tensor, dst: Tensor, seed: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(neg, src_mask, dst_mask)``: ``[B, K]`` positions of the in-batch
        negatives (row ``i``: other positives ``j != i``; the negatives of
        ``dst[i]`` are ``src[neg[i]]``, those of ``src[i]`` are ``dst[neg[i]]``)
        and the masks (``False``: equal to the positive's endpoint, or an edge
        of ``et`` with the anchor)."""
        k = self.params.num_neg  # type: ignore[attr-defined]
        return _edge_negatives(self.graph.csr, et, src, dst, k=k, seed=seed)

    def loss(self, batch: LinkBatch, outputs: dict[str, Tensor]) -> Tensor:
        scale = self.params.scale  # type: ignore[attr-defined]
        unit: dict[str, Tensor] = {}  # normalise each table once

        def table(node_type: str) -> Tensor:
            if node_type not in unit:
                unit[node_type] = F.normalize(outputs[node_type], dim=-1)
            return unit[node_type]

        total, weights = [], []
        for r, (et, src, dst) in enumerate(self.pairs(batch.seed)):
            w = self._rels[r][1]
            neg, src_mask, dst_mask = self.negatives(
                et, src, dst, derive_seed(batch.seed, 303, r)
            )
            eu, ev = table(et[0]), table(et[2])
            device = eu.device
            s, d, neg = src.to(device), dst.to(device), neg.to(device)
            total.append(
                w
                * symmetric_cosine_loss(
                    eu.index_select(0, s),
                    ev.index_select(0, d),
                    eu[s[neg]],
                    ev[d[neg]],
                    scale=scale,
                    u_neg_mask=src_mask.to(device),
                    v_neg_mask=dst_mask.to(device),
                    normalized=True,
                )
            )
            weights.append(w)
        return torch.stack(total).sum() / sum(weights)


class MaskedEdgeParams(ObjectiveParams):
    weight: float = Field(default=1.0, ge=0.0, description="weight in the sum")
    mask_ratio: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="share of the chosen relations' edges masked each step",
    )
    relations: Literal["targets", "all"] | list[str] = Field(
        default="targets",
        description="relations masked and reconstructed: the schema's target "
        "relations, all relations, or a list of names (a relation's rev_ twin is "
        "masked with it)",
    )
    batch_size: int = Field(
        default=1024, gt=1, description="masked edges scored per relation and step"
    )
    num_neg: int = Field(default=63, ge=1, description="in-batch negatives per side")
    scale: float = Field(default=2.0, gt=0.0, description="cosine scale s")
    contrast_weight: float = Field(
        default=0.5,
        ge=0.0,
        description="weight of the cross-view InfoNCE term (0: no second pass)",
    )
    contrast_view: Literal["mask", "full"] = Field(
        default="mask",
        description="second view: another random mask, or the step's graph "
        "without this objective's mask",
    )
    contrast_batch: int = Field(
        default=1024, gt=1, description="users contrasted per step"
    )
    tau: float = Field(default=0.7, gt=0.0, description="InfoNCE temperature")


@dataclass
class _MaskedRelation:
    """Where one relation's edges (and its ``rev_`` twin's) sit in a
    :class:`FullGraph`: positions in the destination type's edge list and the
    pair key ``src * num_dst + dst`` (forward orientation) of each."""

    edge_type: tuple[str, str, str]
    num_dst: int
    fwd_type: str
    fwd_pos: Tensor
    fwd_key: Tensor
    rev_type: str | None
    rev_pos: Tensor | None
    rev_key: Tensor | None


def _relation_positions(full: FullGraph, et: tuple[str, str, str]) -> Tensor:
    """Positions of ``et``'s edges in ``full.dst[et[2]]`` (empty if absent)."""
    g = full.dst.get(et[2])
    edge_types = [tuple(e) for e in full.edge_types]
    if g is None or et not in edge_types or edge_types.index(et) not in g.relations:
        return torch.empty(0, dtype=torch.long)
    pos = g.relations.index(edge_types.index(et))
    return torch.nonzero(g.rel == pos).view(-1)


def info_nce(z1: Tensor, z2: Tensor, tau: float) -> Tensor:
    """Symmetric InfoNCE between two views (row ``i`` of ``z1`` and ``z2``: the
    same node; the other rows: its negatives), on cosine similarities over
    ``tau``, as in GRACE / HeCo / KGRec's ``Contrast``:
    ``1/2 [CE(z1 z2^T / tau, I) + CE(z2 z1^T / tau, I)]``."""
    if not tau > 0:
        raise ValueError(f"tau must be > 0 (got {tau!r})")
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(
            f"z1 and z2 must be [N, d] of one shape (got {tuple(z1.shape)}, "
            f"{tuple(z2.shape)})"
        )
    logits = F.normalize(z1, dim=-1) @ F.normalize(z2, dim=-1).T / tau
    target = torch.arange(z1.shape[0], device=z1.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@register
class MaskedEdgeObjective(Objective):
    """Masked-edge reconstruction plus a cross-view contrast, after KGRec (Yang
    et al., *Knowledge Graph Self-Supervised Rationalization for
    Recommendation*, KDD 2023 — the seed's hopwise page says WWW 2021:
    masking-and-reconstructing edges, with a cross-view contrastive term) and HGMAE (Tian et al., *Heterogeneous Graph
    Masked Autoencoders*, AAAI 2023).

    Each step a seeded random share ``mask_ratio`` of the message-passing edges
    of the chosen relations (default: the target relations; a relation's
    ``rev_`` twin is masked with it) is removed from the step's encoder pass
    (:meth:`message_keep`; the other objectives then see the masked graph too,
    as KGRec's recommendation loss does). The encoder must then **reconstruct**
    the masked edges from the rest of the graph: ``batch_size`` masked pairs per
    relation are scored by the link objective's symmetric cosine loss (BPR-form
    ``softplus(-s (cos(u, v) - cos(u, v-)))``) against ``num_neg`` in-batch
    negatives per side (other masked pairs' endpoints; those equal to the
    positive's endpoint or joined to the anchor by an edge are masked). The
    pairs are scored against negatives, not by KGRec's positive-only
    ``-log sigmoid`` (that alone is minimised by collapsing every embedding),
    nor by HGMAE's feature / degree reconstruction: the project's nodes are
    mostly id-only, and what the u2u2i channel needs is that an edge hidden from
    the encoder is still recovered from longer paths (a user's other items,
    their other users), i.e. the link task without the answer on the graph.

    The **cross-view term** (weight ``contrast_weight``): a second encoder pass
    (:meth:`extra_views`) over another random mask (``contrast_view: mask``) or
    the step's graph without this objective's mask (``full``); symmetric
    InfoNCE (:func:`info_nce`, temperature ``tau``) between the two views'
    embeddings of ``contrast_batch`` random users (positives: the same user;
    negatives: the other users), as KGRec's and HeCo's contrast do, without their
    projection heads. Loss: reconstruction (mean over relations) +
    ``contrast_weight`` x contrast.

    Masked edges come from the train graph only (``graph.csr`` holds no
    held-out pair: :func:`~hgt_cluster_kedro.graph.split.train_edges`). Needs
    the full-graph mode (the mask acts on the whole graph's edges). Cost: one
    more encoder pass per step with the contrast on.
    """

    name = "masked_edge"
    Params = MaskedEdgeParams
    needs_full_graph = True

    _KEY = "hgt.train.objectives.masked_edge.relations"

    def __init__(
        self, params: ObjectiveParams, model: Any = None, graph: Any = None
    ) -> None:
        super().__init__(params, model, graph)
        self._layout: list[_MaskedRelation] | None = None
        self._full: FullGraph | None = None  # set by message_keep
        self._drawn: dict[tuple[int, int], list[Tensor]] = {}
        if graph is not None:
            self.relations()  # checked at construction: errors before a step

    def relations(self) -> list[tuple[str, str, str]]:
        """The forward edge types masked and reconstructed (``ValueError``
        naming the key for unknown names)."""
        schema = self.graph.schema
        chosen = self.params.relations  # type: ignore[attr-defined]
        if chosen == "targets":
            names = list(schema.target_relations)
        elif chosen == "all":
            names = list(schema.relations)
        else:
            names = list(chosen)
            if not names:
                raise ValueError(f"{self._KEY}: the list is empty (got [])")
            for name in names:
                if name not in schema.relations:
                    raise ValueError(
                        f"{self._KEY}: {name!r} is not a relation of the schema; "
                        f"known: {sorted(schema.relations)} (a rev_ twin is "
                        "masked with its relation)"
                    )
        return [schema.edge_type(name) for name in names]

    def _relations_in(self, full: FullGraph) -> list[_MaskedRelation]:
        """Each chosen relation's positions and pair keys in ``full`` (built
        on the first call; the graph is the same every step)."""
        if self._layout is not None:
            return self._layout
        out = []
        for et in self.relations():
            n_dst = full.num_nodes[et[2]]
            pos = _relation_positions(full, et)
            g = full.dst.get(et[2])
            device = pos.device if g is None else g.ptr.device
            pos = pos.to(device)
            key = (
                g.src[pos] * n_dst + g.dst[pos]
                if g is not None
                else torch.empty(0, dtype=torch.long)
            )
            rev = (et[2], f"rev_{et[1]}", et[0])
            rpos = _relation_positions(full, rev)
            rg = full.dst.get(et[0])
            if rpos.numel() and rg is not None:
                rpos = rpos.to(rg.ptr.device)
                rkey = rg.dst[rpos] * n_dst + rg.src[rpos]
                twin = (et[0], rpos, rkey)
            else:
                twin = (None, None, None)
            if key.numel() < 2:
                logger.warning(
                    "masked_edge: relation %r has %d edges; skipped", et[1], key.numel()
                )
                continue
            out.append(_MaskedRelation(et, n_dst, et[2], pos, key, *twin))
        if not out:
            raise ValueError(
                f"{self._KEY}: no relation with at least 2 edges in the graph "
                f"(chose {[et[1] for et in self.relations()]})"
            )
        self._layout = out
        return out

    def masked_keys(self, seed: int, full: FullGraph, view: int = 0) -> list[Tensor]:
        """Sorted unique pair keys (``src * num_dst + dst``) of each relation's
        masked edges for the step seeded ``seed`` (``view``: 0 the step's mask,
        1 the contrast's second mask): each edge independently with
        probability ``mask_ratio``."""
        cache = (int(seed), view)
        if cache not in self._drawn:
            ratio = self.params.mask_ratio  # type: ignore[attr-defined]
            keys = []
            for r, rel in enumerate(self._relations_in(full)):
                gen = torch.Generator().manual_seed(derive_seed(seed, 401, view, r))
                hit = torch.rand(rel.fwd_key.numel(), generator=gen) < ratio
                keys.append(torch.unique(rel.fwd_key[hit.to(rel.fwd_key.device)]))
            self._drawn = {cache: keys}  # only the current step's masks
        return self._drawn[cache]

    def masked_pairs(
        self, seed: int, full: FullGraph
    ) -> list[tuple[tuple[str, str, str], Tensor, Tensor]]:
        """``(edge type, src, dst)`` of every relation's masked edges (CPU)."""
        out = []
        for rel, keys in zip(
            self._relations_in(full), self.masked_keys(seed, full), strict=True
        ):
            k = keys.cpu()
            out.append((rel.edge_type, k // rel.num_dst, k % rel.num_dst))
        return out

    def _apply(self, keep: Keep | None, full: FullGraph, masked: list[Tensor]) -> Keep:
        """``keep`` (copied) with the edges of ``masked`` keys set to 0."""
        out = (
            {t: k.clone() for t, k in keep.items()}
            if keep is not None
            else {
                t: torch.ones(g.num_edges, dtype=torch.uint8, device=g.ptr.device)
                for t, g in full.dst.items()
            }
        )
        for rel, keys in zip(self._relations_in(full), masked, strict=True):
            sides = [(rel.fwd_type, rel.fwd_pos, rel.fwd_key)]
            if rel.rev_type is not None:
                sides.append((rel.rev_type, rel.rev_pos, rel.rev_key))
            for t, pos, key in sides:
                hit = pos[torch.isin(key, keys)]
                out[t][hit.to(out[t].device)] = 0
        return out

    def message_keep(
        self, batch: LinkBatch, keep: Keep | None, full: FullGraph
    ) -> Keep | None:
        """Remove the step's masked edges (and their twins) from its pass."""
        self._full = full
        return self._apply(keep, full, self.masked_keys(batch.seed, full))

    def extra_views(
        self, batch: LinkBatch, keep: Keep | None, full: FullGraph
    ) -> list[Keep | None]:
        """The contrast's second view (none when ``contrast_weight`` is 0)."""
        p = self.params
        if p.contrast_weight <= 0:  # type: ignore[attr-defined]
            return []
        if p.contrast_view == "full":  # type: ignore[attr-defined]
            return [keep]
        return [self._apply(keep, full, self.masked_keys(batch.seed, full, view=1))]

    def reconstruction(self, seed: int, outputs: dict[str, Tensor]) -> Tensor:
        """Mean over relations of the symmetric cosine loss of ``batch_size``
        masked pairs against in-batch negatives."""
        p = self.params
        losses = []
        for r, (et, all_src, all_dst) in enumerate(self.masked_pairs(seed, self._full)):
            n = all_src.numel()
            if n < 2:
                continue
            gen = torch.Generator().manual_seed(derive_seed(seed, 404, r))
            pick = torch.randperm(n, generator=gen)[: p.batch_size]  # type: ignore[attr-defined]
            src, dst = all_src[pick], all_dst[pick]
            neg, src_mask, dst_mask = _edge_negatives(
                self.graph.csr,
                et,
                src,
                dst,
                k=p.num_neg,  # type: ignore[attr-defined]
                seed=derive_seed(seed, 405, r),
            )
            eu = F.normalize(outputs[et[0]], dim=-1)
            ev = F.normalize(outputs[et[2]], dim=-1)
            device = eu.device
            s, d, neg = src.to(device), dst.to(device), neg.to(device)
            losses.append(
                symmetric_cosine_loss(
                    eu.index_select(0, s),
                    ev.index_select(0, d),
                    eu[s[neg]],
                    ev[d[neg]],
                    scale=p.scale,  # type: ignore[attr-defined]
                    u_neg_mask=src_mask.to(device),
                    v_neg_mask=dst_mask.to(device),
                    normalized=True,
                )
            )
        if not losses:
            return next(iter(outputs.values())).sum() * 0.0
        return torch.stack(losses).mean()

    def contrast(
        self, seed: int, outputs: dict[str, Tensor], other: dict[str, Tensor]
    ) -> Tensor:
        """InfoNCE between the two views' embeddings of ``contrast_batch``
        random users."""
        p = self.params
        user_t = self.graph.schema.user_type
        n = outputs[user_t].shape[0]
        gen = torch.Generator().manual_seed(derive_seed(seed, 403))
        users = torch.randperm(n, generator=gen)[: p.contrast_batch]  # type: ignore[attr-defined]
        users = users.to(outputs[user_t].device)
        return info_nce(
            outputs[user_t].index_select(0, users),
            other[user_t].index_select(0, users),
            p.tau,  # type: ignore[attr-defined]
        )

    def loss(self, batch: LinkBatch, outputs: dict[str, Tensor]) -> Tensor:
        """Reconstruction of the step's masked edges + ``contrast_weight`` x the
        contrast with the extra view. Without the view (the validation loss,
        for which the loop runs no extra pass): the reconstruction only."""
        if self._full is None:  # e.g. validation before any step (a resume)
            self._full = FullGraph.from_csr(self.graph.csr, self.graph.csr.edge_types)
        total = self.reconstruction(batch.seed, outputs)
        w = self.params.contrast_weight  # type: ignore[attr-defined]
        views = batch.views.get(self.name)
        if w > 0 and views:
            total = total + w * self.contrast(batch.seed, outputs, views[0])
        return total
