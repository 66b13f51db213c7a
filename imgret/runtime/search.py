"""Answering questions of a library: the nearest pictures to a query, and stored vectors in bulk.

A query picture that is in the library and unchanged uses its stored vector; anything else is
embedded. Bulk vectors (for evaluation) come from the catalogue where stored, the rest are embedded
through the shared batching loop (:mod:`imgret.runtime.batching`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from imgret.errors import ImageError
from imgret.runtime import vectors
from imgret.runtime.catalogue import Catalogue
from imgret.runtime.dups import distance
from imgret.runtime.encoder import Encoder
from imgret.runtime.results import Hit, QueryResult
from imgret.runtime.vector_file import VectorFile


def query_pictures(arguments: Iterable[str | os.PathLike]) -> list[str]:
    """Expand query arguments into picture paths: a folder gives every picture found under it (in
    scan order), anything else is taken as a picture path as given."""
    out: list[str] = []
    for item in arguments:
        item = os.fspath(item)
        if os.path.isdir(item):
            from imgret.runtime.scan import Found, scan  # only for a folder: it loads Pillow's plugins

            out.extend(f.path for f in scan(item) if isinstance(f, Found))
        else:
            out.append(item)
    return out


def query(  # noqa: PLR0913 - the query's options, all keyword-only
    vector_file: VectorFile, encoder: Encoder, images: Iterable, n: int, *, include_self: bool = False,
    copy_threshold: float | None = None, fold: bool = True, exclude_copies: bool = False,
) -> list[QueryResult]:
    """The ``n`` nearest library pictures for each query (path, PIL image or array), searched in
    ``vector_file`` (its catalogue names the hits and holds stored query vectors).

    With a ``copy_threshold`` (a distance as :func:`~imgret.runtime.dups.find_duplicates` measures
    it) and ``fold``, a hit within it of a better-ranked hit is folded into that hit's ``copies``, and
    the ``n`` hits are ``n`` distinct pictures (more candidates are fetched as needed); identical files
    have one vector, so they fold too. ``exclude_copies`` also leaves out hits within the threshold of
    the query itself (its own copies), as the query's own entry is left out unless ``include_self``.

    A query picture that cannot be read does not stop the others: its result has no hits and says
    why in ``error`` (see :class:`~imgret.runtime.results.QueryResult`).
    """
    catalogue = vector_file.catalogue
    if n < 1:
        raise ValueError("the number of results must be at least 1")
    # Every query vector first, then the search: any embedding (onnxruntime) happens before usearch
    # loads, so a process that embeds nothing need not import onnxruntime at all (see
    # VectorFile.onnxruntime_first). Stored vectors come from the slot table, without usearch.
    images = list(images)
    if vector_file.reads_itself(len(images)):  # no usearch: opened first, it confirms stored vectors
        vector_file.searchable(searches=len(images))
    asked = [_query_vector_or_error(catalogue, encoder, source) for source in images]
    index = vector_file.searchable(searches=len(asked))
    rule = None if copy_threshold is None else _Folding(encoder.metric, copy_threshold, fold, exclude_copies)
    results = []
    for item in asked:
        if isinstance(item, QueryResult):  # unreadable: its error, no hits
            results.append(item)
            continue
        label, vec, self_key = item
        skip = None if include_self else self_key
        try:
            hits = _answer(vector_file, index, encoder.metric, vec, skip, n, rule)
        except vectors.IndexDamaged as exc:  # imgret's own reader checks every neighbour list it reads
            raise vector_file.damaged_graph(exc) from exc
        results.append(QueryResult(label, hits))
    return results


def _query_vector_or_error(catalogue: Catalogue, encoder: Encoder, source):
    """:func:`query_vector`'s answer, or a :class:`QueryResult` saying why the picture cannot be read."""
    try:
        return query_vector(catalogue, encoder, source)
    except ImageError as exc:
        label = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<image>"
        return QueryResult(label, [], error=str(exc), reason=exc.reason)


@dataclass(frozen=True)
class _Folding:
    metric: str
    threshold: float
    fold: bool
    exclude_copies: bool


def _answer(  # noqa: PLR0913 - one query's state
        vector_file: VectorFile, index, metric: str, vec: np.ndarray, skip_key: int | None, n: int,
            rule: _Folding | None) -> list[Hit]:
    """The hits of one query: plain, or folded (fetching four times more candidates until ``n``
    distinct pictures are found or the library is exhausted; vectors fetched once across rounds)."""
    want = n + 1
    known: dict[int, np.ndarray] = {}
    names: dict[int, str] = {}  # the paths of keys already looked up, across rounds
    while True:
        found = vectors.search(index, vec[None, :], want)[0]
        candidates = _candidates(vector_file.catalogue, metric, found, skip_key, names)
        if rule is None:
            return [Hit(rank, path, dist) for rank, (_, path, dist) in enumerate(candidates[:n], 1)]
        known.update(vector_file.vectors_of([k for k, _, _ in candidates if k not in known]))
        hits = _folded(known, vec, candidates, n, rule)
        if len(hits) >= n or len(found[0]) < want:
            return hits
        want = wider(want)


def wider(want: int) -> int:
    """How many candidates folding asks for after ``want`` were not enough: four times more, but
    first all that a search of the usual breadth finds anyway (it looks at EXPANSION_SEARCH candidates
    whatever it is asked for): a wider one costs a new walk of the graph."""
    return vectors.EXPANSION_SEARCH if want < vectors.EXPANSION_SEARCH < 4 * want else 4 * want


def _candidates(catalogue: Catalogue, metric: str, found, skip_key: int | None,  # noqa: PLR0913
                names: dict[int, str]) -> list[tuple[int, str, float]]:
    """``(key, path, reported distance)`` in rank order, without the skipped key or removed rows.
    ``names``: paths by key already looked up (added to; a removed row stays absent)."""
    keys = [int(k) for k in found[0]]
    names.update(catalogue.paths([k for k in keys if k not in names]))
    out = []
    for key, dist in zip(keys, found[1]):
        if key == skip_key or key not in names:  # itself, or removed since the index was built
            continue
        d = float(max(dist, 0.0))
        out.append((key, names[key], float(np.sqrt(d)) if metric == "l2" else d))
    return out


def _folded(known: dict[int, np.ndarray], query_vec: np.ndarray, candidates, n: int, rule: _Folding) -> list[Hit]:
    """Up to ``n`` hits, each candidate within the threshold of a better-ranked hit folded into the
    best-ranked such hit; candidates past the ``n``-th distinct picture count only as copies.
    ``known``: the candidates' vectors by key (one without a vector is left out)."""
    heads: list[tuple[Hit, list[Hit]]] = []
    # filled as heads come, never restacked; no more heads than candidates (n may be huge)
    head_vecs = np.zeros((min(n, len(candidates)), len(query_vec)), dtype=np.float32)
    for key, path, dist in candidates:
        vec = known.get(key)
        if vec is None:
            continue
        if rule.exclude_copies and distance(query_vec, vec, rule.metric)[0] <= rule.threshold:
            continue
        near = np.zeros(0, dtype=bool)
        if heads and rule.fold:
            near = distance(vec, head_vecs[:len(heads)], rule.metric) <= rule.threshold
        if near.any():
            head, copies = heads[int(np.argmax(near))]
            copies.append(Hit(head.rank, path, dist))
        elif len(heads) < n:
            heads.append((Hit(len(heads) + 1, path, dist), []))
            head_vecs[len(heads) - 1] = vec
    return [Hit(h.rank, h.path, h.distance, tuple(c)) for h, c in heads]


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
    from imgret.runtime import imageio  # a picture outside the library: the only one decoded

    pixels = imageio.load(path, encoder.size)  # an ImageError here is reported beside the picture's name
    return os.fspath(source), encoder.embed_arrays(pixels[None])[0], row.key if row else None


def vectors_for(
    catalogue: Catalogue, encoder: Encoder, paths: list[str], *, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors for many files: stored ones from the catalogue, the rest embedded in batches.

    Returns ``(vectors [N, D], ok [N] bool)``; unreadable files get a zero row and ``ok`` False.
    """
    from imgret.runtime.batching import EmbedBatcher, prepared_stream

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
