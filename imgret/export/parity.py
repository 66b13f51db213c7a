"""Does the ONNX file compute what PyTorch computes? Checked on real preprocessed pictures, through
an onnxruntime session opened exactly as the runtime opens it (:mod:`imgret.runtime.session`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from imgret.errors import ExportError
from imgret.runtime.modelinfo import INPUT_NAME, OUTPUT_NAME
from imgret.runtime.session import new_session

# What "the same" means: read at each check, so a caller (or a test) can tighten them.
MAX_ABS_DIFF = 1e-4
MIN_COSINE = 0.99999


@dataclass(frozen=True)
class ParityReport:
    """How close onnxruntime's embeddings came to PyTorch's on ``count`` pictures."""

    count: int
    max_abs_diff: float
    min_cosine: float
    source: str


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``[N, D]`` arrays."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(denom, 1e-30)


def run_onnx(model: str | os.PathLike | bytes, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """Embed uint8 NHWC ``images`` with onnxruntime on the CPU (a model file or its bytes)."""
    session = new_session(model)
    parts = [session.run([OUTPUT_NAME], {INPUT_NAME: images[i: i + batch]})[0] for i in range(0, len(images), batch)]
    return np.concatenate(parts)


def check_parity(model: str | os.PathLike | bytes, embedding_model, images: np.ndarray, *,
                 source: str = "images") -> ParityReport:
    """Compare onnxruntime with the eval-mode PyTorch ``embedding_model`` within :data:`MAX_ABS_DIFF`
    and :data:`MIN_COSINE`; raise :class:`ExportError` when they disagree."""
    import torch

    with torch.no_grad():
        expected = embedding_model(torch.from_numpy(images)).numpy()
    got = run_onnx(model, images)
    if got.shape != expected.shape:
        raise ExportError(f"ONNX output shape {got.shape} differs from PyTorch's {expected.shape}")
    diff = float(np.abs(got - expected).max())
    cos = float(cosine_rows(got, expected).min())
    report = ParityReport(len(images), diff, cos, source)
    if not (diff <= MAX_ABS_DIFF and cos >= MIN_COSINE):
        raise ExportError(
            f"ONNX and PyTorch disagree on {len(images)} {source}: max abs diff {diff:.3g} "
            f"(allowed {MAX_ABS_DIFF:g}), min cosine {cos:.7f} (needed {MIN_COSINE}); nothing written")
    return report
