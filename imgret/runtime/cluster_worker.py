"""What runs on a Dask worker for ``imgret index --cluster``: the model, the probe, the embedding task.

Imported only once the ``cluster`` extra is known to be there (by :mod:`imgret.runtime.cluster`, and
on the workers, by the tasks it sends); it needs ``distributed`` at import because the model travels
as a worker plugin. The plugin carries the ONNX bytes, so a worker never needs the writer's model path;
it checks them against the library's fingerprint and loads one onnxruntime session per fingerprint
into :data:`_SESSIONS`, kept for every task the worker process runs. Dask hands the plugin to workers
that join or restart later, so a replaced worker has the model too.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

from distributed.diagnostics.plugin import WorkerPlugin

from imgret.errors import ClusterError
from imgret.runtime.batching import BATCH
from imgret.runtime.encoder import Encoder
from imgret.runtime.prepare import Prepared, embed_prepared, prepare

_SESSIONS: dict[str, Encoder] = {}  # model fingerprint -> this worker process's encoder


class ModelPlugin(WorkerPlugin):
    """Ships one model by content to every worker and loads it there once."""

    def __init__(self, model: bytes, fingerprint: str) -> None:
        """``model``: the ONNX file's bytes; ``fingerprint``: their SHA-256 as the library records it."""
        self.model, self.fingerprint = model, fingerprint
        self.name = f"imgret-model-{fingerprint[:16]}"
        self.idempotent = True  # registering the same model twice is a no-op

    def setup(self, worker=None) -> None:
        """Load the model into this worker process (dask calls this on every worker)."""
        load_model(self.model, self.fingerprint)


def load_model(model: bytes, fingerprint: str) -> Encoder:
    """This process's encoder for ``fingerprint``, loaded from ``model`` the first time only."""
    encoder = _SESSIONS.get(fingerprint)
    if encoder is not None:
        return encoder
    if hashlib.sha256(model).hexdigest() != fingerprint:
        raise ClusterError("the model bytes a worker received do not match the library's fingerprint")
    with tempfile.TemporaryDirectory(prefix="imgret-model-") as folder:
        path = os.path.join(folder, "model.onnx")
        with open(path, "wb") as fh:
            fh.write(model)
        # One intra-op thread: a worker's parallelism is its dask threads and the cluster's processes.
        encoder = Encoder(path, threads=1, name=fingerprint[:12])
    _SESSIONS[fingerprint] = encoder
    return encoder


def embed_task(fingerprint: str, paths: list[str], size: int) -> list[Prepared]:
    """Read, decode and embed ``paths`` with the model of ``fingerprint`` (one task)."""
    encoder = _SESSIONS.get(fingerprint)
    if encoder is None:
        raise ClusterError(f"worker has no model {fingerprint[:12]}: its plugin did not run")
    return embed_prepared([prepare(p, size) for p in paths], encoder.embed_arrays, BATCH)


def probe_task(sample: list[tuple[str, int]]) -> tuple[str, str] | None:
    """The first ``(path, why)`` of ``sample`` this worker cannot read as the writer sees it, or ``None``."""
    for path, size in sample:
        try:
            with open(path, "rb") as fh:
                fh.read(4096)
            here = os.stat(path).st_size
        except OSError as exc:
            return path, exc.strerror or type(exc).__name__
        if here != size:
            return path, f"{here} bytes here, {size} on the writer: not the same file"
    return None


def loaded_models() -> dict[str, int]:
    """Fingerprint -> id of the loaded encoder (tests check that sessions are kept across tasks)."""
    return {fp: id(enc) for fp, enc in _SESSIONS.items()}
