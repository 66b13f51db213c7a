"""Answering questions of a library: the nearest pictures to a query, and stored vectors in bulk.

A query picture that is in the library and unchanged uses its stored vector; anything else is
embedded. Bulk vectors (for evaluation) come from the catalogue where stored, the rest are embedded
through the shared batching loop (:mod:`imgret.runtime.batching`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from imgret.errors import ImageError
from imgret.runtime import imageio, vectors
from imgret.runtime.batching import EmbedBatcher, prepared_stream
from imgret.runtime.catalogue import Catalogue
from imgret.runtime.encoder import Encoder
from imgret.runtime.results import Hit, QueryResult
from imgret.runtime.scan import Found, scan
from imgret.runtime.vector_file import VectorFile


def query_pictures(arguments: Iterable[str | os.PathLike]) -> list[str]:
    """Expand query arguments into picture paths: a folder gives every picture found under it (in
    scan order), anything else is taken as a picture path as given."""
    out: list[str] = []
    for item in arguments:
        item = os.fspath(item)
        if os.path.isdir(item):
            out.extend(f.path for f in scan(item) if isinstance(f, Found))
        else:
            out.append(item)
    return out


def query(
    vector_file: VectorFile, encoder: Encoder, images: Iterable, n: int, *, include_self: bool = False
) -> list[QueryResult]:
    """The ``n`` nearest library pictures for each query (path, PIL image or array), searched in
    ``vector_file`` (its catalogue names the hits and holds stored query vectors).

    A query picture that cannot be read does not stop the others: its result has no hits and says
    why in ``error`` (see :class:`~imgret.runtime.results.QueryResult`).
    """
    catalogue = vector_file.catalogue
    if n < 1:
        raise ValueError("the number of results must be at least 1")
    index = vector_file.searchable()
    results = []
    for source in images:
        try:
            label, vec, self_key = query_vector(catalogue, encoder, source)
        except ImageError as exc:
            label = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<image>"
            results.append(QueryResult(label, [], error=str(exc), reason=exc.reason))
            continue
        found = vectors.search(index, vec[None, :], n + (0 if include_self else 1))[0]
        skip = None if include_self else self_key
        results.append(QueryResult(label, _hits(catalogue, encoder.metric, found, skip, n)))
    return results


def _hits(catalogue: Catalogue, metric: str, found, skip_key: int | None, n: int) -> list[Hit]:
    keys = [int(k) for k in found[0]]
    names = catalogue.paths(keys)
    hits: list[Hit] = []
    for key, dist in zip(keys, found[1]):
        if key == skip_key or key not in names:  # itself, or removed since the index was built
            continue
        d = float(max(dist, 0.0))
        hits.append(Hit(len(hits) + 1, names[key], float(np.sqrt(d)) if metric == "l2" else d))
        if len(hits) == n:
            break
    return hits


def query_vector(catalogue: Catalogue, encoder: Encoder, source) -> tuple[str, np.ndarray, int | None]:
    """``(label, vector, library key or None)`` for one query picture."""
    if not isinstance(source, (str, os.PathLike)):
        return "<image>", encoder.embed([source])[0], None
    path = os.path.abspath(os.fspath(source))
    row = catalogue.lookup(path)
    if row is not None and row.status == "ok":
        try:
            st = os.stat(path)
            unchanged = row.matches(st.st_size, st.st_mtime_ns)
        except OSError:
            unchanged = True  # vanished since indexing: the stored vector is still its picture
        vec = catalogue.vector(row.key) if unchanged else None
        if vec is not None:
            return os.fspath(source), vec, row.key
    pixels = imageio.load(path, encoder.size)  # an ImageError here is reported beside the picture's name
    return os.fspath(source), encoder.embed_arrays(pixels[None])[0], row.key if row else None


def vectors_for(
    catalogue: Catalogue, encoder: Encoder, paths: list[str], *, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors for many files: stored ones from the catalogue, the rest embedded in batches.

    Returns ``(vectors [N, D], ok [N] bool)``; unreadable files get a zero row and ``ok`` False.
    """
    out = np.zeros((len(paths), encoder.dim), dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    missing: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        p = os.path.abspath(p)
        row = catalogue.lookup(p)
        vec = catalogue.vector(row.key) if row is not None and row.status == "ok" else None
        if vec is not None:
            out[i], ok[i] = vec, True
        else:
            missing.setdefault(p, []).append(i)

    def deliver(rows: list[int], vec: np.ndarray) -> None:
        out[rows], ok[rows] = vec, bool(np.all(np.isfinite(vec)))

    batcher: EmbedBatcher[list[int]] = EmbedBatcher(encoder, deliver)
    for prep in prepared_stream(list(missing), encoder.size, workers):
        if prep.pixels is not None:
            batcher.add(missing[prep.path], prep.pixels)
    batcher.flush()
    return out, ok
