"""Which device a run uses, and seeding every random number generator it draws from."""

from __future__ import annotations

import random

import numpy as np
import torch

from imgret.errors import TrainingError


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, else Apple MPS, else CPU; any other value is passed to ``torch.device``."""
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise TrainingError(f"unknown device {name!r}") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise TrainingError("--device cuda asked for, but PyTorch sees no CUDA GPU")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
