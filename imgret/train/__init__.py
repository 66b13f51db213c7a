"""Training the autoencoder (PyTorch only).

Nothing in ``imgret.runtime`` imports this package. The entry points: :func:`train` (run a
:class:`TrainConfig`), :func:`add_heads` (give a finished run its heads), :func:`fit_heads` (the one
place heads are fitted) and :func:`load_encoder` (a checkpoint as an eval-mode embedding module).
:mod:`imgret.train.config` is torch-free, so the CLI builds ``imgret train``'s options from it
without importing torch; everything else here is imported on first use.
"""

import importlib

_LAZY = {
    "TrainConfig": "imgret.train.config",
    "HEAD_SETTINGS": "imgret.train.config",
    "load_encoder": "imgret.train.checkpoint",
    "TrainResult": "imgret.train.run",
    "TrainingInterrupted": "imgret.train.run",
    "train": "imgret.train.run",
    "add_heads": "imgret.train.heads",
    "fit_heads": "imgret.train.heads",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    # Lazily, so that importing the torch-free config does not import torch.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
