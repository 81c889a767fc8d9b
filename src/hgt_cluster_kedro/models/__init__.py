"""Models (no Kedro): TwHIN baseline, HGT encoder, losses."""

from .hgt import HGTEncoder
from .losses import cosine_pair_loss, symmetric_cosine_loss
from .twhin import TwHIN, batch_layout, embeddings, embeddings_frame, twhin_loss

__all__ = [
    "HGTEncoder",
    "TwHIN",
    "batch_layout",
    "cosine_pair_loss",
    "embeddings",
    "embeddings_frame",
    "symmetric_cosine_loss",
    "twhin_loss",
]
