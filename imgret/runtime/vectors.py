"""The usearch index file: a derived, rebuildable accelerator over the catalogue's vectors.

It is serialised to bytes, checksummed and written through :mod:`imgret.runtime.atomic`,
so a reader never sees a half-written file and a crash leaves the previous one. Loading verifies the
checksum and count the catalogue recorded; any mismatch means "rebuild from the catalogue", never
"search it anyway".
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from imgret.runtime import atomic

# Below this many vectors a query is an exact (brute-force) scan; above it, the HNSW graph.
EXACT_SEARCH_LIMIT = 20_000
USEARCH_METRIC = {"cosine": "cos", "l2": "l2sq"}
# Temporary files of imgret before the shared atomic writer were named ".vectors-*.tmp".
LEGACY_TEMP_NAME = "vectors"


@dataclass(frozen=True)
class SavedIndex:
    """What the catalogue records about a saved index file."""

    count: int
    sha256: str
    size: int


class IndexDamaged(Exception):
    """The index file does not match what the catalogue recorded."""


def build(keys: np.ndarray, vectors: np.ndarray, metric: str):
    """Create an in-memory usearch index from keys and float32 vectors."""
    from usearch.index import Index

    dim = vectors.shape[1]
    index = Index(ndim=dim, metric=USEARCH_METRIC[metric], dtype="f32")
    if len(keys):
        index.add(np.asarray(keys, dtype=np.uint64), np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def save_atomic(index, path: str) -> SavedIndex:
    """Serialise ``index`` to ``path`` atomically (:mod:`imgret.runtime.atomic`); return its checksum record.

    The caller holds the library's writer lock, so any earlier temporary file in the folder was left by
    a writer that was killed mid-save; it is removed here rather than left to pile up.
    """
    data = bytes(index.save())
    digest = hashlib.sha256(data).hexdigest()
    folder = os.path.dirname(os.path.abspath(path))
    atomic.remove_stale_temps(folder, os.path.basename(path))
    atomic.remove_stale_temps(folder, LEGACY_TEMP_NAME)
    atomic.write_bytes(path, data)
    return SavedIndex(count=len(index), sha256=digest, size=len(data))


def load_verified(path: str, expected: SavedIndex):
    """Load an index file only if its size, checksum and count match ``expected``."""
    from usearch.index import Index

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise IndexDamaged(f"cannot read index file: {exc.strerror}") from exc
    if len(data) != expected.size:
        raise IndexDamaged(f"index file is {len(data)} bytes, catalogue expects {expected.size}")
    if hashlib.sha256(data).hexdigest() != expected.sha256:
        raise IndexDamaged("index file checksum does not match the catalogue")
    try:
        index = Index.restore(data)
    except Exception as exc:
        raise IndexDamaged(f"index file cannot be parsed: {exc}") from exc
    if index is None or len(index) != expected.count:
        raise IndexDamaged("index file holds a different number of vectors than the catalogue")
    return index


def search(index, queries: np.ndarray, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Nearest ``count`` keys and distances for each query row; exact below :data:`EXACT_SEARCH_LIMIT`."""
    size = len(index)
    if size == 0 or count <= 0:
        return [(np.zeros(0, np.uint64), np.zeros(0, np.float32)) for _ in range(len(queries))]
    k = min(count, size)
    exact = size <= EXACT_SEARCH_LIMIT
    result = index.search(np.ascontiguousarray(queries, dtype=np.float32), k, exact=exact)
    out = []
    keys = np.atleast_2d(result.keys)
    dists = np.atleast_2d(result.distances)
    counts = np.atleast_1d(getattr(result, "counts", np.full(len(queries), k)))
    for i in range(len(queries)):
        n = int(counts[i])
        out.append((keys[i, :n].astype(np.uint64), dists[i, :n].astype(np.float32)))
    return out
