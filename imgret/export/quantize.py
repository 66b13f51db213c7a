"""Static int8 (QDQ) quantisation of an exported encoder, calibrated on the run's validation pictures.

Static QDQ was chosen because dynamic int8 measured 2-7x slower than fp32 for this conv net on CPU.
The report says how far the int8 model's nearest neighbours drift from fp32's.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from imgret.export.parity import cosine_rows, run_onnx
from imgret.runtime.modelinfo import INPUT_NAME


@dataclass(frozen=True)
class Int8Report:
    """int8 against fp32 on ``count`` pictures: neighbour-set overlap and embedding difference."""

    path: str
    count: int
    k: int
    mean_topk_overlap: float
    max_abs_diff: float
    min_cosine: float


def quantize_static_qdq(fp32: bytes, images: np.ndarray) -> bytes:
    """The int8 model of ``fp32`` (model bytes): per-channel QInt8 weights, QUInt8 activations,
    calibrated on ``images``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{INPUT_NAME: images[i: i + 8]} for i in range(0, len(images), 8)])

        def get_next(self):
            return next(self.batches, None)

    # The quantiser logs advice on the root logger (pre-processing, BN weights); keep stderr for our report.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    # The quantiser reads and writes files; a scratch folder holds them, the export writes the result.
    with tempfile.TemporaryDirectory(prefix="imgret-int8-") as scratch:
        src, dst = os.path.join(scratch, "fp32.onnx"), os.path.join(scratch, "int8.onnx")
        with open(src, "wb") as fh:
            fh.write(fp32)
        try:
            quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        with open(dst, "rb") as fh:
            return fh.read()


def topk_sets(emb: np.ndarray, k: int) -> list[set[int]]:
    """Each row's ``k`` nearest other rows by cosine (rows assumed comparable by dot product after norm)."""
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sims = e @ e.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return [set(row.tolist()) for row in order]


def compare_int8(fp32: bytes, int8: bytes, images: np.ndarray, int8_path: str, k: int = 10) -> Int8Report:
    """Mean overlap of top-``k`` neighbour sets (1.0 = identical) and max abs embedding difference of
    the two models (bytes); ``int8_path`` is where the int8 model is to be written."""
    a, b = run_onnx(fp32, images), run_onnx(int8, images)
    k = max(1, min(k, len(images) - 1))
    overlap = float(np.mean([len(x & y) / k for x, y in zip(topk_sets(a, k), topk_sets(b, k))]))
    return Int8Report(os.fspath(int8_path), len(images), k, overlap, float(np.abs(a - b).max()),
                      float(cosine_rows(a, b).min()))
