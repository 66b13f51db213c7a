"""Per-file work done in worker processes while indexing: read, hash, decode, preprocess (and, on a
cluster, embed).

Kept apart from the index code so spawned workers import only Pillow and numpy (importing usearch
before forking was seen to hang ``import onnxruntime`` in children; we also start workers with spawn).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from imgret.errors import ImageError
from imgret.runtime import imageio


@dataclass
class Prepared:
    """The outcome for one file: a hash and pixels (or, from a cluster worker, the vector itself), or a
    skip reason."""

    path: str
    sha256: str | None
    pixels: np.ndarray | None
    reason: str | None = None
    message: str | None = None
    vector: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        """True when the file gave pixels or a vector, False when it is skipped."""
        return self.pixels is not None or self.vector is not None


def prepare(path: str, size: int) -> Prepared:
    """Read ``path`` once, hash its bytes and preprocess it; never raises for a bad file."""
    try:
        data = imageio.read_image_bytes(path)
    except ImageError as exc:
        return Prepared(path, None, None, exc.reason, str(exc))
    digest = hashlib.sha256(data).hexdigest()
    try:
        pixels = imageio.resize_square(imageio.decode(data, size), size)
    except ImageError as exc:
        return Prepared(path, digest, None, exc.reason, str(exc))
    except Exception as exc:  # a decoder bug must not end the run
        return Prepared(path, digest, None, "decoder-error", f"{type(exc).__name__}: {exc}")
    return Prepared(path, digest, pixels)


def prepare_many(args: tuple[list[str], int]) -> list[Prepared]:
    """:func:`prepare` for a chunk of paths (one worker task)."""
    paths, size = args
    return [prepare(p, size) for p in paths]


def embed_prepared(preps: list[Prepared], embed_arrays, batch: int) -> list[Prepared]:
    """Replace the pixels of the prepared files by their vectors, ``batch`` pictures per encoder call.

    Used where decoding and encoding happen in the same process (a cluster worker), so only vectors
    travel back to the writer.
    """
    ready = [p for p in preps if p.pixels is not None]
    for start in range(0, len(ready), batch):
        part = ready[start:start + batch]
        vectors = embed_arrays(np.stack([p.pixels for p in part]))
        for prep, vec in zip(part, vectors):
            prep.vector, prep.pixels = np.asarray(vec, dtype=np.float32), None
    return preps
