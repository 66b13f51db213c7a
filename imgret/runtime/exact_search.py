"""Vectors compared as usearch compares them, in numpy: the query rounded as usearch stores vectors
(f16; i8 after normalising, code = 127 x cut toward zero), usearch's cosine and squared-L2 distances
(zero vectors included), and :class:`PendingVectors`, the exact search over the vectors not yet in
the vector file that stands beside :class:`~imgret.runtime.graph_file.GraphFile`. Shared by both so
that a pending vector has the distance it will have once in the file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgret.runtime.vector_layout import STORED_TYPES


@dataclass(frozen=True)
class Matches:
    """Search results shaped as usearch gives them: ``keys`` and ``distances`` ``[queries, k]``,
    ``counts`` ``[queries]`` (how many of each row are real)."""

    keys: np.ndarray
    distances: np.ndarray
    counts: np.ndarray


def prepare(query: np.ndarray, dtype: str) -> tuple[np.ndarray, float]:
    """The query as usearch compares it with stored ``dtype`` vectors, in float32, and its norm."""
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    if dtype == "f16":
        q = q.astype(np.float16).astype(np.float32)
    elif dtype == "i8":
        norm = float(np.sqrt(np.dot(q, q)))
        q = q / norm if norm > 0 else q
        q = np.clip(np.trunc(q * 127), -127, 127).astype(np.float32)  # a cast: toward zero
    return q, float(np.sqrt(np.dot(q, q)))


def distances(rows: np.ndarray, q: np.ndarray, q_norm: float, metric: str) -> np.ndarray:
    """usearch's distances (``cos`` or ``l2sq``) from the prepared query to each stored row."""
    rows = rows.astype(np.float32, copy=False)
    if metric == "l2sq":
        diff = rows - q
        return (diff * diff).sum(axis=1)
    norms = np.sqrt((rows * rows).sum(axis=1)) * np.float32(q_norm)
    if norms.all():
        return 1 - (rows @ q) / norms
    # usearch: two zero vectors are at distance 0, a zero and another at distance 1
    out = 1 - (rows @ q) / np.where(norms > 0, norms, np.float32(1))
    out[norms == 0] = 1.0
    if not q_norm:
        out[(rows * rows).sum(axis=1) == 0] = 0.0
    return out


class PendingVectors:
    """Vectors not yet in the vector file, searched exactly, stored as the file stores them (so a
    pending vector has the distance it will have there): the stand-in for usearch's in-memory index
    beside a :class:`GraphFile`. There are at most a few thousand (``vector_file.MAX_PENDING``)."""

    def __init__(self, dim: int, dtype: str, metric: str) -> None:
        self.dim, self.dtype, self.metric = dim, dtype, metric
        self._keys: list[np.ndarray] = []
        self._rows: list[np.ndarray] = []

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``keys`` and their float32 ``vectors``, rounded to the stored type."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        self._keys.append(np.asarray(keys, dtype=np.uint64).reshape(-1))
        self._rows.append(np.stack([prepare(v, self.dtype)[0] for v in vectors]) if self.dtype == "i8"
                          else vectors.astype(STORED_TYPES[self.dtype]).astype(np.float32))

    def __len__(self) -> int:
        return sum(len(k) for k in self._keys)

    def search(self, queries: np.ndarray, count: int, *, exact: bool = True) -> Matches:  # noqa: ARG002 - always exact
        """The nearest ``count`` keys of each query row, compared with every pending vector."""
        keys = np.concatenate(self._keys) if self._keys else np.zeros(0, np.uint64)
        rows = np.concatenate(self._rows) if self._rows else np.zeros((0, self.dim), np.float32)
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        count = min(count, len(keys))
        out_k = np.zeros((len(queries), count), dtype=np.uint64)
        out_d = np.zeros((len(queries), count), dtype=np.float32)
        for i, query in enumerate(queries):
            d = distances(rows, *prepare(query, self.dtype), self.metric)
            order = np.argsort(d, kind="stable")[:count]
            out_k[i], out_d[i] = keys[order], d[order]
        return Matches(out_k, out_d, np.full(len(queries), count, dtype=np.int64))

    def reset(self) -> None:
        """Forget the vectors."""
        self._keys, self._rows = [], []
