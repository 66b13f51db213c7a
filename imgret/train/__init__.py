"""Training the autoencoder (PyTorch only).

``imgret.train`` imports torch; nothing in ``imgret.runtime`` imports this package. The entry points:
:func:`imgret.train.loop.train` (run a :class:`~imgret.train.config.TrainConfig`) and
:func:`imgret.train.checkpoint.load_encoder` (a checkpoint as an eval-mode embedding module).
"""

from imgret.train.checkpoint import load_encoder
from imgret.train.config import TrainConfig
from imgret.train.loop import TrainingInterrupted, TrainResult, add_heads, train

__all__ = ["TrainConfig", "TrainResult", "TrainingInterrupted", "add_heads", "load_encoder", "train"]
