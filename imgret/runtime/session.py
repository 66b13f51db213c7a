"""The one way imgret opens an ONNX model with onnxruntime: on the CPU, quiet, with an optional bound
on its threads.

Quiet means two things. onnxruntime's telemetry is switched off (where the build has it), and its own
logger only reports fatal errors, both for the session and process-wide (some messages, such as an
"Integer overflow" on a huge initializer, come from the default logger before a session exists). So a
model that cannot be loaded reaches the user only as imgret's one line, and onnxruntime writes nothing
outside the library and the user's outputs (no ``~/.cache/Microsoft`` folder, no warning about an
unwritable home). Everything in imgret that imports onnxruntime goes through :func:`quiet_onnxruntime`.
"""

from __future__ import annotations

import os
import sys

from imgret.errors import ModelError

FATAL = 4  # onnxruntime's severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal


def quiet_onnxruntime():
    """Import onnxruntime with its telemetry off and its default logger at fatal; returns the module.

    The environment switch must be set before the first import: importing onnxruntime is what writes
    a device id under ``~/.cache/Microsoft`` (or warns when it cannot). An explicit choice in the
    environment is kept. Worker processes inherit it.
    """
    if "onnxruntime" not in sys.modules and "usearch.compiled" in sys.modules:
        # usearch 2.26's native library loaded first makes onnxruntime 1.32's import crash (SIGSEGV)
        raise ModelError("onnxruntime cannot be loaded in this process after the vector index was opened "
                         "without it (Library.open(one_shot=True) promises no embedding after the search)")
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    disable = getattr(ort, "disable_telemetry_events", None)  # absent from some builds
    if disable is not None:
        disable()
    ort.set_default_logger_severity(FATAL)
    return ort


def new_session(path_or_bytes: str | os.PathLike | bytes, *, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` of a model file (or the model's bytes) on the CPU, quiet.

    ``threads`` bounds onnxruntime's intra-op threads (default: onnxruntime's choice). onnxruntime's
    own exceptions pass through; callers turn them into their typed errors.
    """
    ort = quiet_onnxruntime()
    opts = ort.SessionOptions()
    opts.log_severity_level = FATAL
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    source = path_or_bytes if isinstance(path_or_bytes, bytes) else os.fspath(path_or_bytes)
    return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])

