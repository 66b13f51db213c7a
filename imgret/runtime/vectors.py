"""The usearch vector file: where settled vectors live, searched memory-mapped.

Written once per change set to a new file name (never over the file readers use), fsynced, then
recorded in the catalogue with its size, count and two SHA-256 checksums: of the whole file (checked
by writers before they build on it, and by ``imgret check``) and of its first and last
:data:`SAMPLE_BYTES` (checked by every reader, with the size and count, before searching). Files up
to :data:`FULL_CHECK_BYTES` are checked whole by readers too. Searching maps the file (``view``): a
query reads the pages it touches, not the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from imgret.runtime.fileio import file_sha256
from imgret.runtime.page_advice import advise_random
from imgret.runtime.vector_layout import IndexDamaged, matrix_shape  # also used as vectors.X

# Exact (brute-force) search up to this many vectors, HNSW above: the crossover of one-query search
# time measured on the 2-core development machine, 128-d (benchmarks/README.md, "Library at scale").
EXACT_SEARCH_LIMIT = 2_000
# HNSW search breadth: recall@10 against exact search 0.9995 at 100k (0.9955 at 64), same place.
EXPANSION_SEARCH = 128
# How the vector file stores vectors, chosen per library when it is made (catalogue meta
# ``vector_dtype``; absent: f32). f32 keeps what the encoder gave; f16 and i8 trade recall for size
# (benchmarks/README.md, "Smaller vector types"). usearch normalises before it quantises to i8, so i8
# keeps directions only: offered for cosine models alone.
VECTOR_DTYPES = ("f32", "f16", "i8")
DEFAULT_DTYPE = "f32"
USEARCH_METRIC = {"cosine": "cos", "l2": "l2sq"}
SAMPLE_BYTES = 1 << 20
FULL_CHECK_BYTES = 16 << 20  # ~25,000 pictures at 128-d: whole-file SHA-256 costs a reader ~10 ms
# Temporary files of imgret before the shared atomic writer were named ".vectors-*.tmp".
LEGACY_TEMP_NAME = "vectors"


@dataclass(frozen=True)
class SavedIndex:
    """What the catalogue records about a saved vector file."""

    count: int
    sha256: str
    size: int
    sample: str = ""  # SHA-256 of the first and last SAMPLE_BYTES ("" for a format-1 record)


def usearch_index_class(*, onnxruntime_first: bool = True):
    """usearch's ``Index``, loaded after onnxruntime: with usearch 2.26 and onnxruntime 1.32, loading
    usearch's native library first makes a later onnxruntime import crash the process (SIGSEGV in
    libstdc++). ``onnxruntime_first=False`` skips onnxruntime (~0.05-0.1 s) for a process that will
    embed nothing after this (a one-shot query of library pictures); :func:`session.quiet_onnxruntime`
    then refuses to load it rather than crash."""
    if onnxruntime_first:
        from imgret.runtime.session import quiet_onnxruntime

        quiet_onnxruntime()  # first, and quietly: a query of library pictures may open no model at all
    from usearch.index import Index

    return Index


def dtype_problem(dtype: str, metric: str) -> str | None:
    """Why vectors of a ``metric`` model cannot be stored as ``dtype``, or ``None`` when they can."""
    if dtype not in VECTOR_DTYPES:
        return f"unknown vector type {dtype!r}; choose one of {', '.join(VECTOR_DTYPES)}"
    if dtype == "i8" and metric != "cosine":
        return f"i8 keeps only the direction of a vector, so it suits cosine models; this model's metric is {metric}"
    return None


def new_index(dim: int, metric: str, dtype: str = DEFAULT_DTYPE, *, onnxruntime_first: bool = True):
    """An empty in-memory usearch index with imgret's pinned settings, storing ``dtype`` vectors."""
    Index = usearch_index_class(onnxruntime_first=onnxruntime_first)  # noqa: N806 - a class

    return Index(ndim=dim, metric=USEARCH_METRIC[metric], dtype=dtype, expansion_search=EXPANSION_SEARCH)


def pending_vectors(dim: int, metric: str, dtype: str = DEFAULT_DTYPE):
    """An empty exact search over vectors kept in memory without usearch, stored as ``dtype`` (the
    pending vectors beside :func:`open_graph`'s file)."""
    from imgret.runtime.exact_search import PendingVectors  # only beside open_graph's file

    return PendingVectors(dim, dtype, USEARCH_METRIC[metric])


def stored_vectors(index, keys) -> np.ndarray:
    """The vectors of ``keys`` as float32, whatever the index stores (``get`` alone would give f16 or
    int8 codes: i8 as the unit vector times 127)."""
    return np.asarray(index.get(keys, dtype=np.float32), dtype=np.float32)


def index_dtype(index) -> str:
    """The vector type a usearch index stores, as imgret names it (``f32``, ``f16``, ``i8``)."""
    return index.dtype.name.lower()


def build(keys: np.ndarray, vectors: np.ndarray, metric: str, dtype: str = DEFAULT_DTYPE):
    """Create an in-memory usearch index from keys and float32 vectors, storing ``dtype``."""
    index = new_index(vectors.shape[1], metric, dtype)
    if len(keys):
        index.add(np.asarray(keys, dtype=np.uint64), np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def save(index, path: str) -> SavedIndex:
    """Write ``index`` to ``path`` through a temporary file (usearch streams it: no copy in memory),
    fsync it, and return its checksum record. Only the writer (holding the lock) calls this, so a
    temporary file left in the folder is from a killed writer and is removed."""
    from imgret.runtime import atomic  # the write path only (its tempfile import costs a reader ~10 ms)

    folder = os.path.dirname(os.path.abspath(path))
    atomic.remove_stale_temps(folder, os.path.basename(path))
    atomic.remove_stale_temps(folder, LEGACY_TEMP_NAME)
    with atomic.replacing_path(path) as tmp:
        index.save(tmp)
    return checksum_record(path, len(index))


def checksum_record(path: str, count: int) -> SavedIndex:
    """Size, whole-file and sample checksums of a vector file holding ``count`` vectors."""
    return SavedIndex(count, file_sha256(path), os.path.getsize(path), sample_digest(path))


def sample_digest(path: str) -> str:
    """SHA-256 of the first and last :data:`SAMPLE_BYTES` of a file (the header and the tail)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        digest.update(fh.read(SAMPLE_BYTES))
        if size > SAMPLE_BYTES:
            fh.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
            digest.update(fh.read(SAMPLE_BYTES))
    return digest.hexdigest()


def verify(path: str, expected: SavedIndex, *, full: bool) -> None:
    """Raise :class:`IndexDamaged` unless the file has the recorded size and checksums: the sample
    always, the whole file when ``full`` or when it is small enough to be cheap."""
    try:
        size = os.path.getsize(path)
        if size != expected.size:
            raise IndexDamaged(f"vector file is {size} bytes, catalogue expects {expected.size}")
        whole = full or not expected.sample or size <= FULL_CHECK_BYTES
        if not whole and sample_digest(path) != expected.sample:
            raise IndexDamaged("vector file's header or tail does not match its checksum")
        if whole and checksum_record(path, expected.count).sha256 != expected.sha256:
            raise IndexDamaged("vector file's checksum does not match the catalogue")
    except OSError as exc:
        raise IndexDamaged(f"cannot read vector file: {exc.strerror}") from exc


def check_sample(path: str, expected: SavedIndex) -> None:
    """A writer's check before a run: the size and the head-and-tail checksum (O(1) reads, whatever
    the file's size); the whole file is checked when it is loaded to be changed."""
    try:
        size = os.path.getsize(path)
        if size != expected.size:
            raise IndexDamaged(f"vector file is {size} bytes, catalogue expects {expected.size}")
        if sample_digest(path) != expected.sample:
            raise IndexDamaged("vector file's header or tail does not match its checksum")
    except OSError as exc:
        raise IndexDamaged(f"cannot read vector file: {exc.strerror}") from exc


def open_view(path: str, expected: SavedIndex, dim: int, *, key_lookups: bool = True,  # noqa: PLR0913
              onnxruntime_first: bool = True):
    """The vector file memory-mapped for searching, after :func:`verify` (cheap form). Without
    ``key_lookups`` usearch builds no key table (its ``get`` and ``in`` then fail; the slot file
    answers those, :mod:`imgret.runtime.slot_file`): a third of the open's cost at 1M pictures."""
    verify(path, expected, full=False)
    Index = usearch_index_class(onnxruntime_first=onnxruntime_first)  # noqa: N806 - a class
    index = _restore(Index, path, expected, dim, view=True, key_lookups=key_lookups)
    advise_random(path, _matrix_end(path))  # a search reads scattered vectors: no read-ahead
    return index


def open_graph(path: str, expected: SavedIndex, dim: int, dtype: str, metric: str):  # noqa: PLR0913
    """The vector file mapped and searched without usearch (:class:`~imgret.runtime.graph_file.GraphFile`),
    after the same check as :func:`open_view`: for a process that makes a few searches and then ends,
    where importing usearch and opening its view would cost more than the searches."""
    from imgret.runtime.graph_file import GraphFile  # only for such a process

    verify(path, expected, full=False)
    graph = GraphFile(path, dim=dim, dtype=dtype, metric=USEARCH_METRIC[metric], count=expected.count)
    graph.expansion_search = EXPANSION_SEARCH
    advise_random(path, graph.matrix_end)
    return graph


def _matrix_end(path: str) -> int:
    """Where usearch's vectors matrix ends in its file (0 for a file too short to say)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    try:
        rows, cols = matrix_shape(head)
    except IndexDamaged:
        return 0
    return 8 + rows * cols



def load_for_update(path: str, expected: SavedIndex, dim: int):
    """The vector file loaded into memory to be changed, after a full :func:`verify`."""
    verify(path, expected, full=True)
    return _restore(usearch_index_class(), path, expected, dim, view=False)


def _restore(Index, path: str, expected: SavedIndex, dim: int, *, view: bool, key_lookups: bool = True):  # noqa: N803, PLR0913
    try:
        index = Index.restore(path, view=view, enable_key_lookups=key_lookups)
    except Exception as exc:
        raise IndexDamaged(f"vector file cannot be parsed: {exc}") from exc
    if index is None or len(index) != expected.count or index.ndim != dim:
        raise IndexDamaged("vector file holds another number or size of vectors than the catalogue records")
    index.expansion_search = EXPANSION_SEARCH
    return index


@dataclass
class Searchable:
    """What a query searches: the vector file (``settled``, may be ``None``) plus the pending vectors
    (``overlay``, in memory). ``dead``: keys in the file that no longer stand for a settled picture."""

    settled: object | None
    overlay: object | None
    overlay_keys: set[int] = field(default_factory=set)
    dead: int = 0

    def __len__(self) -> int:
        return (len(self.settled) if self.settled is not None else 0) + len(self.overlay_keys)

    def close(self) -> None:
        """Unmap the vector file."""
        if self.settled is not None:
            with contextlib.suppress(Exception):
                self.settled.reset()
            self.settled = None


def search(index, queries: np.ndarray, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Nearest ``count`` keys and distances for each query row, in a usearch index or a
    :class:`Searchable`; exact below :data:`EXACT_SEARCH_LIMIT` vectors, HNSW above."""
    if not isinstance(index, Searchable):
        return _search_one(index, queries, count)
    if index.settled is None:
        return _search_one(index.overlay, queries, count)
    # Keys updated since the file was written are in it with their old vector: ask for more, drop them.
    found = _search_one(index.settled, queries, count + index.dead)
    extra = _search_one(index.overlay, queries, count) if index.overlay is not None else None
    out = []
    for i, (keys, dists) in enumerate(found):
        keep = np.fromiter((int(k) not in index.overlay_keys for k in keys), dtype=bool, count=len(keys))
        keys, dists = keys[keep], dists[keep]
        if extra is not None:
            keys, dists = np.concatenate([keys, extra[i][0]]), np.concatenate([dists, extra[i][1]])
        order = np.argsort(dists, kind="stable")[:count]
        out.append((keys[order], dists[order]))
    return out


def _search_one(index, queries: np.ndarray, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    size = 0 if index is None else len(index)
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
