"""The vector file searched without usearch: its HNSW graph walked in numpy over the mapped file.

A one-shot ``imgret query`` spends most of its time before it searches: importing usearch's Python
package (~0.13 s here: it pulls in urllib, tqdm and numkong) and opening its view, which visits the
header of every node to find where each starts (~0.1 s and ~150 MB of touched pages at 1M
pictures). A query needs a few hundred nodes. :class:`GraphFile` reads usearch 2's dense file
itself: where a node starts follows from the per-node levels stored before the nodes (a cumulative
sum over the few nodes with upper levels, ~5 ms at 1M), and a search touches only the nodes and
vectors it visits (~10-30 ms a search at 1M, against ~2 ms for usearch once it is open).

The search is usearch's: a greedy descent from the entry node through the upper levels, then a
best-first search of the base level keeping the ``expansion`` nearest found (the same breadth,
:data:`~imgret.runtime.vectors.EXPANSION_SEARCH`), removed nodes walked through but never returned.
Distances are usearch's for the stored type: the query is rounded as usearch stores vectors (f16;
i8 after normalising, code = 127 x cut toward zero) and compared with the stored values. Results equal
usearch's but for near ties (``tests/test_graph_file.py`` measures both on the same files).

Layout (see :mod:`imgret.runtime.slot_file` for the matrix and the nodes): after the matrix, a
64-byte header: ``usearch``, version (3 x uint16), metric, scalar, key and slot kinds (one byte each),
present and deleted counts and dimensions (uint64), and a multi flag. Anything that does not match
what the catalogue expects, or a graph that points outside itself, is :class:`IndexDamaged`:
a damaged file is never searched, and never crashes the reader.
"""

from __future__ import annotations

import heapq
import mmap
import os
import struct

import numpy as np

from imgret.runtime.exact_search import Matches, distances, prepare
from imgret.runtime.vector_layout import HEADER_BYTES, NODE_HEAD, STORED_TYPES, IndexDamaged, graph_layout

_METRIC_CODE = {"cos": 0x63, "l2sq": 0x65}  # usearch's metric kinds: 'c', 'e'
_SCALAR_CODE = {"f32": 0x0B, "f16": 0x0C, "i8": 0x17}
_KEY_U64, _SLOT_U32 = 0x0E, 0x0F
_FREE_KEY = 2**64 - 1


class GraphFile:
    """A usearch dense vector file, mapped read-only and searched in numpy.

    The caller has checked the file's size and sample checksum (:func:`vectors.verify`); this checks
    that the header says what the catalogue expects (``dim``, ``dtype``, ``metric`` as usearch names
    it, ``count``) and that the graph's sizes add up to the file, and every search checks the
    neighbour lists it reads.
    """

    def __init__(self, path: str, *, dim: int, dtype: str, metric: str, count: int) -> None:  # noqa: PLR0913
        self.dim, self.dtype, self.metric = dim, dtype, metric
        self.expansion_search = 64  # the base level's search breadth; vectors.open_graph sets imgret's
        self._last: tuple[tuple[bytes, int], list[tuple[float, int]]] | None = None  # see _walk
        self.found: dict[int, int] = {}  # key -> slot of every key a search returned
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 8:
                raise IndexDamaged("vector file is too short to hold a usearch header")
            self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._parse(count)
        except (IndexDamaged, ValueError, struct.error) as exc:
            self.reset()
            if isinstance(exc, IndexDamaged):
                raise
            raise IndexDamaged(f"vector file cannot be parsed: {exc}") from exc

    # -- opening ------------------------------------------------------------------------------------
    def _parse(self, count: int) -> None:
        raw = self._map
        layout = graph_layout(raw)
        stored = np.dtype(STORED_TYPES[self.dtype])
        if layout.cols != self.dim * stored.itemsize:
            raise IndexDamaged("vector file holds vectors of another size than the catalogue records")
        self._check_header(raw[layout.head:layout.head + HEADER_BYTES], layout.rows, count)
        size, levels = layout.size, layout.levels
        if size and (layout.entry >= size or layout.max_level > 64):  # an empty graph's top level is -1 as uint64
            raise IndexDamaged("vector file's graph has no such entry node or level")
        if size and (int(levels.min()) < 0 or int(levels.max()) > layout.max_level):
            raise IndexDamaged("vector file's graph has a node on a level it does not have")
        self._base_bytes, self._upper_bytes = layout.base_bytes, layout.upper_bytes
        # Where each node starts: after the nodes before it, each its base part and one part per upper
        # level. Few nodes have upper levels (1 in 16), so only theirs are summed; see _start.
        self._uppers = np.flatnonzero(levels)
        self._upper_parts = np.cumsum(levels[self._uppers], dtype=np.int64)  # up to and including each
        total = int(self._upper_parts[-1]) if len(self._upper_parts) else 0
        if layout.nodes_at + size * self._base_bytes + total * self._upper_bytes != len(raw):
            raise IndexDamaged("vector file's graph does not end where the file does")
        self._nodes_at = layout.nodes_at
        self._levels, self._size, self._entry, self._max_level = levels, size, layout.entry, layout.max_level
        self._conn, self._conn0 = layout.conn, layout.conn0
        self._vectors = np.frombuffer(raw, dtype=stored, count=layout.rows * self.dim, offset=8).reshape(
            layout.rows, self.dim)
        self.matrix_end = 8 + layout.rows * layout.cols  # where the vectors end (see vectors.open_graph)

    def _check_header(self, header: bytes, rows: int, count: int) -> None:
        major, = struct.unpack_from("<H", header, 7)
        metric, scalar, key, slot = header[13:17]
        present, deleted, dims = struct.unpack_from("<3Q", header, 17)
        if major != 2 or key != _KEY_U64 or slot != _SLOT_U32 or header[41] != 0:
            raise IndexDamaged("vector file is not a usearch 2 file of one vector per 64-bit key")
        if metric != _METRIC_CODE.get(self.metric) or scalar != _SCALAR_CODE[self.dtype] or dims != self.dim:
            raise IndexDamaged("vector file's metric, vector type or size is not the catalogue's")
        if present != count or present + deleted != rows:
            raise IndexDamaged("vector file holds another number of vectors than the catalogue records")
        self._deleted = deleted

    def __len__(self) -> int:
        return self._size - self._deleted

    @property
    def ndim(self) -> int:
        return self.dim

    def reset(self) -> None:
        """Unmap the file (searching after this fails)."""
        self._vectors = self._levels = self._uppers = self._upper_parts = None
        if getattr(self, "_map", None) is not None:
            try:
                self._map.close()
            except BufferError:  # a numpy view of it is still alive somewhere: the GC unmaps it
                pass
            self._map = None

    # -- reading nodes ------------------------------------------------------------------------------
    def _start(self, slot: int) -> int:
        """Where node ``slot`` starts in the file."""
        before = int(self._uppers.searchsorted(slot))  # nodes with upper levels before it
        upper = int(self._upper_parts[before - 1]) if before else 0
        return self._nodes_at + slot * self._base_bytes + upper * self._upper_bytes

    def key_at(self, slot: int) -> int:
        """The key stored with node ``slot`` (2**64 - 1 for a removed one)."""
        return struct.unpack_from("<Q", self._map, self._start(slot))[0]

    def vectors_found(self, keys) -> dict[int, np.ndarray]:
        """The stored vectors, as float32, of those ``keys`` this reader's searches returned (their
        slots are known: no key table needed), decoded as usearch's ``get(dtype=float32)`` does."""
        out = {}
        for key in keys:
            slot = self.found.get(key)
            if slot is not None:
                vec = self._vectors[slot].astype(np.float32)
                out[key] = vec * np.float32(1 / 127) if self.dtype == "i8" else vec
        return out

    def _neighbours(self, slot: int, level: int) -> list[int]:
        """The neighbour slots of ``slot`` on ``level``, checked to lie inside the graph."""
        if level > self._levels[slot]:
            raise IndexDamaged("vector file's graph links a node on a level it does not have")
        at = self._start(slot) + NODE_HEAD
        cap = self._conn0
        if level:
            at += self._base_bytes - NODE_HEAD + (level - 1) * self._upper_bytes
            cap = self._conn
        n, = struct.unpack_from("<I", self._map, at)
        if n > cap:
            raise IndexDamaged("vector file's graph has a node with more neighbours than it can hold")
        found = np.frombuffer(self._map, dtype="<u4", count=n, offset=at + 4)
        if n and int(found.max()) >= self._size:
            raise IndexDamaged("vector file's graph points outside itself")
        return found.tolist()

    # -- searching ----------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, count: int, *, exact: bool = False) -> Matches:
        """The nearest ``count`` keys of each query row, and their distances; by the graph (the base
        level searched :attr:`expansion_search` wide, at least ``count``), or by comparing with every
        stored vector when ``exact``."""
        expansion = max(self.expansion_search, count)
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        keys = np.zeros((len(queries), count), dtype=np.uint64)
        dists = np.zeros((len(queries), count), dtype=np.float32)
        counts = np.zeros(len(queries), dtype=np.int64)
        for i, query in enumerate(queries):
            q, q_norm = prepare(query, self.dtype)
            try:
                found = self._exact(q, q_norm, count) if exact else self._walk(q, q_norm, count, expansion)
            except (ValueError, IndexError, struct.error) as exc:  # read past what the header promised
                raise IndexDamaged(f"vector file's graph cannot be read: {exc}") from exc
            counts[i] = len(found)
            for j, (d, slot) in enumerate(found):
                key = self.key_at(slot)
                keys[i, j], dists[i, j] = key, d
                self.found[key] = slot
        return Matches(keys, dists, counts)

    def _distances(self, q: np.ndarray, q_norm: float, slots) -> np.ndarray:
        return distances(self._vectors[slots], q, q_norm, self.metric)

    def _allowed(self, slot: int) -> bool:
        return not self._deleted or self.key_at(slot) != _FREE_KEY

    def _exact(self, q: np.ndarray, q_norm: float, count: int) -> list[tuple[float, int]]:
        if not self._size:
            return []
        d = self._distances(q, q_norm, slice(None))
        order = np.argsort(d, kind="stable")
        out = []
        for slot in order.tolist():
            if len(out) == count:
                break
            if self._allowed(slot):
                out.append((float(d[slot]), slot))
        return out

    def _walk(self, q: np.ndarray, q_norm: float, count: int, expansion: int) -> list[tuple[float, int]]:
        if not self._size:
            return []
        # A query folding copies asks again for more (search.py): with the same breadth, the walk is
        # the same, so its answer is kept for the next call.
        asked = (q.tobytes(), expansion)
        if self._last is None or self._last[0] != asked:
            start = self._descend(q, q_norm)
            self._last = (asked, sorted(self._base_search(q, q_norm, start, expansion)))
        return self._last[1][:count]

    def _descend(self, q: np.ndarray, q_norm: float) -> int:
        """Greedy descent from the entry node through the upper levels: the base level's start."""
        closest = self._entry
        closest_d = float(self._distances(q, q_norm, [closest])[0])
        for level in range(self._max_level, 0, -1):
            changed = True
            while changed:
                changed = False
                near = self._neighbours(closest, level)
                if not near:
                    break
                d = self._distances(q, q_norm, near)
                best = int(np.argmin(d))
                if d[best] < closest_d:
                    closest, closest_d, changed = near[best], float(d[best]), True
        return closest

    def _base_search(self, q: np.ndarray, q_norm: float, start: int, expansion: int) -> list[tuple[float, int]]:
        """Best-first search of the base level from ``start``, keeping the ``expansion`` nearest
        allowed nodes found: ``(distance, slot)`` pairs, unsorted."""
        d0 = float(self._distances(q, q_norm, [start])[0])
        radius, visited = d0, {start}
        frontier = [(d0, start)]  # min-heap of nodes to expand
        top = [(-d0, start)] if self._allowed(start) else []  # max-heap (negated) of the best found
        push, pop, replace = heapq.heappush, heapq.heappop, heapq.heapreplace
        while frontier:
            if frontier[0][0] > radius and len(top) == expansion:
                break
            _, node = pop(frontier)
            fresh = [s for s in self._neighbours(node, 0) if s not in visited]
            if not fresh:
                continue
            visited.update(fresh)
            for slot, d in zip(fresh, self._distances(q, q_norm, fresh).tolist()):
                if len(top) < expansion or d < radius:
                    push(frontier, (d, slot))
                    if self._allowed(slot):
                        if len(top) < expansion:
                            push(top, (-d, slot))
                        else:
                            replace(top, (-d, slot))
                        radius = -top[0][0]
        return [(-d, slot) for d, slot in top]
