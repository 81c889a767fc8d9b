"""Models (no Kedro): TwHIN baseline."""

from .twhin import TwHIN, batch_layout, embeddings, embeddings_frame, twhin_loss

__all__ = [
    "TwHIN",
    "batch_layout",
    "embeddings",
    "embeddings_frame",
    "twhin_loss",
]
