"""Per-file work done in worker processes while indexing: read, hash, decode, preprocess.

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
    """The outcome for one file: a hash and pixels, or a skip reason."""

    path: str
    sha256: str | None
    pixels: np.ndarray | None
    reason: str | None = None
    message: str | None = None


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
    paths, size = args
    return [prepare(p, size) for p in paths]
