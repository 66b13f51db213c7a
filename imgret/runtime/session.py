"""The one way imgret opens an ONNX model with onnxruntime: on the CPU, quiet, with an optional bound
on its threads. The runtime :class:`~imgret.runtime.encoder.Encoder` and the export's parity and int8
checks open their sessions here, so what an export checks is what the runtime will run.
"""

from __future__ import annotations

import os


def open_session(model: str | os.PathLike | bytes, *, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` of a model file (or the model's bytes) on the CPU.

    ``threads`` bounds onnxruntime's intra-op threads (default: onnxruntime's choice). onnxruntime's
    own exceptions pass through; callers turn them into their typed errors."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # warnings about unused initialisers and the like are not the user's business
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
