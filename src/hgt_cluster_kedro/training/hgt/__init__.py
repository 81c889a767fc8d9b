"""HGT training, split by responsibility.

* :mod:`.config` — :class:`HGTTrainConfig` (typed, with help text), run
  identity and fingerprint, fanouts.
* :mod:`.objectives` — the loss terms, registered by name (link, joint SOM).
* :mod:`.data` — target edges, each rank's shard, the epoch plan.
* :mod:`.state` — typed :class:`History`, loop state and checkpoints.
* :mod:`.loop` — :func:`train_hgt` and its ``_step``.
* :mod:`.validate` — validation loss and Recall@K.
* :mod:`.inference` — :func:`embed_all` (sampled or full graph).
* :mod:`.model_io` — model files (:func:`save_hgt`, :func:`load_hgt`).

Negative samplers live in :mod:`hgt_cluster_kedro.graph.negatives` (they are
handed to the link sampler), the fused full-graph attention in
:mod:`hgt_cluster_kedro.models.hgt_attention`.
"""

from . import data, loop
from .config import HGTTrainConfig, resolve_fanouts, run_identity
from .inference import embed_all, embed_full
from .loop import FAIL_ENV, FAIL_RANK_ENV, train_hgt
from .model_io import load_hgt, save_hgt
from .objectives import OBJECTIVES, LinkBatch, Objective
from .state import CHECKPOINT_PREFIX, History, latest_hgt_checkpoint

__all__ = [
    "CHECKPOINT_PREFIX",
    "data",
    "loop",
    "FAIL_ENV",
    "FAIL_RANK_ENV",
    "OBJECTIVES",
    "HGTTrainConfig",
    "History",
    "LinkBatch",
    "Objective",
    "embed_all",
    "embed_full",
    "latest_hgt_checkpoint",
    "load_hgt",
    "resolve_fanouts",
    "run_identity",
    "save_hgt",
    "train_hgt",
]
