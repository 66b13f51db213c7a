"""The nearest-neighbour graph of a set of vectors, for finding copies: every vector's ``k`` nearest
others from usearch, searched in batches on all cores, keeping only the pairs under a distance.

No all-pairs matrix is made: an exact (brute-force) scan below :data:`EXACT_SEARCH_LIMIT` vectors,
a lightly built HNSW graph above it.
"""

from __future__ import annotations

import numpy as np

from imgret.runtime.progress import ProgressCallback
from imgret.runtime.vectors import USEARCH_METRIC, usearch_index_class

DEFAULT_NEIGHBOURS = 16
SEARCH_BATCH = 8192
# All-against-all exact search is quadratic: on 2 cores usearch's brute force took 8 s for 10,000
# vectors against 4 s for building and searching the HNSW graph below, so the graph starts far sooner
# here than for queries (vectors.EXACT_SEARCH_LIMIT). Copies are each other's nearest neighbours, which
# even a lightly built graph finds (recall of the 17 nearest 0.997 at 20,000 vectors).
EXACT_SEARCH_LIMIT = 4096
HNSW_EXPANSION_ADD = 32
HNSW_EXPANSION_SEARCH = 32


def neighbour_scale(vectors: np.ndarray, *, metric: str = "cosine", neighbours: int = DEFAULT_NEIGHBOURS,
                    threads: int = 0) -> np.ndarray:
    """Each row's distance to its ``neighbours``-th nearest other row (inf when there are too few rows):
    the scale that :func:`imgret.runtime.dups.find_duplicates` compares a pair's distance with."""
    vecs = comparable(np.ascontiguousarray(vectors, dtype=np.float32), metric)
    return near_pairs(vecs, 0.0, metric, neighbours, threads, None)[1]


def comparable(vecs: np.ndarray, metric: str) -> np.ndarray:
    """Cosine distance is ``1 - dot`` only for unit rows; rows that are not (within float error) are
    normalised here, in a copy, so a caller's stray vector cannot make a distance negative."""
    if metric != "cosine" or len(vecs) == 0:
        return vecs
    norms = np.linalg.norm(vecs, axis=1)
    if np.all(np.abs(norms - 1.0) < 1e-3):
        return vecs
    return (vecs / np.maximum(norms, 1e-12)[:, None]).astype(np.float32)


def near_pairs(  # noqa: PLR0913 - find_duplicates' options, passed on
        vecs: np.ndarray, threshold: float, metric: str, k: int, threads: int,
               progress: ProgressCallback | None) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Edges ``(i, j)``, ``i != j``, where ``j`` is among ``i``'s ``k`` nearest and within the threshold,
    and each row's distance to its ``k``-th nearest (inf with fewer than ``k`` others).

    Queries run in batches so memory holds one batch of results, not ``n x k`` of them.
    """
    n = len(vecs)
    scale = np.full(n, np.inf, dtype=np.float32)
    if n < 2:
        return (np.zeros(0, np.int64), np.zeros(0, np.int64)), scale
    count = min(k + 1, n)  # each vector finds itself first
    search = _searcher(vecs, metric, threads)
    slack = 1e-5  # usearch's float arithmetic differs from ours in the last bits; ours decides later
    src, dst = [], []
    for start in range(0, n, SEARCH_BATCH):
        stop = min(start + SEARCH_BATCH, n)
        found, dists, counts = search(vecs[start:stop], count)
        rows = np.arange(start, stop)[:, None]
        valid = np.arange(found.shape[1])[None, :] < counts[:, None]
        keep = valid & (dists <= threshold + slack) & (found != rows)
        r, c = np.nonzero(keep)
        src.append(rows[r, 0])
        dst.append(found[r, c])
        if count == k + 1:  # with fewer than k others there is no surrounding to compare with
            full = counts == count
            scale[start:stop][full] = dists[full, k]
        if progress is not None:
            progress(stop, n, "neighbours")
    return (np.concatenate(src).astype(np.int64), np.concatenate(dst).astype(np.int64)), scale


def _searcher(vecs: np.ndarray, metric: str, threads: int):
    """``search(queries, count) -> (keys, distances, counts)``: a brute-force scan below the exact
    limit (no graph to build), an HNSW index above it."""
    usearch_index_class()  # onnxruntime first, quietly (a reader may have opened no model): see there
    from usearch.index import Index, search

    kind = USEARCH_METRIC[metric]
    if len(vecs) <= EXACT_SEARCH_LIMIT:
        def exact(queries, count):
            res = search(vecs, queries, count, kind, exact=True, threads=threads)
            return _unpack(res, len(queries), count)
        return exact
    index = Index(ndim=vecs.shape[1], metric=kind, dtype="f32", expansion_add=HNSW_EXPANSION_ADD,
                  expansion_search=HNSW_EXPANSION_SEARCH)
    index.add(np.arange(len(vecs), dtype=np.uint64), vecs, threads=threads)

    def approximate(queries, count):
        return _unpack(index.search(queries, count, threads=threads), len(queries), count)
    return approximate


def _unpack(res, n_queries: int, count: int):
    found = np.atleast_2d(res.keys).astype(np.int64)
    dists = np.atleast_2d(res.distances)
    counts = np.atleast_1d(getattr(res, "counts", np.full(n_queries, count)))
    return found, dists, counts
